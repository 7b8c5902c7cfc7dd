//! `/metrics` on real media, read by the Prometheus client library's parser: counters move as the media does
//! (about 30 output frames a second, bytes in and out), a killed input goes down and is retried, a dead target
//! is retried while the other output keeps sending, and the CPU attributed to mixes adds up to what the process
//! used.

use std::time::{Duration, Instant};

use super::*;

/// Two scrapes `secs` apart: (first, second, seconds between them).
fn two_scrapes(url: &str, secs: f64) -> (Metrics, Metrics, f64) {
    let first = Metrics::scrape(url, None);
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let second = Metrics::scrape(url, None);
    (first, second, began.elapsed().as_secs_f64())
}

#[test]
fn counters_follow_the_media() {
    let rig = Rig::start_with(quick_retries);
    let a = rig.solid("a", RED, Some(440.0));
    let _b = rig.solid("b", GREEN, None);
    let dead = format!("rtmp://127.0.0.1:{}/mix/nowhere", free_port());
    let mut s = spec("#0000FF", side_by_side());
    s["outputs"] = json!([
        {"target": {"stream_id": "out"}},
        {"target": {"url": dead}}
    ]);
    rig.put("m", &s);
    let url = rig.tessera.url("/metrics");
    let ia = rig.nginx.rtmp_url("live", "a");
    let ib = rig.nginx.rtmp_url("live", "b");
    // Outputs are named by stream id, or by URL without query.
    let out = |o: &str| {
        let name = if o == "live" { "out" } else { dead.as_str() };
        [("mix", "m"), ("output", name)]
    };

    let ready = wait_for(Duration::from_secs(30), || {
        let m = Metrics::scrape(&url, None);
        m.get("tessera_output_up", &out("live")) == Some(1.0)
            && m.get("tessera_input_up", &[("input", &ia)]) == Some(1.0)
            && m.get("tessera_input_up", &[("input", &ib)]) == Some(1.0)
    });
    assert!(ready, "{}", Metrics::scrape(&url, None).text);

    let (m1, m2, secs) = two_scrapes(&url, 5.0);
    let rate = |name: &str, labels: &[(&str, &str)]| {
        (m2.value(name, labels) - m1.value(name, labels)) / secs
    };
    let fps = rate("tessera_mix_output_frames_total", &[("mix", "m")]);
    assert!((26.0..=34.0).contains(&fps), "output {fps} frames/s");
    assert_eq!(m2.value("tessera_mixes", &[("state", "running")]), 1.0);
    for input in [&ia, &ib] {
        let video = rate(
            "tessera_input_frames_total",
            &[("input", input), ("kind", "video")],
        );
        assert!(
            (24.0..=36.0).contains(&video),
            "{input}: {video} video frames/s"
        );
        assert!(
            rate(
                "tessera_input_frames_total",
                &[("input", input), ("kind", "audio")]
            ) > 10.0
        );
        assert!(rate("tessera_input_received_bytes_total", &[("input", input)]) > 1_000.0);
        assert!(m2.value("tessera_input_last_frame_age_seconds", &[("input", input)]) < 1.0);
    }
    assert!(
        rate("tessera_output_sent_bytes_total", &out("live")) > 1_000.0,
        "{}",
        m2.text
    );
    // The dead target: down, retried (from 300 ms, at most 2 s apart), sending nothing.
    assert_eq!(m2.value("tessera_output_up", &out("dead")), 0.0);
    assert!(rate("tessera_output_reconnects_total", &out("dead")) > 0.0);
    assert_eq!(
        m2.value("tessera_output_sent_bytes_total", &out("dead")),
        0.0
    );
    assert_eq!(
        m2.value("tessera_output_reconnects_total", &out("live")),
        0.0
    );
    assert!(rate("tessera_mix_cpu_seconds_total", &[("mix", "m")]) > 0.01);
    let lag = m2.value("tessera_mix_lag_seconds", &[("mix", "m")]);
    assert!((0.0..2.0).contains(&lag), "lag {lag}");

    // Input a killed: down, retried, its frames stop; the mix keeps its pace.
    a.stop();
    let down = wait_for(Duration::from_secs(15), || {
        Metrics::scrape(&url, None).get("tessera_input_up", &[("input", &ia)]) == Some(0.0)
    });
    assert!(down, "input a never reported down");
    let (k1, k2, secs) = two_scrapes(&url, 4.0);
    let krate = |name: &str, labels: &[(&str, &str)]| {
        (k2.value(name, labels) - k1.value(name, labels)) / secs
    };
    assert!(krate("tessera_input_reconnects_total", &[("input", &ia)]) > 0.0);
    assert_eq!(
        krate(
            "tessera_input_frames_total",
            &[("input", &ia), ("kind", "video")]
        ),
        0.0
    );
    assert!(k2.value("tessera_input_last_frame_age_seconds", &[("input", &ia)]) > 3.0);
    let fps = krate("tessera_mix_output_frames_total", &[("mix", "m")]);
    assert!(
        (26.0..=34.0).contains(&fps),
        "output {fps} frames/s with an input gone"
    );
    assert!(
        krate(
            "tessera_input_frames_total",
            &[("input", &ib), ("kind", "video")]
        ) > 20.0
    );
    assert!(krate("tessera_output_sent_bytes_total", &out("live")) > 1_000.0);
    assert!(krate("tessera_output_reconnects_total", &out("dead")) > 0.0);

    // Back when it is published again.
    let _a = rig.solid("a", RED, Some(440.0));
    let up = wait_for(Duration::from_secs(20), || {
        Metrics::scrape(&url, None).get("tessera_input_up", &[("input", &ia)]) == Some(1.0)
    });
    assert!(up, "input a never came back");
}

