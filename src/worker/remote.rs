//! A mix running in a worker process, as the engine holds it: the same operations as a pipeline in this
//! process, each a request to the worker, and its status as the worker last reported it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    pool::{OnFailure, ProcessUsage, Worker, Workers},
    wire::{self, Fault, Frame, FromWorker, MixReport, Snapshot, ToWorker},
};
use crate::{
    engine::{status::MixStatus, MixMetrics},
    error::Error,
    model::MixSpec,
    preview::{SnapshotError, ViewerStream},
};

/// How long a start or an update may take in the worker (a first start loads GStreamer's decoders).
const BUILD_WAIT: Duration = Duration::from_secs(30);
/// How long a stop may take: the outputs' unpublish waits are bounded well below.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// How long a snapshot may take: its frame wait and its conversion turn.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(10);

pub struct RemoteMix {
    pool: Workers,
    worker: Arc<Worker>,
    id: String,
    /// What runs there now.
    spec: Mutex<MixSpec>,
}

impl RemoteMix {
    /// Places mix `id` on a worker and starts it there. `images` are the files the spec names, as loaded;
    /// `inputs` its resolved input URLs.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        pool: &Workers,
        id: &str,
        run: u64,
        spec: &MixSpec,
        images: &HashMap<String, Vec<u8>>,
        inputs: Vec<String>,
        on_failure: OnFailure,
        on_death: OnFailure,
    ) -> Result<Self, Error> {
        let worker = pool.place(id, run, inputs, on_failure, on_death).await?;
        let (list, body) = wire::join_images(images);
        let seq = pool.next_seq();
        let frame = Frame::with_body(
            ToWorker::Start {
                seq,
                id: id.to_string(),
                run,
                config: Box::new((*pool.config()).clone()),
                spec: Box::new(spec.clone()),
                images: list,
            },
            body,
        );
        let me = Self {
            pool: pool.clone(),
            worker,
            id: id.to_string(),
            spec: Mutex::new(spec.clone()),
        };
        match me.done(seq, frame, BUILD_WAIT).await {
            Ok(()) => Ok(me),
            Err(e) => {
                me.pool.release(&me.worker, id);
                Err(e)
            }
        }
    }

    /// Applies `spec` without restarting (the engine checked that it can).
    pub async fn update(
        &self,
        spec: &MixSpec,
        images: &HashMap<String, Vec<u8>>,
    ) -> Result<(), Error> {
        let (list, body) = wire::join_images(images);
        let seq = self.pool.next_seq();
        let frame = Frame::with_body(
            ToWorker::Update {
                seq,
                id: self.id.clone(),
                config: Box::new((*self.pool.config()).clone()),
                spec: Box::new(spec.clone()),
                images: list,
            },
            body,
        );
        self.done(seq, frame, BUILD_WAIT).await?;
        *self.spec.lock().unwrap() = spec.clone();
        Ok(())
    }

    /// Stops the mix (its outputs unpublish) and gives up its place in the worker.
    pub async fn stop(&self) {
        let seq = self.pool.next_seq();
        let frame = Frame::new(ToWorker::Stop {
            seq,
            id: self.id.clone(),
        });
        if let Err(e) = self.done(seq, frame, STOP_WAIT).await {
            tracing::debug!(mix = %self.id, error = %e, "stop in a worker not confirmed");
        }
        self.pool.release(&self.worker, &self.id);
    }

    /// Sends a request answered by `Done` and takes the report it carries.
    async fn done(&self, seq: u64, frame: Frame<ToWorker>, wait: Duration) -> Result<(), Error> {
        let answer = self.worker.ask(seq, frame, wait).await?;
        match answer.head {
            FromWorker::Done { result, .. } => {
                let report = result.map_err(Error::from)?;
                if report.is_some() {
                    self.worker.set_report(&self.id, report);
                }
                Ok(())
            }
            _ => Err(Error::internal("a worker answered with the wrong frame")),
        }
    }

    pub fn spec(&self) -> MixSpec {
        self.spec.lock().unwrap().clone()
    }

    /// The status the worker last reported, with the worker's CPU and memory.
    pub fn status(&self) -> Option<MixStatus> {
        let MixReport { mut status, .. } = self.worker.report_of(&self.id)?;
        status.process = Some(self.usage());
        Some(status)
    }

    pub fn metrics(&self) -> MixMetrics {
        self.worker
            .report_of(&self.id)
            .map(|r| r.metrics)
            .unwrap_or_default()
    }

    pub fn usage(&self) -> ProcessUsage {
        self.worker.usage()
    }

    pub fn fault(&self, fault: Fault) {
        self.worker.send(Frame::new(ToWorker::Fault {
            id: self.id.clone(),
            fault,
        }));
    }

    /// One frame as JPEG: of the mix's picture (`input: None`) or of one input.
    pub async fn snapshot(
        &self,
        input: Option<&str>,
        width: u32,
    ) -> Result<Result<Vec<u8>, SnapshotError>, Error> {
        let seq = self.pool.next_seq();
        let frame = Frame::new(ToWorker::Snapshot {
            seq,
            id: self.id.clone(),
            input: input.map(String::from),
            width,
        });
        let answer = self.worker.ask(seq, frame, SNAPSHOT_WAIT).await?;
        match answer.head {
            FromWorker::Jpeg { result: Ok(()), .. } => Ok(Ok(answer.body)),
            FromWorker::Jpeg {
                result: Err(Snapshot::Failed(e)),
                ..
            } => Ok(Err(e)),
            FromWorker::Jpeg {
                result: Err(Snapshot::Refused(e)),
                ..
            } => Err(e.into()),
            _ => Err(Error::internal("a worker answered with the wrong frame")),
        }
    }

    /// A new live-preview viewer of the mix's output; `None` when it has its most viewers.
    pub async fn watch(&self) -> Result<Option<ViewerStream>, Error> {
        let stream = self.pool.next_stream();
        let (tx, viewer) = ViewerStream::channel();
        let weak = tx.downgrade();
        // Registered first: the worker's first bytes may come before its answer.
        self.worker.watch(stream, tx);
        let seq = self.pool.next_seq();
        let frame = Frame::new(ToWorker::Watch {
            seq,
            id: self.id.clone(),
            stream,
        });
        let answer = self.worker.ask(seq, frame, SNAPSHOT_WAIT).await;
        let taken = match answer.map(|a| a.head) {
            Ok(FromWorker::Watching { result, .. }) => result.map_err(Error::from),
            Ok(_) => Err(Error::internal("a worker answered with the wrong frame")),
            Err(e) => Err(e),
        };
        match taken {
            Ok(true) => {
                // When the viewer leaves, the worker stops sending. (Only a weak sender here: the stream ends
                // when the worker's side lets go of it.)
                let worker = self.worker.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        match weak.upgrade() {
                            None => return,
                            Some(tx) if tx.is_closed() => {
                                worker.unwatch(stream);
                                return;
                            }
                            Some(_) => {}
                        }
                    }
                });
                Ok(Some(viewer))
            }
            Ok(false) => {
                self.worker.unwatch(stream);
                Ok(None)
            }
            Err(e) => {
                self.worker.unwatch(stream);
                Err(e)
            }
        }
    }
}
