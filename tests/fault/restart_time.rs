//! How long mixes take to come back after a SIGKILL: from spawning the process to every output publishing to
//! nginx-rtmp again, and to every output carrying video again (nginx has its codec header).
//!
//! By default a smoke run, part of every test run: 2 mixes, one SIGKILL, and every output must publish again with
//! video within 60 s; the figures are printed, no timing target is asserted (performance goals live in
//! benchmarks, never in timed tests). The measurement the README quotes is 10 mixes and 3 kills, on a quiet
//! machine:
//!
//! ```sh
//! TESSERA_RESTART_MIXES=10 TESSERA_RESTART_ROUNDS=3 cargo test --test fault -- --nocapture restart_time
//! cargo build --release && TESSERA_BIN=target/release/tessera TESSERA_RESTART_MIXES=10 TESSERA_RESTART_ROUNDS=3 \
//!     cargo test --test fault -- --nocapture restart_time     # the figure for a release build
//! ```
//!
//! `TESSERA_RESTART_MIXES` sets the number of mixes (default 2), `TESSERA_RESTART_ROUNDS` the number of kills
//! (default 1). The node is configured with room for them all (`[engine] max_mixes`; its default follows the
//! machine's cores, 5 on two).

use std::time::{Duration, Instant};

use super::common::{binary, write_config, Server};
use super::*;

/// nginx's statistics without line breaks.
fn stat(nginx: &Nginx) -> String {
    nginx
        .stat_xml()
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect()
}

/// Of streams `names` on nginx's `mix` application: how many have a publisher, and how many of those have sent
/// their video header (nginx shows the stream's video metadata).
fn publishing(nginx: &Nginx, names: &[String]) -> (usize, usize) {
    let xml = stat(nginx);
    let Some(at) = xml.find("<application><name>mix</name>") else {
        return (0, 0);
    };
    let app = &xml[at..];
    let app = &app[..app.find("</application>").unwrap_or(app.len())];
    let mut published = 0;
    let mut with_video = 0;
    for s in app.split("<stream>").skip(1) {
        let s = &s[..s.find("</stream>").unwrap_or(s.len())];
        let named = names
            .iter()
            .any(|n| s.starts_with(&format!("<name>{n}</name>")));
        if named && s.contains("<publishing/>") {
            published += 1;
            if s.contains("<video><width>") {
                with_video += 1;
            }
        }
    }
    (published, with_video)
}

/// A positive whole number from the environment variable `name`, else `default`.
fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{name}={v:?} is not a positive whole number")),
        Err(_) => default,
    }
}

/// Every mix the API lists has every output `live`.
fn all_live(server: &Server) -> bool {
    let (status, list) = server.request("GET", "/v1/mixes", None);
    status == 200
        && list["mixes"].as_array().is_some_and(|mixes| {
            mixes.iter().all(|m| {
                m["status"]["outputs"]
                    .as_array()
                    .is_some_and(|o| !o.is_empty() && o.iter().all(|o| o["state"] == "live"))
            })
        })
}

#[test]
fn restart_time_of_mixes_after_sigkill() {
    init();
    let mixes = env_count("TESSERA_RESTART_MIXES", 2);
    let rounds = env_count("TESSERA_RESTART_ROUNDS", 1);
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = write_config(
        dir.path(),
        &nginx,
        &format!("[engine]\nmax_mixes = {mixes}"),
    );
    let solid = |stream: &str, rgb: u32| Publisher::solid(&nginx.rtmp_url("live", stream), rgb);
    let (_a, _b) = (solid("a", RED), solid("b", GREEN));
    let names: Vec<String> = (0..mixes).map(|i| format!("r{i}")).collect();
    let server = Server::start(&config, port);
    for (i, name) in names.iter().enumerate() {
        let (l, r) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
        server.send(
            "PUT",
            &format!("/v1/mixes/m{i}"),
            Some(&two_up(
                json!({"stream_id": l}),
                json!({"stream_id": r}),
                name,
            )),
        );
    }
    assert!(
        wait_for(Duration::from_secs(60), || publishing(&nginx, &names).1
            == mixes),
        "the mixes never all published: {:?}",
        publishing(&nginx, &names)
    );
    // Settled before the first kill: every output live, as the node sees it.
    assert!(
        wait_for(T, || all_live(&server)),
        "the mixes' outputs never all live"
    );
    let mut server = Some(server);
    let mut figures = Vec::new();
    for round in 0..rounds {
        server.take().unwrap().kill();
        assert!(
            wait_for(T, || publishing(&nginx, &names).0 == 0),
            "outputs still publishing after the kill"
        );
        let mut s = Server::spawn(&config, port);
        let t0 = s.spawned;
        let (mut healthy, mut all_published, mut all_video) = (None, None, None);
        let deadline = t0 + Duration::from_secs(60);
        while all_video.is_none() && Instant::now() < deadline {
            assert!(s.alive(), "tessera exited during the restart");
            if healthy.is_none()
                && s.http
                    .get(format!("{}/healthz", s.base))
                    .timeout(Duration::from_millis(500))
                    .send()
                    .is_ok_and(|r| r.status() == 200)
            {
                healthy = Some(t0.elapsed());
            }
            let (p, v) = publishing(&nginx, &names);
            if p == mixes && all_published.is_none() {
                all_published = Some(t0.elapsed());
            }
            if v == mixes {
                all_video = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (healthy, all_published, all_video) = (
            healthy.expect("never healthy"),
            all_published.expect("not every output published again within 60 s"),
            all_video.expect("not every output carried video again within 60 s"),
        );
        eprintln!(
            "round {round}: {mixes} mixes after SIGKILL ({}): healthz {:.2} s, all publishing {:.2} s, all with video {:.2} s",
            binary(),
            healthy.as_secs_f64(),
            all_published.as_secs_f64(),
            all_video.as_secs_f64()
        );
        figures.push(all_video);
        // Settled before the next kill (or the end).
        assert!(
            wait_for(T, || all_live(&s)),
            "the restarted mixes' outputs never all live"
        );
        server = Some(s);
    }
    figures.sort();
    eprintln!(
        "restart of {mixes} mixes to all outputs carrying video: median {:.2} s, worst {:.2} s over {rounds} rounds",
        figures[figures.len() / 2].as_secs_f64(),
        figures[figures.len() - 1].as_secs_f64()
    );
}
