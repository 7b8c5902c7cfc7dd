//! A client that hangs up mid-request, and a crash right after (the real binary, SIGKILL): what is stored is
//! what was acknowledged and runs.

use super::*;

/// ZEGO on, as [`config`] has it.
fn zego_section() -> String {
    format!(
        "[zego]\napp_id = {ZEGO_APP}\nserver_secret = \"{ZEGO_SECRET}\"\ninput_check_ms = 0\nmax_requests_per_s = 0"
    )
}

/// The overlays of mix `id` as the server has it (`None` when it does not exist).
fn overlays(server: &Server, id: &str) -> Option<Value> {
    let (status, body) = server.request("GET", &format!("/v1/mixes/{id}"), None);
    (status == 200).then(|| body["spec"]["overlays"].clone())
}

#[test]
fn a_client_that_hangs_up_leaves_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = write_binary_config(dir.path(), &zego_section());
    let server = Server::start(&config, port);
    let base = server.base.clone();

    // 1. A good mix, then an update whose picture comes late and broken, from a client that gives up after 2 s:
    // the update is refused once the picture arrives, and the good mix stays — in memory and in the store.
    let broken = SlowHttp::start(
        Some(Duration::from_secs(3)),
        b"not a picture".to_vec(),
        "image/png",
    );
    server.send("PUT", "/v1/mixes/m", Some(&mix("m-out", None)));
    let (status, _, _) = timed(
        &client(Duration::from_secs(2)),
        "PUT",
        &format!("{base}/v1/mixes/m"),
        Some(&mix("m-out", Some(&broken.url("late.png")))),
    );
    assert_eq!(status, 0, "the client should have given up");
    assert!(
        server.wait_log("mix change refused", Duration::from_secs(30)),
        "the abandoned update was never settled:\n{}",
        server.log()
    );
    assert_eq!(overlays(&server, "m"), Some(json!([])));

    // 2. An update from a client that gives up after 1 s while its picture takes 5 s, then another update of
    // the same mix without a picture: the newer one wins, and the older one, settled later, does not undo it.
    let slow = SlowHttp::start(Some(Duration::from_secs(5)), png(64, 64), "image/png");
    let (status, _, _) = timed(
        &client(Duration::from_secs(1)),
        "PUT",
        &format!("{base}/v1/mixes/n"),
        Some(&mix("n-out", Some(&slow.url("a.png")))),
    );
    assert_eq!(status, 0, "the client should have given up");
    let (status, body, took) = timed(
        &client(Duration::from_secs(30)),
        "PUT",
        &format!("{base}/v1/mixes/n"),
        Some(&mix("n-out", None)),
    );
    assert_eq!(status, 201, "{body}");
    assert!(took < Duration::from_secs(3), "B waited for A: {took:?}");
    assert!(
        server.wait_log("was applied first", Duration::from_secs(30)),
        "the older request was never settled:\n{}",
        server.log()
    );
    assert_eq!(overlays(&server, "n"), Some(json!([])));

    // 3. A signed ZEGO request, answered once.
    let zego = zego_path(ZEGO_APP, ZEGO_SECRET, "StopMix");
    let stop = json!({"TaskId": "nobody", "UserId": "u"});
    assert_eq!(
        server.send("POST", &zego, Some(&stop))["Code"],
        110209001,
        "an unknown task"
    );

    // A crash, and a start on the same state.
    server.kill();
    let server = Server::start(&config, port);
    assert_eq!(overlays(&server, "m"), Some(json!([])), "m as acknowledged");
    assert_eq!(overlays(&server, "n"), Some(json!([])), "n as acknowledged");
    // The same signed request again is a replay, refused after the restart too.
    let replay = server.send("POST", &zego, Some(&stop));
    assert_eq!(replay["Code"], 100000005, "{replay}");
    assert!(
        replay["Message"]
            .as_str()
            .unwrap_or("")
            .contains("replayed"),
        "{replay}"
    );
    // Both mixes run again.
    assert!(
        wait_for(Duration::from_secs(30), || {
            let (_, list) = server.request("GET", "/v1/mixes", None);
            list["mixes"].as_array().is_some_and(|m| {
                m.len() == 2 && m.iter().all(|m| m["status"]["state"] == "running")
            })
        }),
        "{}",
        server.request("GET", "/v1/mixes", None).1
    );
}
