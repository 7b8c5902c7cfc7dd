//! A running mix's pipeline, wherever it runs: in this process, or in a worker process ([`crate::worker`]). The
//! engine's control (records, claims, phases, recovery) is the same for both; only these calls differ.

use std::sync::{Arc, Mutex};

use super::{
    mix::{self, MixMetrics, MixPipeline},
    status::{self, MixStatus},
};
use crate::{config::Config, model::MixSpec, worker::RemoteMix};

#[derive(Clone)]
pub(super) enum Pipe {
    Local(Arc<Mutex<MixPipeline>>),
    Remote(Arc<RemoteMix>),
}

impl Pipe {
    pub fn can_update_live(&self, spec: &MixSpec) -> bool {
        match self {
            Pipe::Local(p) => p.lock().unwrap().can_update_live(spec),
            Pipe::Remote(r) => mix::updates_live(&r.spec(), spec),
        }
    }

    /// What it is doing; `spec` and `config` describe a remote mix the worker has not reported yet.
    pub fn status(&self, spec: &MixSpec, config: &Config) -> MixStatus {
        match self {
            Pipe::Local(p) => p.lock().unwrap().status(),
            Pipe::Remote(r) => r.status().unwrap_or_else(|| {
                let mut s = status::not_running(spec, status::MixState::Running, None, config);
                s.process = Some(r.usage());
                s
            }),
        }
    }

    pub fn metrics(&self) -> MixMetrics {
        match self {
            Pipe::Local(p) => p.lock().unwrap().metrics(),
            Pipe::Remote(r) => r.metrics(),
        }
    }

    /// Test-only faults; false when this pipeline cannot have it (an abort in this process would end the
    /// node, not one mix).
    pub fn fault(&self, fault: crate::worker::Fault) -> bool {
        match (self, fault) {
            (Pipe::Local(p), crate::worker::Fault::PipelineError) => {
                p.lock().unwrap().inject_failure();
                true
            }
            (Pipe::Local(_), _) => false,
            (Pipe::Remote(r), fault) => {
                r.fault(fault);
                true
            }
        }
    }
}