/// With only Tessera in the process (the real binary), the CPU attributed to mixes accounts for nearly all the
/// process used while they run: the rest is the API, the runtime and GStreamer's own threads.
#[test]
fn mix_cpu_adds_up_to_the_process() {
    init();
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = write_config(dir.path(), &nginx, "");
    let server = Server::start(&config, port);
    let publish = |id: &str, rgb: u32| {
        Publisher::start(
            &nginx.rtmp_url("live", id),
            PublishOpts {
                pattern: Pattern::Solid(rgb),
                width: 320,
                height: 180,
                ..PublishOpts::default()
            },
        )
    };
    let _p = [publish("a", RED), publish("b", GREEN), publish("c", BLUE)];
    // Two mixes share input b: its decoding is split between them.
    for (id, inputs) in [("m1", ["a", "b"]), ("m2", ["b", "c"])] {
        let mut s = spec(
            "#000000",
            vec![
                input(inputs[0], rect(0, 0, 320, 180)),
                input(inputs[1], rect(320, 0, 320, 180)),
            ],
        );
        s["outputs"] = json!([{"target": {"stream_id": format!("{id}-out")}}]);
        let (status, body) = server.request("PUT", &format!("/v1/mixes/{id}"), Some(&s));
        assert_eq!(status, 201, "{body}");
    }
    let url = format!("{}/metrics", server.base);
    assert!(wait_for(Duration::from_secs(30), || {
        let m = Metrics::scrape(&url, None);
        ["m1", "m2"]
            .iter()
            .all(|id| m.get("tessera_output_up", &[("mix", id)]) == Some(1.0))
    }));
    // Warmed up; then 10 s measured.
    std::thread::sleep(Duration::from_secs(2));
    let (m1, m2, _) = two_scrapes(&url, 10.0);
    let delta =
        |name: &str, labels: &[(&str, &str)]| m2.value(name, labels) - m1.value(name, labels);
    // The serving process and its worker processes, where the mixes run.
    let process =
        delta("process_cpu_seconds_total", &[]) + delta("tessera_workers_cpu_seconds_total", &[]);
    let mixes = delta("tessera_mix_cpu_seconds_total", &[("mix", "m1")])
        + delta("tessera_mix_cpu_seconds_total", &[("mix", "m2")]);
    let inputs: f64 = ["a", "b", "c"]
        .iter()
        .map(|s| {
            delta(
                "tessera_input_cpu_seconds_total",
                &[("input", &nginx.rtmp_url("live", s))],
            )
        })
        .sum();
    let share = mixes / process;
    eprintln!(
        "the server's threads by name (CPU seconds): {:?}",
        threads_by_name(server.pid())
    );
    eprintln!(
        "CPU over 10 s: process {process:.3} s, mixes {mixes:.3} s ({:.1} %), of which inputs {inputs:.3} s; \
         unattributed {:.3} s",
        share * 100.0,
        process - mixes
    );
    assert!(process > 0.2, "process used {process} s");
    // Attribution never exceeds what was used (tick rounding: 2 %), and misses little.
    assert!(share <= 1.02, "mixes {mixes} s > process {process} s");
    assert!(
        share >= 0.65,
        "only {:.0} % of the process's CPU attributed",
        share * 100.0
    );
}

/// CPU seconds of a process's threads, summed by thread name: where unattributed time goes.
fn threads_by_name(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *by.entry(name).or_insert(0.0) += ticks / 100.0;
    }
    by
}
