//! The worker process (`tessera worker`, started by `tessera serve`): runs the mix pipelines its parent asks
//! for, with an input hub of its own, and tells the parent what they do. It talks only over descriptor 3, a
//! socket its parent made; it exits when that socket closes (and the kernel kills it when the parent dies).

use std::{
    collections::HashMap,
    os::fd::FromRawFd,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::mpsc;

use super::wire::{
    self, Fault, Frame, FromWorker, MixReport, Report, Snapshot, ToWorker, WireError,
};
use crate::{
    config::Config,
    engine::{
        blocking,
        input::InputHub,
        mix::{self, MixPipeline},
    },
    error::{Error, ErrorKind},
    events::EventBus,
    media::{cpu, fence},
    model::MixSpec,
};

/// The descriptor the parent hands its socket on.
pub const SOCKET_FD: i32 = 3;

/// How long a stop waits for the outputs to unpublish (as in the serving process).
const UNPUBLISH_WAIT: Duration = Duration::from_secs(5);
/// Frames waiting to be written to the parent; reports, events and preview bytes beyond it are dropped.
const OUT_QUEUE: usize = 4096;

/// The worker's main: returns the process's exit code.
pub fn main() -> std::process::ExitCode {
    // SAFETY: descriptor 3 is the socket the parent put there for this process, and nothing else owns it.
    let socket = unsafe { std::os::unix::net::UnixStream::from_raw_fd(SOCKET_FD) };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tessera worker: no runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(socket)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "worker stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One running mix.
struct Hosted {
    pipeline: Arc<Mutex<MixPipeline>>,
    /// What it runs, to find which pictures an update changes.
    spec: MixSpec,
}

struct Host {
    hub: InputHub,
    events: EventBus,
    mixes: Mutex<HashMap<String, Hosted>>,
    out: mpsc::Sender<Frame<FromWorker>>,
    /// Live-preview viewers being forwarded, by stream number.
    watches: Mutex<HashMap<u64, tokio::task::AbortHandle>>,
}

async fn run(socket: std::os::unix::net::UnixStream) -> std::io::Result<()> {
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UnixStream::from_std(socket)?;
    let (mut reader, mut writer) = socket.into_split();
    let Some(first) = wire::read::<ToWorker>(&mut reader).await? else {
        return Ok(());
    };
    let ToWorker::Hello { log, config, fence } = first.head else {
        return Err(std::io::Error::other("the first frame was not Hello"));
    };
    let _log = crate::logging::init(&log);
    set_fence(fence);
    crate::engine::init().map_err(|e| std::io::Error::other(e.message))?;
    cpu::start_sampler();
    // Loaded now, while the worker may still be a spare, not when its first mix starts.
    tokio::task::spawn_blocking(preload_plugins);
    let (out, mut outgoing) = mpsc::channel::<Frame<FromWorker>>(OUT_QUEUE);
    let events = EventBus::new();
    let host = Arc::new(Host {
        hub: InputHub::new(config.ingest.clone(), events.clone()),
        events,
        mixes: Mutex::default(),
        out,
        watches: Mutex::default(),
    });
    tracing::debug!(pid = std::process::id(), "worker started");
    let writing = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if wire::write(&mut writer, &frame).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(forward_events(host.clone()));
    tokio::spawn(report(host.clone()));
    while let Some(frame) = wire::read::<ToWorker>(&mut reader).await? {
        let host = host.clone();
        tokio::spawn(async move { host.handle(frame).await });
    }
    // The parent closed the socket (it has no mix here any more) or is gone.
    writing.abort();
    Ok(())
}

/// The plugins every mix needs, loaded into the process (what a first mix would otherwise wait for).
fn preload_plugins() {
    use gst::prelude::*;
    for name in [
        "compositor",
        "audiomixer",
        "x264enc",
        "avenc_aac",
        "avdec_h264",
        "avdec_aac",
        "h264parse",
        "aacparse",
        "videoconvert",
        "videoscale",
        "videocrop",
        "videotestsrc",
        "audiotestsrc",
        "audioconvert",
        "audioresample",
        "textoverlay",
        "appsrc",
        "appsink",
        "queue",
        "tee",
        "capsfilter",
    ] {
        if let Some(f) = gst::ElementFactory::find(name) {
            let _ = f.load();
        }
    }
}

fn set_fence(f: wire::Fence) {
    match f.0 {
        None => fence::unfence(),
        Some(ns) => fence::hold_until_monotonic_ns(ns),
    }
}

/// Every event of the worker's mixes and inputs goes to the parent, which publishes it as its own. A report of
/// everything goes first, so that whoever acts on an event (a webhook, the console) and then reads the status
/// sees the state the event announces, not the periodic report before it: the parent reads its frames in order.
async fn forward_events(host: Arc<Host>) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let mut rx = host.events.subscribe();
    loop {
        let first = match rx.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(lost = n, "worker events lost on the way to the parent");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        // Events come in bursts (a mix starting announces every input and output): one report serves them all.
        let mut batch = vec![first];
        loop {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(TryRecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "worker events lost on the way to the parent");
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let _ = host.out.try_send(host.full_report());
        for e in batch {
            let _ = host.out.try_send(Frame::new(FromWorker::Event {
                task: e.task,
                kind: e.kind,
            }));
        }
    }
}

/// Sends what every mix and input is doing, every [`wire::REPORT_EVERY`].
async fn report(host: Arc<Host>) {
    let mut tick = tokio::time::interval(wire::REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _ = host.out.try_send(host.full_report());
    }
}

fn report_of(id: &str, p: &MixPipeline) -> MixReport {
    MixReport {
        id: id.to_string(),
        status: p.status(),
        metrics: p.metrics(),
    }
}

impl Host {
    /// What every mix and input is doing now, as a frame.
    fn full_report(&self) -> Frame<FromWorker> {
        Frame::new(FromWorker::Report(Box::new(Report {
            mixes: self.reports(),
            inputs: self.hub.metrics(),
            pulls: self.hub.active_pulls(),
            cpu: cpu::by_owner(),
        })))
    }

    /// Answers request `seq` with `result`, after a report of everything (the parent reads the inputs and
    /// counters of a mix it just started or changed at once, not a report later).
    async fn done(&self, seq: u64, result: Result<Option<MixReport>, Error>) {
        self.send(self.full_report()).await;
        self.send(Frame::new(FromWorker::Done {
            seq,
            result: result.map_err(WireError::from),
        }))
        .await;
    }

    fn reports(&self) -> Vec<MixReport> {
        let pipelines: Vec<(String, Arc<Mutex<MixPipeline>>)> = self
            .mixes
            .lock()
            .unwrap()
            .iter()
            .map(|(id, h)| (id.clone(), h.pipeline.clone()))
            .collect();
        pipelines
            .iter()
            .map(|(id, p)| report_of(id, &p.lock().unwrap()))
            .collect()
    }

    fn report(&self, id: &str) -> Option<MixReport> {
        let p = self.mixes.lock().unwrap().get(id)?.pipeline.clone();
        let r = report_of(id, &p.lock().unwrap());
        Some(r)
    }

    fn pipeline(&self, id: &str) -> Result<Arc<Mutex<MixPipeline>>, Error> {
        self.mixes
            .lock()
            .unwrap()
            .get(id)
            .map(|h| h.pipeline.clone())
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("mix {id:?} is not running")))
    }

    async fn send(&self, frame: Frame<FromWorker>) {
        let _ = self.out.send(frame).await;
    }

    async fn handle(self: Arc<Self>, frame: Frame<ToWorker>) {
        match frame.head {
            ToWorker::Hello { .. } => {}
            ToWorker::Fence(f) => set_fence(f),
            ToWorker::Start {
                seq,
                id,
                run,
                config,
                spec,
                images,
            } => {
                let result = match wire::split_images(&images, &frame.body) {
                    Ok(images) => self.clone().start(id, run, *config, *spec, images).await,
                    Err(e) => Err(e),
                };
                self.done(seq, result).await;
            }
            ToWorker::Update {
                seq,
                id,
                config,
                spec,
                images,
            } => {
                let result = match wire::split_images(&images, &frame.body) {
                    Ok(images) => self.clone().update(id, *config, *spec, images).await,
                    Err(e) => Err(e),
                };
                self.done(seq, result).await;
            }
            ToWorker::Stop { seq, id } => {
                self.stop(&id).await;
                self.done(seq, Ok(None)).await;
            }
            ToWorker::Fault { id, fault } => self.fault(&id, fault),
            ToWorker::Snapshot {
                seq,
                id,
                input,
                width,
            } => {
                let (result, body) = match self.snapshot(&id, input.as_deref(), width).await {
                    Ok(jpeg) => (Ok(()), jpeg),
                    Err(e) => (Err(e), Vec::new()),
                };
                self.send(Frame::with_body(FromWorker::Jpeg { seq, result }, body))
                    .await;
            }
            ToWorker::Watch { seq, id, stream } => {
                let result = self.clone().watch(&id, stream).map_err(WireError::from);
                self.send(Frame::new(FromWorker::Watching { seq, result }))
                    .await;
            }
            ToWorker::Unwatch { stream } => {
                if let Some(task) = self.watches.lock().unwrap().remove(&stream) {
                    task.abort();
                }
            }
        }
    }

    async fn start(
        self: Arc<Self>,
        id: String,
        run: u64,
        config: Config,
        spec: MixSpec,
        images: Vec<(String, Vec<u8>)>,
    ) -> Result<Option<MixReport>, Error> {
        let images: HashMap<String, Vec<u8>> = images.into_iter().collect();
        let host = self.clone();
        let (id2, spec2) = (id.clone(), spec.clone());
        let pipeline = blocking(move || {
            let stills = mix::render_loaded(&spec2, None, &images)?;
            let out = host.out.clone();
            let failed_id = id2.clone();
            let on_failure: mix::OnFailure = Box::new(move |reason: String| {
                let _ = out.try_send(Frame::new(FromWorker::Failed {
                    id: failed_id.clone(),
                    run,
                    reason,
                }));
            });
            MixPipeline::start(
                &id2,
                &spec2,
                stills,
                &config,
                &host.hub,
                &host.events,
                on_failure,
            )
        })
        .await?;
        let old = self.mixes.lock().unwrap().insert(
            id.clone(),
            Hosted {
                pipeline: Arc::new(Mutex::new(pipeline)),
                spec,
            },
        );
        if let Some(old) = old {
            // The parent stops a mix before it starts it again; should it not have, the old one goes now.
            stop_pipeline(old.pipeline).await;
        }
        Ok(self.report(&id))
    }

    async fn update(
        self: Arc<Self>,
        id: String,
        config: Config,
        spec: MixSpec,
        images: Vec<(String, Vec<u8>)>,
    ) -> Result<Option<MixReport>, Error> {
        let images: HashMap<String, Vec<u8>> = images.into_iter().collect();
        let (pipeline, old) = {
            let mixes = self.mixes.lock().unwrap();
            let h = mixes.get(&id).ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("mix {id:?} is not running"))
            })?;
            (h.pipeline.clone(), h.spec.clone())
        };
        let host = self.clone();
        let (p, spec2) = (pipeline.clone(), spec.clone());
        blocking(move || {
            let stills = mix::render_loaded(&spec2, Some(&old), &images)?;
            p.lock().unwrap().update(&spec2, stills, &config, &host.hub)
        })
        .await?;
        if let Some(h) = self.mixes.lock().unwrap().get_mut(&id) {
            h.spec = spec;
        }
        Ok(self.report(&id))
    }

    async fn stop(&self, id: &str) {
        let hosted = self.mixes.lock().unwrap().remove(id);
        if let Some(h) = hosted {
            stop_pipeline(h.pipeline).await;
        }
    }

    fn fault(&self, id: &str, fault: Fault) {
        let Ok(pipeline) = self.pipeline(id) else {
            return;
        };
        match fault {
            Fault::PipelineError => pipeline.lock().unwrap().inject_failure(),
            Fault::Abort => {
                tracing::warn!(mix = %id, "test fault: aborting the worker inside a streaming thread");
                match pipeline.lock().unwrap().picture_pad() {
                    Some(pad) => {
                        use gst::prelude::*;
                        pad.add_probe(gst::PadProbeType::BUFFER, |_, _| std::process::abort());
                    }
                    None => std::process::abort(),
                }
            }
            Fault::Grow => {
                tracing::warn!(mix = %id, "test fault: the worker allocates 64 MiB a second");
                std::thread::spawn(|| loop {
                    // Touched, so it is resident; never freed.
                    std::mem::forget(vec![1u8; 64 << 20]);
                    std::thread::sleep(Duration::from_secs(1));
                });
            }
        }
    }

    async fn snapshot(
        &self,
        id: &str,
        input: Option<&str>,
        width: u32,
    ) -> Result<Vec<u8>, Snapshot> {
        let refused = |e: Error| Snapshot::Refused(WireError::from(e));
        let pipeline = self.pipeline(id).map_err(refused)?;
        let look = match input {
            None => crate::engine::Look::Picture,
            Some(i) => crate::engine::Look::Input(i),
        };
        let pad =
            crate::engine::snapshot_pad(&pipeline.lock().unwrap(), id, look).map_err(refused)?;
        let sample = crate::preview::grab(&pad, crate::preview::snapshot::FRAME_WAIT)
            .await
            .map_err(Snapshot::Failed)?;
        crate::preview::to_jpeg(sample, width)
            .await
            .map_err(Snapshot::Failed)
    }

    /// Starts forwarding a new viewer of mix `id` as `stream`; `false` when the stream has its most viewers.
    fn watch(self: Arc<Self>, id: &str, stream: u64) -> Result<bool, Error> {
        let viewers = self
            .pipeline(id)?
            .lock()
            .unwrap()
            .viewers()
            .ok_or_else(|| Error::new(ErrorKind::State, format!("mix {id:?} has no output")))?;
        let Some(mut bytes) = viewers.subscribe() else {
            return Ok(false);
        };
        let host = self.clone();
        let task = tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(Ok(chunk)) = bytes.next().await {
                let frame = Frame::with_body(FromWorker::Flv { stream }, chunk.to_vec());
                // A parent that cannot take the bytes loses this viewer, as a slow viewer is lost.
                if host.out.try_send(frame).is_err() {
                    break;
                }
            }
            host.watches.lock().unwrap().remove(&stream);
            host.send(Frame::new(FromWorker::FlvEnd { stream })).await;
        });
        self.watches
            .lock()
            .unwrap()
            .insert(stream, task.abort_handle());
        Ok(true)
    }
}

async fn stop_pipeline(pipeline: Arc<Mutex<MixPipeline>>) {
    let links = blocking(move || Ok(pipeline.lock().unwrap().stop()))
        .await
        .unwrap_or_default();
    futures::future::join_all(links.into_iter().map(|l| l.shutdown(UNPUBLISH_WAIT))).await;
}
