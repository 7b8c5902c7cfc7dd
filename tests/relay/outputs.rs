//! Outputs: every output gets the active input; each is independent (a dead target retries on its own, then
//! fails; outputs come and go live without touching the others).

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

#[test]
fn two_outputs_receive_the_main_input() {
    let rig = rig();
    let _main = rig.solid("main", RED, Some(440.0));
    let _backup = rig.solid("backup", BLUE, Some(440.0));
    let (p1, p2) = (rig.probe("o1"), rig.probe("o2"));
    assert!(rig.put_relay("r", &spec(&rig, true, &["o1", "o2"])));
    assert_eq!(rig.relay_status("r")["state"], "idle");
    rig.start_relay("r");
    expect_colour(&p1, RED, Duration::from_secs(15));
    expect_colour(&p2, RED, Duration::from_secs(5));
    let s = rig.wait_relay("r", Duration::from_secs(5), |s| {
        s["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == "live" && o["bitrate_kbps"].as_u64() > Some(50))
    });
    assert_eq!(s["state"], "working");
    assert_eq!(s["active"], "main");
    assert_eq!(s["main"]["state"], "live");
    assert_eq!(
        s["backup"]["state"], "live",
        "the backup is pulled too: {s:#}"
    );
    assert_eq!(s["switches"], 0);
    assert!(s["outputs"][0]["bytes"].as_u64() > Some(10_000), "{s:#}");
    assert_eq!(
        s["push_urls"],
        json!([
            rig.nginx.rtmp_url("live", "main"),
            rig.nginx.rtmp_url("live", "backup")
        ])
    );
    // Relayed, not re-encoded: the outputs carry the publisher's sound too.
    assert_eq!(
        p1.wait_streams(Duration::from_secs(10)),
        Some(vec!["audio/x-raw".to_string(), "video/x-raw".to_string()])
    );
    wait_levels(&p1, &[440.0], Duration::from_secs(5), |l| l[0] > 0.03);
}

#[test]
fn unreachable_output_retries_then_fails_while_the_others_push() {
    let rig = rig_with(|c| {
        c.egress.retry_initial_ms = 200;
        c.egress.retry_max_ms = 400;
    });
    let _main = rig.solid("main", RED, Some(440.0));
    let probe = rig.probe("o1");
    let mut s = spec(&rig, false, &["o1"]);
    let dead = format!("rtmp://127.0.0.1:{}/x/y", free_port());
    s["outputs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "dead", "url": dead}));
    rig.put_relay("r", &s);
    rig.start_relay("r");
    let st = rig.wait_relay("r", Duration::from_secs(15), |s| {
        output_state(s, "o1") == "live" && output_state(s, "dead") == "retrying"
    });
    let dead_status = &st["outputs"][1];
    assert!(dead_status["attempt"].as_u64() >= Some(1), "{st:#}");
    assert!(
        !dead_status["last_error"].as_str().unwrap_or("").is_empty(),
        "{st:#}"
    );
    assert!(dead_status["retry_in_ms"].as_u64().is_some(), "{st:#}");
    assert_eq!(dead_status["bytes"], 0);
    // Ten failures in a row spend the retry budget; the good output is not disturbed.
    let st = rig.wait_relay("r", Duration::from_secs(20), |s| {
        output_state(s, "dead") == "failed"
    });
    assert!(st["outputs"][1]["last_error"].as_str().is_some(), "{st:#}");
    assert_eq!(output_state(&st, "o1"), "live");
    expect_colour(&probe, RED, Duration::from_secs(5));
    assert_eq!(probe.sessions(), 1);
    assert_eq!(rig.nginx.publish_count_of("mix", "o1"), 1);
}

#[test]
fn outputs_are_added_and_removed_live() {
    let rig = rig();
    let _main = rig.solid("main", GREEN, Some(440.0));
    let (p1, p2, p3) = (rig.probe("o1"), rig.probe("o2"), rig.probe("o3"));
    rig.put_relay("r", &spec(&rig, false, &["o1", "o2"]));
    rig.start_relay("r");
    expect_colour(&p1, GREEN, Duration::from_secs(15));
    expect_colour(&p2, GREEN, Duration::from_secs(5));
    assert!(rig.nginx.is_publishing("mix", "o2"));

    // o2 goes, o3 comes; o1 is the same id and URL: untouched (its name may change).
    let mut next = spec(&rig, false, &["o1", "o3"]);
    next["outputs"][0]["name"] = json!("renamed");
    assert!(!rig.put_relay("r", &next));
    expect_colour(&p3, GREEN, Duration::from_secs(10));
    assert!(
        wait_for(Duration::from_secs(5), || !rig
            .nginx
            .is_publishing("mix", "o2")),
        "the removed output still publishes"
    );
    let s = rig.wait_relay("r", Duration::from_secs(5), |s| {
        output_state(s, "o3") == "live"
    });
    let ids: Vec<_> = s["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("o1"), json!("o3")]);
    expect_colour(&p1, GREEN, Duration::from_secs(2));
    assert_eq!(rig.nginx.publish_count_of("mix", "o1"), 1);
    assert_eq!(p1.sessions(), 1);
    assert_eq!(rig.nginx.publish_count_of("mix", "o3"), 1);
    assert_eq!(
        rig.tessera.relays.get("r").unwrap().spec.outputs[0].name,
        "renamed"
    );
}

#[test]
fn outputs_and_inputs_come_back_after_the_server_restarts() {
    let mut rig = rig();
    let main = rig.solid("main", RED, Some(440.0));
    let probe = rig.probe("o1");
    rig.put_relay("r", &spec(&rig, false, &["o1", "o2"]));
    rig.start_relay("r");
    expect_colour(&probe, RED, Duration::from_secs(15));
    rig.wait_relay("r", Duration::from_secs(5), |s| {
        output_state(s, "o2") == "live"
    });

    // Every connection drops: the outputs retry on their own, the input is pulled again.
    rig.nginx.restart();
    drop(main);
    let _main = rig.solid("main", GREEN, Some(440.0));
    expect_colour(&probe, GREEN, Duration::from_secs(20));
    let s = rig.wait_relay("r", Duration::from_secs(10), |s| {
        output_state(s, "o1") == "live" && output_state(s, "o2") == "live"
    });
    assert_eq!(s["active"], "main");
    assert_eq!(s["switches"], 0);
    assert_eq!(rig.nginx.publish_count_of("mix", "o1"), 2);
    assert_eq!(rig.nginx.publish_count_of("mix", "o2"), 2);
}

/// `rtmps://` outputs: with `egress.rtmps_verify` (the default) a target whose certificate no CA vouches for is
/// refused and retried with a certificate error, the other outputs unharmed; without it the same target is
/// pushed to over TLS (nginx's stream module in front of nginx-rtmp) and plays back over plain RTMP.
#[test]
fn rtmps_outputs_check_the_certificate_unless_told_not_to() {
    let rig = rig_on(Nginx::start_with_rtmps(), |c| {
        c.egress.rtmps_verify = false;
    });
    let _main = rig.solid("main", RED, Some(440.0));
    let tls = rig.nginx.rtmps_url("mix", "tls");

    let strict = {
        let mut config = Tessera::config_for(&rig.nginx);
        config.egress.retry_initial_ms = 300;
        let _rt = rig.tessera.runtime.enter();
        tessera::relay::Relays::in_memory(config)
    };
    let mut s = spec(&rig, false, &["plain"]);
    s["outputs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "tls", "url": tls}));
    let spec_strict: RelaySpec = serde_json::from_value(s).unwrap();
    rig.tessera
        .block_on(strict.put("strict", spec_strict))
        .unwrap();
    rig.tessera.block_on(strict.start("strict")).unwrap();
    let plain = rig.probe("plain");
    expect_colour(&plain, RED, Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        let st = serde_json::to_value(strict.get("strict").unwrap().status).unwrap();
        // The plain output may be between connections at any one instant on a loaded machine: wait for both.
        let settled =
            output_state(&st, "tls") == "retrying" && output_state(&st, "plain") == "live";
        if settled || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(output_state(&status, "tls"), "retrying", "{status:#}");
    assert_eq!(output_state(&status, "plain"), "live", "{status:#}");
    let error = status["outputs"][1]["last_error"].as_str().unwrap_or("");
    assert!(error.to_lowercase().contains("certificate"), "{status:#}");
    rig.tessera.block_on(strict.shutdown());

    rig.put_relay(
        "lax",
        &json!({"main": {"push": "main"}, "outputs": [{"id": "tls", "url": tls}]}),
    );
    let probe = rig.probe("tls");
    rig.start_relay("lax");
    expect_colour(&probe, RED, Duration::from_secs(15));
    rig.wait_relay("lax", Duration::from_secs(10), |s| {
        output_state(s, "tls") == "live"
    });
}
