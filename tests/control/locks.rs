//! No request waits for another task's slow work (pictures fetched, inputs probed): locks are per task and
//! held only for the change itself.

use super::*;

/// The house issue's test: a mix created with a watermark whose server answers only after 8 s; meanwhile,
/// on the same node, another mix is created, updated and deleted, and a ZEGO StopMix of a third task is
/// answered — each in under a second.
#[test]
fn a_slow_watermark_delays_no_other_request() {
    let slow = SlowHttp::start(Some(Duration::from_secs(8)), png(64, 64), "image/png");
    let tessera = Tessera::start(config());
    let http = client(Duration::from_secs(30));
    // The third task, a ZEGO one, exists before the slow request starts.
    let started = http
        .post(tessera.url(&zego_path(ZEGO_APP, ZEGO_SECRET, "StartMix")))
        .json(&json!({
            "TaskId": "third", "UserId": "u1",
            "MixInput": [{"StreamId": "s1", "RectInfo": {"Top": 0, "Bottom": 90, "Left": 0, "Right": 160}}],
            "MixOutput": [{"StreamId": "third-out", "Width": 320, "Height": 180, "VideoBitrate": 300000, "Fps": 15}]
        }))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(started["Code"], 0, "{started}");

    let slow_put = {
        let url = tessera.url("/v1/mixes/slow");
        let spec = mix("slow-out", Some(&slow.url("logo.png")));
        std::thread::spawn(move || {
            timed(&client(Duration::from_secs(30)), "PUT", &url, Some(&spec))
        })
    };
    assert!(
        wait_for(Duration::from_secs(10), || slow.requests() > 0),
        "the watermark was never fetched"
    );

    let url = tessera.url("/v1/mixes/quick");
    let (created, body, t_create) = timed(&http, "PUT", &url, Some(&mix("quick-out", None)));
    assert_eq!(created, 201, "{body}");
    let mut moved = mix("quick-out", None);
    moved["inputs"][0]["rect"]["x"] = json!(160);
    let (updated, body, t_update) = timed(&http, "PUT", &url, Some(&moved));
    assert_eq!(updated, 200, "{body}");
    assert_eq!(body["applied"], "updated_live");
    let (deleted, body, t_delete) = timed(&http, "DELETE", &url, None);
    assert_eq!(deleted, 204, "{body}");
    let (stopped, body, t_stop) = timed(
        &http,
        "POST",
        &tessera.url(&zego_path(ZEGO_APP, ZEGO_SECRET, "StopMix")),
        Some(&json!({"TaskId": "third", "UserId": "u1"})),
    );
    assert_eq!((stopped, body["Code"].as_u64()), (200, Some(0)), "{body}");
    eprintln!(
        "while a watermark took 8 s: create {t_create:?}, update {t_update:?}, delete {t_delete:?}, ZEGO StopMix {t_stop:?}"
    );
    for (what, t) in [
        ("create", t_create),
        ("update", t_update),
        ("delete", t_delete),
        ("StopMix", t_stop),
    ] {
        assert!(t < Duration::from_secs(1), "{what} took {t:?}");
    }

    // The slow one was not refused for being slow: it is created once its picture came.
    let (status, body, took) = slow_put.join().unwrap();
    assert_eq!(status, 201, "{body}");
    assert!(took >= Duration::from_secs(8), "{took:?}");
}

/// Five requests whose pictures never come do not hold up an unrelated delete, create or update; each of them is
/// refused once the picture's deadline passes, and leaves nothing behind.
#[test]
fn hung_picture_hosts_hold_up_nobody() {
    let hung = SlowHttp::start(None, png(64, 64), "image/png");
    let tessera = Tessera::start(config());
    let http = client(Duration::from_secs(60));
    let (created, body, _) = timed(
        &http,
        "PUT",
        &tessera.url("/v1/mixes/bystander"),
        Some(&mix("bystander-out", None)),
    );
    assert_eq!(created, 201, "{body}");

    let hanging: Vec<_> = (0..5)
        .map(|i| {
            let url = tessera.url(&format!("/v1/mixes/h{i}"));
            let spec = mix(&format!("h{i}-out"), Some(&hung.url(&format!("p{i}.png"))));
            std::thread::spawn(move || {
                timed(&client(Duration::from_secs(60)), "PUT", &url, Some(&spec))
            })
        })
        .collect();
    assert!(
        wait_for(Duration::from_secs(10), || hung.requests() >= 5),
        "the pictures were not all asked for"
    );

    let (deleted, body, t_delete) =
        timed(&http, "DELETE", &tessera.url("/v1/mixes/bystander"), None);
    assert_eq!(deleted, 204, "{body}");
    let (created, body, t_create) = timed(
        &http,
        "PUT",
        &tessera.url("/v1/mixes/other"),
        Some(&mix("other-out", None)),
    );
    assert_eq!(created, 201, "{body}");
    eprintln!("while five pictures hung: delete {t_delete:?}, create {t_create:?}");
    assert!(
        t_delete < Duration::from_secs(1),
        "delete took {t_delete:?}"
    );
    assert!(
        t_create < Duration::from_secs(1),
        "create took {t_create:?}"
    );

    for h in hanging {
        let (status, body, took) = h.join().unwrap();
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "resource_unavailable", "{body}");
        // Refused at the picture's deadline, not the client's.
        assert!(took < Duration::from_secs(30), "{took:?}");
    }
    let list = tessera.get("/v1/mixes").1;
    let ids: Vec<&str> = list["mixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["other"], "{list}");
}

/// Creates racing for the last places: each is admitted with a place held until it is settled, so no more mixes
/// run than `engine.max_mixes` however the requests overlap (their pictures arrive at the same moment, so they
/// all reach the change together).
#[test]
fn racing_creates_never_exceed_max_mixes() {
    let slow = SlowHttp::start(Some(Duration::from_secs(1)), png(64, 64), "image/png");
    let mut c = config();
    c.engine.max_mixes = Some(2);
    let tessera = Tessera::start(c);
    let puts: Vec<_> = (0..8)
        .map(|i| {
            let url = tessera.url(&format!("/v1/mixes/race{i}"));
            let spec = mix(
                &format!("race{i}-out"),
                Some(&slow.url(&format!("logo{i}.png"))),
            );
            std::thread::spawn(move || {
                timed(&client(Duration::from_secs(30)), "PUT", &url, Some(&spec))
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = puts
        .into_iter()
        .map(|t| {
            let (status, body, _) = t.join().unwrap();
            (status, body)
        })
        .collect();
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let full = answers
        .iter()
        .filter(|(s, b)| *s == 409 && b["error"]["code"] == "limit_exceeded")
        .count();
    let codes: Vec<(u16, &Value)> = answers
        .iter()
        .map(|(s, b)| (*s, &b["error"]["code"]))
        .collect();
    assert_eq!((created, full), (2, 6), "{codes:?}");
    let listed = tessera.get("/v1/mixes").1;
    assert_eq!(
        listed["mixes"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
}
