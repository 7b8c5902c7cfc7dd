//! One input of a project: pulled as FLV bytes (`rtmp2src`, or `souphttpsrc` for HTTP-FLV) into an appsink,
//! parsed into tags on the streaming thread and handed to the project's router. Nothing is decoded.
//!
//! Input that arrives faster than real time (an HTTP-FLV file, a server's burst of its GOP cache beyond
//! [`LEAD`]) is paced by its timestamps on the streaming thread, so outputs never get more than a few seconds
//! ahead of real time.
//!
//! A supervisor task rebuilds the pipeline after an error, an end of stream, nothing within
//! `ingest.connect_timeout_ms`, or a silence of `failover.stall_ms + ingest.stall_timeout_ms`, with
//! exponential backoff and jitter (`ingest.retry_initial_ms` .. `retry_max_ms`, reset by a session that
//! delivered media).

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use gst::prelude::*;
use tokio::sync::watch;

use super::{backoff::Backoff, router::Router, status::Endpoint, status::InputState};
use crate::{config::IngestConfig, flv};

/// How far ahead of real time (by its timestamps) an input may be delivered before it is paced.
const LEAD: Duration = Duration::from_millis(3_000);
/// Input this far behind real time (late media, a long hiccup) re-anchors the pacing clock.
const BEHIND: Duration = Duration::from_millis(5_000);
/// Timestamp jumps beyond these re-anchor the pacing clock.
const JUMP_BACK_MS: i64 = 1_000;
const JUMP_FORWARD_MS: i64 = 10_000;

/// Paces one session's media by its timestamps: `delay` says how long to hold a tag so that media time runs
/// at most [`LEAD`] ahead of wall time since the session's first tag.
#[derive(Default)]
struct Pacer {
    /// Wall time and media time that correspond.
    anchor: Option<(Instant, u32)>,
    last_ts: u32,
}

impl Pacer {
    fn delay(&mut self, ts: u32, now: Instant) -> Duration {
        let jumped = |last: u32| {
            let d = ts as i64 - last as i64;
            !(-JUMP_BACK_MS..=JUMP_FORWARD_MS).contains(&d)
        };
        let anchor = match self.anchor {
            Some(a) if !jumped(self.last_ts) => a,
            _ => (now, ts),
        };
        self.last_ts = ts;
        let media = ts as i64 - anchor.1 as i64;
        let wall = now.duration_since(anchor.0).as_millis() as i64;
        let ahead = media - wall;
        self.anchor = Some(if -ahead > BEHIND.as_millis() as i64 {
            (now, ts)
        } else {
            anchor
        });
        let lead = LEAD.as_millis() as i64;
        if ahead > lead {
            Duration::from_millis((ahead - lead) as u64)
        } else {
            Duration::ZERO
        }
    }
}

