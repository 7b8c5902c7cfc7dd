//! `GET /v1/events`: what happens to mixes, as it happens, resumable and filtered.

use super::*;

#[test]
fn the_event_stream_tells_what_happens_and_resumes() {
    let tessera = Tessera::start(config());
    let all = SseReader::open(&tessera.url("/v1/events"), &[]);
    let only_m = SseReader::open(&tessera.url("/v1/events?mix=m"), &[]);

    assert_eq!(tessera.put("/v1/mixes/other", &mix("other-out")).0, 201);
    assert_eq!(tessera.put("/v1/mixes/m", &mix("m-out")).0, 201);
    let (started, _) = all.until(Duration::from_secs(10), |e| {
        e.event == "mix.started" && e.data["task"]["id"] == "m"
    });
    let started = started.expect("mix.started for m");
    assert_eq!(started.data["type"], "mix.started");
    assert_eq!(started.data["task"], json!({"kind": "mix", "id": "m"}));
    assert!(started.data["time_ms"].as_i64() > Some(1_600_000_000_000));
    let first = started.id.expect("events carry an id");

    // The output leads nowhere: it is retried, and said so, with the reason.
    let (retrying, _) = all.until(Duration::from_secs(30), |e| {
        e.event == "output.retrying" && e.data["task"]["id"] == "m"
    });
    let retrying = retrying.expect("output.retrying for m");
    assert_eq!(retrying.data["output"], "m-out");
    assert!(retrying.data["last_error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));

    assert_eq!(tessera.delete("/v1/mixes/m").0, 204);
    let (stopped, _) = all.until(Duration::from_secs(10), |e| {
        e.event == "mix.stopped" && e.data["task"]["id"] == "m"
    });
    assert_eq!(stopped.expect("mix.stopped").data["reason"], "deleted");

    // The filtered stream saw m's events only.
    let (stopped_m, seen) = only_m.until(Duration::from_secs(10), |e| e.event == "mix.stopped");
    assert!(stopped_m.is_some());
    assert!(seen.iter().all(|e| e.data["task"]["id"] == "m"), "{seen:?}");

    // A client that comes back with Last-Event-ID gets what it missed first, in order.
    let resumed = SseReader::open(
        &tessera.url("/v1/events?mix=m"),
        &[("last-event-id", &first.to_string())],
    );
    let (again, before) = resumed.until(Duration::from_secs(10), |e| e.event == "mix.stopped");
    assert!(again.is_some(), "{before:?}");
    let ids: Vec<u64> = before.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids.iter().all(|id| *id > first), "{ids:?}");
    assert!(before.iter().any(|e| e.event == "output.retrying"));
}
