//! A project's life: callbacks, inputs replaced live, the stop time.

use std::time::Duration;

use serde_json::json;

use super::{hooks::Hooks, *};

#[test]
fn callbacks_report_start_output_states_failover_and_stop() {
    let hooks = Hooks::start();
    let rig = rig();
    let main = rig.solid("main", RED, Some(440.0));
    let _backup = rig.solid("backup", BLUE, Some(440.0));
    let probe = rig.probe("o1");
    let mut s = spec(&rig, true, &["o1"]);
    s["callback_url"] = json!(hooks.url);
    rig.put_relay("cb", &s);
    rig.start_relay("cb");
    hooks.wait(Duration::from_secs(5), |e| e["event"] == "project_started");
    let pushing = hooks.wait(Duration::from_secs(15), |e| {
        e["event"] == "output_state" && e["state"] == "live"
    });
    assert_eq!(pushing["project"], "cb");
    assert_eq!(pushing["output"], "o1");
    assert_eq!(pushing["name"], "platform o1");
    assert!(pushing["time"].as_i64() > Some(1_600_000_000));
    expect_colour(&probe, RED, Duration::from_secs(5));
    rig.wait_relay("cb", Duration::from_secs(5), |s| {
        s["backup"]["state"] == "live"
    });

    main.stop();
    let f = hooks.wait(Duration::from_secs(8), |e| e["event"] == "failover");
    assert_eq!(
        (f["from"].as_str(), f["to"].as_str()),
        (Some("main"), Some("backup"))
    );
    assert_eq!(f["reason"], "ended");

    rig.tessera.block_on(rig.tessera.relays.stop("cb")).unwrap();
    let stopped = hooks.wait(Duration::from_secs(5), |e| e["event"] == "project_stopped");
    assert_eq!(stopped["reason"], "request");
    // The URL of an output (it holds stream keys) is never sent.
    let all = serde_json::to_string(&hooks.events()).unwrap();
    assert!(!all.contains("rtmp://"), "{all}");
}

#[test]
fn input_replaced_live_keeps_the_outputs() {
    let rig = rig();
    let _main = rig.solid("main", RED, Some(440.0));
    let _other = rig.solid("other", YELLOW, Some(440.0));
    let probe = rig.probe("o1");
    rig.put_relay("r", &spec(&rig, false, &["o1"]));
    rig.start_relay("r");
    expect_colour(&probe, RED, Duration::from_secs(15));
    let mut s = spec(&rig, false, &["o1"]);
    s["main"] = json!({"url": rig.nginx.rtmp_url("live", "other")});
    rig.put_relay("r", &s);
    expect_colour(&probe, YELLOW, Duration::from_secs(10));
    probe.let_frames_pass(30, Duration::from_secs(25), "the output stalled");
    assert_eq!(rig.nginx.publish_count_of("mix", "o1"), 1);
    assert_eq!(probe.sessions(), 1);
    assert_pts_continuous(&probe, Duration::from_millis(700));
    let st = rig.relay_status("r");
    assert_eq!(st["main"]["url"], rig.nginx.rtmp_url("live", "other"));
    assert_eq!(st["switches"], 0, "a replaced input is not a switch");
}

#[test]
fn stop_at_stops_the_project() {
    let rig = rig();
    let _main = rig.solid("main", RED, Some(440.0));
    let probe = rig.probe("o1");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut s = spec(&rig, false, &["o1"]);
    s["stop_at"] = json!(now + 6);
    rig.put_relay("r", &s);
    rig.start_relay("r");
    expect_colour(&probe, RED, Duration::from_secs(15));
    let st = rig.wait_relay("r", Duration::from_secs(12), |s| s["state"] == "idle");
    let stopped_at = st["stopped_at"].as_i64().expect("stopped_at set");
    assert!(
        stopped_at >= now + 6,
        "stopped at {stopped_at}, before {}",
        now + 6
    );
    assert_eq!(output_state(&st, "o1"), "idle");
    assert!(
        wait_for(Duration::from_secs(5), || !rig
            .nginx
            .is_publishing("mix", "o1")),
        "still publishing after the stop time"
    );
    // A stop time in the past cannot be started again.
    let e = rig
        .tessera
        .block_on(rig.tessera.relays.start("r"))
        .unwrap_err();
    assert_eq!(e.kind, tessera::ErrorKind::Invalid);
    assert_eq!(e.violations[0].field, "stop_at");
}

#[test]
fn http_flv_input_is_relayed() {
    let rig = rig();
    let opts = PublishOpts {
        pattern: Pattern::Solid(MAGENTA),
        ..PublishOpts::default()
    };
    write_flv(&rig.nginx.http_dir().join("in.flv"), &opts, 6);
    let probe = rig.probe("o1");
    let mut s = spec(&rig, false, &["o1"]);
    s["main"] = json!({"url": rig.nginx.http_url("in.flv")});
    rig.put_relay("r", &s);
    rig.start_relay("r");
    expect_colour(&probe, MAGENTA, Duration::from_secs(15));
    rig.wait_relay("r", Duration::from_secs(5), |s| {
        s["active"] == "main" && output_state(s, "o1") == "live"
    });
}