/// What the pull of one input shares with its streaming thread, its supervisor and status readers.
pub(crate) struct PullShared {
    pub endpoint: Endpoint,
    pub url: String,
    epoch: Instant,
    /// 1 + milliseconds since `epoch` at the newest audio or video tag of the current session; 0 before any.
    last_media: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl PullShared {
    pub(crate) fn new(endpoint: Endpoint, url: &str) -> Arc<Self> {
        Arc::new(Self {
            endpoint,
            url: url.to_string(),
            epoch: Instant::now(),
            last_media: AtomicU64::new(0),
            last_error: Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn note_media(&self) {
        self.last_media.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Time since the newest media of the current session; `None` before any.
    fn silence(&self) -> Option<Duration> {
        match self.last_media.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_millis(self.now_ms().saturating_sub(t))),
        }
    }

    /// `live` while tags arrive, `stalled` once they stop for `stall`, `absent` when the session ended (or
    /// never delivered).
    pub(crate) fn health(&self, stall: Duration) -> InputState {
        match self.silence() {
            Some(s) if s <= stall => InputState::Live,
            Some(_) => InputState::Stalled,
            None => InputState::Absent {
                last_error: self.last_error.lock().unwrap().clone(),
            },
        }
    }
}

/// Everything a pull's supervisor needs.
pub(crate) struct PullContext {
    pub shared: Arc<PullShared>,
    pub router: Weak<Mutex<Router>>,
    /// Session numbers, unique within the project run (so a replaced pull's stragglers are recognised).
    pub sessions: Arc<AtomicU64>,
    pub ingest: IngestConfig,
    /// `failover.stall_ms`, changeable while running.
    pub stall_ms: Arc<AtomicU64>,
}

pub(crate) async fn supervise(ctx: PullContext, mut stop_rx: watch::Receiver<bool>) {
    let PullContext {
        shared,
        router,
        sessions,
        ingest,
        stall_ms,
    } = ctx;
    let endpoint = shared.endpoint;
    let mut backoff = Backoff::new(
        Duration::from_millis(ingest.retry_initial_ms),
        Duration::from_millis(ingest.retry_max_ms),
    );
    loop {
        if *stop_rx.borrow() {
            return;
        }
        let session = sessions.fetch_add(1, Ordering::Relaxed) + 1;
        match router.upgrade() {
            Some(r) => r.lock().unwrap().begin_session(endpoint, session),
            None => return,
        }
        shared.last_media.store(0, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let end = match build(&shared, router.clone(), session, cancel.clone()) {
            Ok(pipeline) => {
                let end = run_session(&pipeline, &shared, &ingest, &stall_ms, &mut stop_rx).await;
                // A streaming thread waiting to pace gives up, so the pipeline can stop.
                cancel.store(true, Ordering::Relaxed);
                let _ =
                    tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null)).await;
                end
            }
            Err(e) => Some(format!("cannot build the pull pipeline: {e}")),
        };
        let Some(reason) = end else { return };
        let had_media = shared.silence().is_some();
        *shared.last_error.lock().unwrap() = Some(reason.clone());
        shared.last_media.store(0, Ordering::Relaxed);
        if had_media {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::warn!(url = %shared.url, input = endpoint.as_str(), %reason, attempt = backoff.attempt(), ?delay, "relay input down; will retry");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_rx.changed() => return,
        }
    }
}

/// Runs one session; `None` when stopped, else why it ended.
async fn run_session(
    pipeline: &gst::Pipeline,
    shared: &PullShared,
    ingest: &IngestConfig,
    stall_ms: &AtomicU64,
    stop_rx: &mut watch::Receiver<bool>,
) -> Option<String> {
    let Some(bus) = pipeline.bus() else {
        return Some("pipeline without bus".into());
    };
    let mut messages = bus.stream();
    let p = pipeline.clone();
    match tokio::task::spawn_blocking(move || p.set_state(gst::State::Playing)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Some(format!("cannot start: {e}")),
        Err(e) => return Some(format!("cannot start: {e}")),
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop_rx.changed() => return None,
            msg = messages.next() => {
                let Some(msg) = msg else { return Some("bus closed".into()) };
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        tracing::debug!(error = %err.error(), debug = ?err.debug(), "relay pull error");
                        return Some(err.error().message().chars().take(200).collect());
                    }
                    gst::MessageView::Eos(_) => return Some("stream ended".into()),
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let give_up = Duration::from_millis(stall_ms.load(Ordering::Relaxed) + ingest.stall_timeout_ms);
                match shared.silence() {
                    Some(s) if s > give_up => {
                        return Some(format!("no media for {} ms", give_up.as_millis()));
                    }
                    None if started.elapsed() > ingest.connect_timeout() => {
                        return Some(format!("no media within {} ms", ingest.connect_timeout_ms));
                    }
                    _ => {}
                }
            }
        }
    }
}

