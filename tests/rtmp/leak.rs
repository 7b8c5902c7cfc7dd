//! Thousands of connections that end every which way must leave no descriptor and no memory behind.
//! (Tests in this binary run one at a time, so the descriptor count is this test's alone.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{established_to, fd_count, rss_kib, silent_server, Nginx};
use tessera::rtmp::{play, publish, Options, RtmpError};

/// Connections in flight at once.
const CONCURRENCY: usize = 32;

struct Urls {
    unpublished: String,
    refused: String,
    silent: String,
}

#[derive(Default)]
struct Counts {
    played: AtomicUsize,
    play_err: AtomicUsize,
    cancelled: AtomicUsize,
    cancel_late: AtomicUsize,
    refused: AtomicUsize,
    refused_other: AtomicUsize,
    timed_out: AtomicUsize,
    silent_other: AtomicUsize,
}

/// Round `i`: kind `i % 4`.
async fn round(i: usize, urls: &Urls, counts: &Counts) {
    let fast = Options {
        connect_timeout: Duration::from_millis(20),
        ..Options::default()
    };
    match i % 4 {
        // Play an unpublished stream, drop the player right after play() resolves.
        0 => match play(&urls.unpublished, &Options::default()).await {
            Ok(player) => {
                drop(player);
                counts.played.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("play failed: {e}");
                counts.play_err.fetch_add(1, Ordering::Relaxed);
            }
        },
        // The same, the future dropped after 0–5 ms (at whatever stage it is).
        1 => {
            let after = Duration::from_micros(fastrand::u64(0..5000));
            match tokio::time::timeout(after, play(&urls.unpublished, &Options::default())).await {
                Err(_) => counts.cancelled.fetch_add(1, Ordering::Relaxed),
                Ok(_) => counts.cancel_late.fetch_add(1, Ordering::Relaxed),
            };
        }
        // A publish that on_publish refuses (nginx hangs up).
        2 => match publish(&urls.refused, &Options::default()).await {
            Err(RtmpError::Closed | RtmpError::Rejected(_)) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                eprintln!("refused publish gave {:?}", other.err());
                counts.refused_other.fetch_add(1, Ordering::Relaxed);
            }
        },
        // A server that never answers the handshake, 20 ms connect timeout.
        _ => match play(&urls.silent, &fast).await {
            Err(RtmpError::Timeout(_)) => {
                counts.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                eprintln!("silent server gave {:?}", other.err());
                counts.silent_other.fetch_add(1, Ordering::Relaxed);
            }
        },
    }
}

async fn run(rounds_each: usize, urls: &Arc<Urls>, counts: &Arc<Counts>) {
    let next = Arc::new(AtomicUsize::new(0));
    let total = rounds_each * 4;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (next, urls, counts) = (next.clone(), urls.clone(), counts.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                round(i, &urls, &counts).await;
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_descriptor_or_memory_leak() {
    let rounds: usize = std::env::var("RTMP_LEAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let nginx = Nginx::start();
    let (silent_port, _closed) = silent_server().await;
    let urls = Arc::new(Urls {
        unpublished: nginx.url("live", "nobody"),
        refused: nginx.url("refused", "x"),
        silent: format!("rtmp://127.0.0.1:{silent_port}/live/x"),
    });

    // Warm up (runtime, allocator, TLS-free paths), then measure.
    let warm = Arc::new(Counts::default());
    run(250, &urls, &warm).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (fd0, rss0) = (fd_count(), rss_kib());

    let counts = Arc::new(Counts::default());
    let t = Instant::now();
    run(rounds, &urls, &counts).await;
    let took = t.elapsed();
    // Let the silent server see the last hang-ups (its accepted sockets are in this process too).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (fd1, rss1) = (fd_count(), rss_kib());

    let c = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    eprintln!(
        "{rounds} rounds of each kind in {took:?}: played {} (failed {}), cancelled {} (finished first {}), \
         refused {} (other {}), timed out {} (other {})",
        c(&counts.played),
        c(&counts.play_err),
        c(&counts.cancelled),
        c(&counts.cancel_late),
        c(&counts.refused),
        c(&counts.refused_other),
        c(&counts.timed_out),
        c(&counts.silent_other),
    );
    eprintln!(
        "fds {fd0} -> {fd1}, RSS {} -> {} MiB",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0
    );
    assert_eq!(c(&counts.played) + c(&counts.play_err), rounds);
    assert!(c(&counts.play_err) <= rounds / 100, "too many failed plays");
    assert_eq!(c(&counts.refused), rounds);
    assert_eq!(c(&counts.timed_out), rounds);
    assert!(fd1 <= fd0 + 3, "descriptors leaked: {fd0} -> {fd1}");
    assert!(rss1 <= rss0 + 8 * 1024, "memory grew: {rss0} -> {rss1} KiB");
    assert_eq!(established_to(nginx.rtmp_port), 0);
    assert_eq!(established_to(silent_port), 0);
}
