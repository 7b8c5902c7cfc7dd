//! `GET /metrics` without media: the exposition is valid OpenMetrics (the Prometheus client library's strict
//! parser reads every scrape), names every family the operator's view promises, counts API requests by dialect,
//! action and outcome, keeps tokens and query strings out of its labels, and is guarded by the API's tokens.
//! What a scrape costs with 20 mixes is measured and printed.

use super::*;

const READ: &str = "metrics-reader-token-0123456789";

#[test]
fn metrics_are_openmetrics_and_count_what_the_api_does() {
    let mut c = config();
    c.server.api_tokens = vec!["metrics-full-token-0123456789".into()];
    c.server.read_only_tokens = vec![READ.into()];
    let tessera = Tessera::start(c);
    let url = tessera.url("/metrics");

    // Guarded like the rest of the native API; a read-only token may scrape.
    let http = reqwest::blocking::Client::new();
    assert_eq!(http.get(&url).send().unwrap().status(), 401);
    let before = Metrics::scrape(&url, Some(READ));
    for name in [
        "tessera_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(before.value(name, &[]) > 0.0, "{name}");
    }
    assert_eq!(
        before.value(
            "tessera_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    for state in ["starting", "running", "failed"] {
        assert_eq!(before.value("tessera_mixes", &[("state", state)]), 0.0);
    }
    for state in ["running", "idle"] {
        assert_eq!(before.value("tessera_relays", &[("state", state)]), 0.0);
    }
    for outcome in ["delivered", "retried", "dropped"] {
        assert_eq!(
            before.value("tessera_webhook_deliveries_total", &[("outcome", outcome)]),
            0.0
        );
    }

    // A mix whose input URL carries a token in its query: counted as a native PUT, running, its input labelled
    // without the query.
    let full = "metrics-full-token-0123456789";
    let mut spec = mix("m-out");
    spec["inputs"][0]["source"] =
        json!({"url": format!("{NOWHERE}/live/cam?token=SECRET-IN-QUERY")});
    let put = http
        .put(tessera.url("/v1/mixes/m"))
        .bearer_auth(full)
        .json(&spec)
        .send()
        .unwrap();
    assert_eq!(put.status(), 201);
    let refused = http
        .put(tessera.url("/v1/mixes/bad"))
        .bearer_auth(full)
        .json(&json!({"canvas": {"width": 0}}))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 422);

    let after = Metrics::scrape(&url, Some(READ));
    let requests = |m: &Metrics, action: &str, outcome: &str| {
        m.get(
            "tessera_api_requests_total",
            &[
                ("dialect", "native"),
                ("action", action),
                ("outcome", outcome),
            ],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(requests(&after, "PUT /v1/mixes/{id}", "ok"), 1.0);
    assert_eq!(requests(&after, "PUT /v1/mixes/{id}", "refused"), 1.0);
    assert!(requests(&after, "GET /metrics", "ok") >= 1.0);
    // The 401 above is counted, as refused, once.
    assert_eq!(requests(&before, "GET /metrics", "refused"), 1.0);
    assert_eq!(requests(&after, "GET /metrics", "refused"), 1.0);
    assert!(
        after.value(
            "tessera_api_request_duration_seconds_count",
            &[("dialect", "native")]
        ) >= 3.0
    );
    let mixes = after.value("tessera_mixes", &[("state", "running")])
        + after.value("tessera_mixes", &[("state", "starting")]);
    assert_eq!(mixes, 1.0);
    assert!(after
        .get("tessera_mix_output_frames_total", &[("mix", "m")])
        .is_some());
    assert!(after
        .get("tessera_mix_cpu_seconds_total", &[("mix", "m")])
        .is_some());
    for stage in ["input", "compositor", "encoder"] {
        assert!(
            after
                .get(
                    "tessera_mix_frames_dropped_total",
                    &[("mix", "m"), ("stage", stage)]
                )
                .is_some(),
            "{stage}"
        );
    }
    assert!(after
        .get("tessera_mix_lag_seconds", &[("mix", "m")])
        .is_some());
    assert!(after
        .get("tessera_output_up", &[("mix", "m"), ("output", "m-out")])
        .is_some());
    let input = "rtmp://127.0.0.1:1/live/cam";
    assert_eq!(after.value("tessera_input_up", &[("input", input)]), 0.0);
    assert!(!after.text.contains("SECRET-IN-QUERY"), "{}", after.text);
    assert!(!after.text.contains(full) && !after.text.contains(READ));
}

#[test]
fn a_scrape_of_twenty_mixes_is_cheap() {
    let mut c = config();
    c.engine.max_mixes = Some(20);
    let tessera = Tessera::start(c);
    for n in 0..20 {
        let mut spec = mix(&format!("out{n}"));
        spec["canvas"] = json!({"width": 160, "height": 90, "fps": 5});
        spec["inputs"][0]["rect"] = json!({"x": 0, "y": 0, "width": 80, "height": 45});
        assert_eq!(tessera.put(&format!("/v1/mixes/m{n}"), &spec).0, 201);
    }
    let url = tessera.url("/metrics");
    let first = Metrics::scrape(&url, None);
    for n in 0..20 {
        assert!(first
            .get(
                "tessera_mix_output_frames_total",
                &[("mix", &format!("m{n}"))]
            )
            .is_some());
    }
    let series = first.samples.len();
    // Measured from outside (what Prometheus waits) and inside (what rendering takes on the blocking pool).
    let http = reqwest::blocking::Client::new();
    let rounds = 50;
    let inside_before = tessera::api::metrics::SCRAPE_NS.load(std::sync::atomic::Ordering::Relaxed);
    let began = Instant::now();
    for _ in 0..rounds {
        let body = http.get(&url).send().unwrap().text().unwrap();
        assert!(body.ends_with("# EOF\n"));
    }
    let outside = began.elapsed() / rounds;
    let inside = Duration::from_nanos(
        (tessera::api::metrics::SCRAPE_NS.load(std::sync::atomic::Ordering::Relaxed)
            - inside_before)
            / rounds as u64,
    );
    eprintln!(
        "scrape cost, 20 mixes, {series} series, {} bytes: {outside:?} per scrape seen by the client, {inside:?} rendering",
        first.text.len()
    );
}
