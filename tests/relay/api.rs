//! What `Relays` refuses, and how projects are listed and forgotten (no media needed).

use serde_json::json;

use super::*;
use tessera::{relay::Endpoint, ErrorKind};

fn try_put(rig: &Rig, id: &str, spec: &Value) -> Result<bool, tessera::Error> {
    let spec: RelaySpec = serde_json::from_value(spec.clone()).unwrap();
    rig.rt.block_on(rig.relays.put(id, spec))
}

#[test]
fn refusals_listing_and_deletion() {
    let rig = Rig::start();
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
    let nf = rig.rt.block_on(rig.relays.start("nope")).unwrap_err();
    assert_eq!(nf.kind, ErrorKind::NotFound);
    assert_eq!(
        rig.relays.switch("nope", Endpoint::Main).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert!(rig.relays.get("nope").is_none());

    // Two running projects cannot push to the same URL.
    assert!(try_put(&rig, "a", &spec(&rig, false, &["o1"])).unwrap());
    assert!(!try_put(&rig, "a", &spec(&rig, false, &["o1"])).unwrap());
    assert!(try_put(&rig, "b", &spec(&rig, false, &["o1"])).unwrap());
    rig.start_project("a");
    rig.start_project("a"); // no-op
    let c = rig.rt.block_on(rig.relays.start("b")).unwrap_err();
    assert_eq!(c.kind, ErrorKind::Conflict);
    // A running project may change its outputs live; b (idle) still cannot start on o1.
    assert!(!try_put(&rig, "a", &spec(&rig, false, &["o1", "o2"])).unwrap());
    assert_eq!(
        rig.rt.block_on(rig.relays.start("b")).unwrap_err().kind,
        ErrorKind::Conflict
    );

    // Switching: no backup, or not running.
    let e = rig.relays.switch("a", Endpoint::Backup).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(
        rig.relays.switch("b", Endpoint::Main).unwrap_err().kind,
        ErrorKind::State
    );

    let ids: Vec<String> = rig.relays.list().into_iter().map(|v| v.id).collect();
    assert_eq!(ids, vec!["a", "b"]);
    assert_eq!(rig.status("a")["state"], "working");
    assert_eq!(rig.status("b")["state"], "idle");
    assert_eq!(rig.status("a")["main"]["state"], "absent");

    rig.rt.block_on(rig.relays.delete("a")).unwrap();
    assert!(rig.relays.get("a").is_none());
    assert_eq!(
        rig.rt.block_on(rig.relays.delete("a")).unwrap_err().kind,
        ErrorKind::NotFound
    );
    // With a gone, b may start.
    rig.start_project("b");
    rig.rt.block_on(rig.relays.stop("b")).unwrap();
    let s = rig.status("b");
    assert_eq!(s["state"], "idle");
    assert!(s["stopped_at"].as_i64().is_some());
}
