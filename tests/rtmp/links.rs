//! Supervised links on Tessera's RTMP client that fail thousands of times leave nothing behind: an input whose
//! stream is never published (nginx answers "not found"), an output whose every publish is refused, an input
//! on a server that accepts TCP and never answers the handshake. Each is the engine's own path (an input is
//! `media::rtmp::live_source` in a pipeline run by the supervisor; an output is `media::push`), retried with a
//! backoff of a millisecond; the process's descriptors and memory are compared before and after.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use gst::prelude::*;
use tessera::{
    config::EgressConfig,
    media::{
        pipeline::PipelineRun,
        push::{PushSession, PushTarget},
        Attempt, End, Liveness, Policy, Retries, Session, Supervisor,
    },
};

use super::server::{fd_count, rss_kib, silent_server, Nginx};

/// Failed attempts each kind of link makes (`TESSERA_LEAK_ROUNDS` overrides it).
fn rounds() -> u64 {
    std::env::var("TESSERA_LEAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// Links of each kind at once: the rounds are shared between them.
const PARALLEL: usize = 16;

fn quick() -> Policy {
    Policy {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(2),
        retries: Retries::Forever,
    }
}

/// An input as the engine pulls one: the live source in a pipeline of its own, judged by the buffers it gives.
struct Pull {
    url: String,
    attempts: Arc<AtomicU64>,
    connect: Duration,
}

struct PullAttempt {
    run: PipelineRun,
    buffers: Arc<AtomicU64>,
}

impl Session for Pull {
    type Attempt = PullAttempt;

    fn build(&mut self, _n: u32) -> Result<PullAttempt, String> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let pipeline = gst::Pipeline::new();
        let src = tessera::media::rtmp::live_source(&self.url).map_err(|e| e.to_string())?;
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .map_err(|e| e.to_string())?;
        pipeline
            .add_many([&src, &sink])
            .and_then(|_| src.link(&sink).map_err(|e| gst::glib::bool_error!("{e}")))
            .map_err(|e| e.to_string())?;
        let buffers = Arc::new(AtomicU64::new(0));
        let counted = buffers.clone();
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counted.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        Ok(PullAttempt {
            run: PipelineRun::new(pipeline, None),
            buffers,
        })
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            connect: self.connect,
            stall: Duration::from_secs(2),
        }
    }
}

impl Attempt for PullAttempt {
    fn start(&mut self) -> Result<BoxFuture<'static, End>, String> {
        self.run.start()
    }

    fn progress(&self) -> u64 {
        self.buffers.load(Ordering::Relaxed)
    }

    fn stop(self, by_request: bool) {
        self.run.stop(by_request)
    }
}

/// Lets `handles` run until they have made `target` attempts together, then stops them; returns how many
/// attempts they made.
async fn churn(
    target: u64,
    attempts: impl Fn() -> u64,
    handles: Vec<tessera::media::Handle>,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(240);
    while attempts() < target {
        assert!(
            Instant::now() < deadline,
            "only {} attempts in 240 s",
            attempts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for handle in handles {
        assert!(
            handle.shutdown(Duration::from_secs(10)).await,
            "a link did not stop"
        );
    }
    attempts()
}

/// Descriptors and memory (MiB) once the links that were stopped have let go of everything.
async fn settled() -> (usize, u64) {
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    (fd_count(), rss_kib() / 1024)
}

fn assert_flat(what: &str, before: (usize, u64), after: (usize, u64), attempts: u64) {
    eprintln!(
        "{what}: {attempts} attempts; descriptors {} -> {}, RSS {} MiB -> {} MiB",
        before.0, after.0, before.1, after.1
    );
    assert!(
        after.0 <= before.0 + 4,
        "{what}: descriptors leaked: {} before, {} after {attempts} attempts",
        before.0,
        after.0
    );
    assert!(
        after.1 <= before.1 + 24,
        "{what}: memory grew: {} MiB before, {} MiB after {attempts} attempts",
        before.1,
        after.1
    );
}

#[test]
fn failing_rtmp_links_retried_thousands_of_times_leak_nothing() {
    super::common::init();
    let nginx = Nginx::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (silent_port, silent_closed) = silent_server().await;
        // An input nobody publishes: nginx-rtmp (idle_streams off) answers "not found".
        let pulls = |url: &dyn Fn(usize) -> String, connect: Duration| {
            let attempts = Arc::new(AtomicU64::new(0));
            let handles: Vec<_> = (0..PARALLEL)
                .map(|i| {
                    Supervisor::spawn(
                        Pull {
                            url: url(i),
                            attempts: attempts.clone(),
                            connect,
                        },
                        quick(),
                    )
                })
                .collect();
            (attempts, handles)
        };
        let unpublished = |i: usize| nginx.url("strict", &format!("nobody{i}"));
        // A few hundred rounds first: pools, caches and the allocator reach their working size.
        let (attempts, handles) = pulls(&unpublished, Duration::from_secs(5));
        churn(200, || attempts.load(Ordering::Relaxed), handles).await;
        let before = settled().await;
        let (attempts, handles) = pulls(&unpublished, Duration::from_secs(5));
        let n = churn(rounds(), || attempts.load(Ordering::Relaxed), handles).await;
        assert_flat("input never published", before, settled().await, n);

        // An output whose every publish is refused.
        let config = EgressConfig::default();
        let pushes = || {
            let targets: Vec<Arc<PushTarget>> = (0..PARALLEL)
                .map(|i| PushTarget::new(&nginx.url("refused", &format!("no{i}")), &config))
                .collect();
            let handles: Vec<_> = targets
                .iter()
                .map(|t| {
                    Supervisor::spawn(
                        PushSession::new(t.clone(), config.clone(), Box::new(|_| {}), None),
                        quick(),
                    )
                })
                .collect();
            (targets, handles)
        };
        let made =
            |targets: &[Arc<PushTarget>]| targets.iter().map(|t| t.reconnects() + 1).sum::<u64>();
        let before = settled().await;
        let (targets, handles) = pushes();
        let n = churn(rounds(), || made(&targets), handles).await;
        assert_flat("output refused", before, settled().await, n);

        // An input on a server that never answers the handshake: each attempt is given up by the supervisor's
        // connect timeout, with the connection still waiting for the server.
        let silent_url = |i: usize| format!("rtmp://127.0.0.1:{silent_port}/live/s{i}");
        let before = settled().await;
        let (attempts, handles) = pulls(&silent_url, Duration::from_millis(20));
        let n = churn(rounds(), || attempts.load(Ordering::Relaxed), handles).await;
        assert_flat("input on a silent server", before, settled().await, n);
        let closed = silent_closed.load(Ordering::SeqCst) as u64;
        assert!(
            closed >= n / 2,
            "the silent server saw {closed} connections closed for {n} attempts"
        );
    });
    drop(nginx);
}
