//! What `Relays` refuses, and how projects are listed and forgotten (no media needed).

use serde_json::json;

use super::*;
use tessera::{relay::Endpoint, ErrorKind};

fn try_put(rig: &Rig, id: &str, spec: &Value) -> Result<bool, tessera::Error> {
    let spec: RelaySpec = serde_json::from_value(spec.clone()).unwrap();
    rig.tessera.block_on(rig.tessera.relays.put(id, spec))
}

#[test]
fn refusals_listing_and_deletion() {
    let rig = rig();
    // Every violated rule, with its field.
    let bad = json!({
        "main": {"url": "ftp://x/y"},
        "outputs": [{"id": "a", "url": "http://x/y"}, {"id": "a", "url": "rtmp://h/a/b"}],
        "failover": {"stall_ms": 10, "return_to_main": true, "return_after_ms": 1000}
    });
    let e = try_put(&rig, "bad id!", &bad).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    let fields: Vec<&str> = e.violations.iter().map(|v| v.field.as_str()).collect();
    for f in [
        "id",
        "main.url",
        "outputs[0].url",
        "outputs[1].id",
        "failover.stall_ms",
    ] {
        assert!(fields.contains(&f), "{f} missing in {fields:?}");
    }
    let dup = json!({"main": {"push": "a"}, "outputs": [{"id": "a", "url": "rtmp://h/a/b"}, {"id": "b", "url": "rtmp://h/a/b"}]});
    assert_eq!(
        try_put(&rig, "d", &dup).unwrap_err().violations[0].field,
        "outputs[1].url"
    );

    // Unknown projects.
    let nf = rig
        .tessera
        .block_on(rig.tessera.relays.start("nope"))
        .unwrap_err();
    assert_eq!(nf.kind, ErrorKind::NotFound);
    assert_eq!(
        rig.tessera
            .relays
            .switch("nope", Endpoint::Main)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert!(rig.tessera.relays.get("nope").is_none());

    // Two running projects cannot push to the same URL.
    assert!(try_put(&rig, "a", &spec(&rig, false, &["o1"])).unwrap());
    assert!(!try_put(&rig, "a", &spec(&rig, false, &["o1"])).unwrap());
    assert!(try_put(&rig, "b", &spec(&rig, false, &["o1"])).unwrap());
    rig.start_relay("a");
    rig.start_relay("a"); // no-op
    let c = rig
        .tessera
        .block_on(rig.tessera.relays.start("b"))
        .unwrap_err();
    assert_eq!(c.kind, ErrorKind::Conflict);
    // A running project may change its outputs live; b (idle) still cannot start on o1.
    assert!(!try_put(&rig, "a", &spec(&rig, false, &["o1", "o2"])).unwrap());
    assert_eq!(
        rig.tessera
            .block_on(rig.tessera.relays.start("b"))
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );

    // Switching: no backup, or not running.
    let e = rig
        .tessera
        .relays
        .switch("a", Endpoint::Backup)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(
        rig.tessera
            .relays
            .switch("b", Endpoint::Main)
            .unwrap_err()
            .kind,
        ErrorKind::State
    );

    let ids: Vec<String> = rig
        .tessera
        .relays
        .list()
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(ids, vec!["a", "b"]);
    assert_eq!(rig.relay_status("a")["state"], "working");
    assert_eq!(rig.relay_status("b")["state"], "idle");
    assert_eq!(rig.relay_status("a")["main"]["state"], "absent");

    rig.tessera
        .block_on(rig.tessera.relays.delete("a"))
        .unwrap();
    assert!(rig.tessera.relays.get("a").is_none());
    assert_eq!(
        rig.tessera
            .block_on(rig.tessera.relays.delete("a"))
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    // With a gone, b may start.
    rig.start_relay("b");
    rig.tessera.block_on(rig.tessera.relays.stop("b")).unwrap();
    let s = rig.relay_status("b");
    assert_eq!(s["state"], "idle");
    assert!(s["stopped_at"].as_i64().is_some());
}