fn build(
    shared: &Arc<PullShared>,
    router: Weak<Mutex<Router>>,
    session: u64,
    cancel: Arc<AtomicBool>,
) -> Result<gst::Pipeline, gst::glib::BoolError> {
    let endpoint = shared.endpoint;
    let pipeline = gst::Pipeline::with_name(&format!("relay-pull-{}", endpoint.as_str()));
    let src = if shared.url.starts_with("rtmp") {
        gst::ElementFactory::make("rtmp2src")
            .property("location", &shared.url)
            .build()?
    } else {
        gst::ElementFactory::make("souphttpsrc")
            .property("location", &shared.url)
            .property("is-live", true)
            .build()?
    };
    let weak_shared = Arc::downgrade(shared);
    let mut parser = flv::Parser::new();
    let mut pacer = Pacer::default();
    let mut tags = Vec::new();
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let (Some(shared), Some(router)) = (weak_shared.upgrade(), router.upgrade())
                    else {
                        return Err(gst::FlowError::Flushing);
                    };
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        parser.push(&map);
                    }
                    // Tags go to the router in batches; a tag that is ahead of real time first waits (and the
                    // batch before it goes out before the wait).
                    let flush = |tags: &mut Vec<flv::Tag>| {
                        if !tags.is_empty() {
                            let mut r = router.lock().unwrap();
                            for tag in tags.drain(..) {
                                r.on_tag(endpoint, session, tag);
                            }
                        }
                    };
                    while let Some(item) = parser.next_item() {
                        let flv::Item::Tag(tag) = item else { continue };
                        if tag.kind != flv::TagKind::Script {
                            let wait = pacer.delay(tag.timestamp, Instant::now());
                            if !wait.is_zero() {
                                flush(&mut tags);
                                let deadline = Instant::now() + wait;
                                while Instant::now() < deadline && !cancel.load(Ordering::Relaxed) {
                                    std::thread::sleep(
                                        (deadline - Instant::now()).min(Duration::from_millis(50)),
                                    );
                                }
                            }
                            shared.note_media();
                        }
                        tags.push(tag);
                    }
                    flush(&mut tags);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    pipeline.add_many([&src, sink.upcast_ref()])?;
    src.link(&sink)?;
    Ok(pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_lets_live_input_through_and_holds_a_burst() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut live = Pacer::default();
        // Real-time arrival (with jitter) and a GOP-cache burst within the lead pass at once.
        for i in 0..100u32 {
            assert_eq!(
                live.delay(1_000_000 + i * 40, at(i as u64 * 40 + 30)),
                Duration::ZERO
            );
        }
        let mut burst = Pacer::default();
        assert_eq!(burst.delay(500, at(0)), Duration::ZERO);
        assert_eq!(burst.delay(3_400, at(5)), Duration::ZERO);
        // A file: ten seconds at once are held to real time plus the lead.
        assert_eq!(burst.delay(10_500, at(10)), Duration::from_millis(6_990));
        // A jump (new stream, wrapped clock) re-anchors instead of waiting for hours.
        assert_eq!(burst.delay(90_000_000, at(20)), Duration::ZERO);
        assert_eq!(burst.delay(40, at(30)), Duration::ZERO);
        // Late media (a hiccup) re-anchors too: what follows is not let through in one burst forever.
        let mut late = Pacer::default();
        assert_eq!(late.delay(0, at(0)), Duration::ZERO);
        assert_eq!(late.delay(100, at(8_000)), Duration::ZERO);
        assert_eq!(late.delay(4_600, at(8_010)), Duration::from_millis(1_490));
    }

    #[test]
    fn health_follows_media() {
        let p = PullShared::new(Endpoint::Main, "rtmp://h/a/b");
        let stall = Duration::from_millis(50);
        assert_eq!(p.health(stall), InputState::Absent { last_error: None });
        p.note_media();
        assert_eq!(p.health(stall), InputState::Live);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(p.health(stall), InputState::Stalled);
        *p.last_error.lock().unwrap() = Some("stream ended".into());
        p.last_media.store(0, Ordering::Relaxed);
        assert_eq!(
            p.health(stall),
            InputState::Absent {
                last_error: Some("stream ended".into())
            }
        );
    }
}
