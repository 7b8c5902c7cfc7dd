//! One output of a project: a [`PushTarget`] the router feeds whole FLV tags, supervised as a
//! [`PushSession`] (the same push every mix output is; see [`crate::media::push`]). After [`RETRY_BUDGET`]
//! attempts in a row that never got to push, the output is `failed` until the project restarts or the output
//! changes: a platform that refuses a stream key will not change its mind, and the operator is told.

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use super::{
    callback::Events,
    router::{OutTag, TagSink},
};
use crate::{
    config::EgressConfig,
    events::{EventBus, EventKind, TaskRef},
    media::{
        push::{PushSession, PushTarget},
        Handle, LinkState, Policy, Retries, Supervisor,
    },
};

/// Consecutive failed attempts (none of which got to push) before an output gives up.
pub(crate) const RETRY_BUDGET: u32 = 10;

/// The part of an output that the router (streaming threads), its link and status readers share.
pub(crate) struct OutputShared {
    pub id: String,
    pub target: Arc<PushTarget>,
    /// Shown in callbacks; changes live.
    name: Mutex<String>,
}

impl TagSink for OutputShared {
    fn push(&self, tag: &OutTag, preamble: &[gst::Buffer]) {
        self.target.push(&tag.buffer, tag.resumption, preamble);
    }
}

impl OutputShared {
    pub(crate) fn set_name(&self, name: &str) {
        *self.name.lock().unwrap() = name.to_string();
    }

    pub(crate) fn url(&self) -> &str {
        &self.target.url
    }
}

/// A running output: what the router pushes into, and its supervised link.
pub(crate) struct Output {
    pub shared: Arc<OutputShared>,
    pub link: Handle,
}

/// Starts output `id` of `project`, publishing to `url`.
pub(crate) fn start(
    project: &str,
    id: &str,
    name: &str,
    url: &str,
    config: &EgressConfig,
    callbacks: Events,
    bus: EventBus,
) -> Output {
    let shared = Arc::new(OutputShared {
        id: id.to_string(),
        target: PushTarget::new(url, config),
        name: Mutex::new(name.to_string()),
    });
    let observer = {
        let weak: Weak<OutputShared> = Arc::downgrade(&shared);
        let project = project.to_string();
        let last_kind = Mutex::new("");
        move |state: &LinkState| {
            let Some(out) = weak.upgrade() else { return };
            // Callbacks hear each change of kind (connecting → live → retrying …).
            let changed = {
                let mut last = last_kind.lock().unwrap();
                std::mem::replace(&mut *last, state.name()) != state.name()
            };
            if changed {
                let name = out.name.lock().unwrap().clone();
                callbacks.output(&out.id, &name, state);
            }
            match state {
                LinkState::Live => {
                    tracing::info!(relay = %project, output = %out.id, "relay output live")
                }
                LinkState::Failed { last_error } => {
                    tracing::error!(relay = %project, output = %out.id, %last_error, "relay output failed; giving up")
                }
                _ => {}
            }
            if let Some(kind) = EventKind::of_output(&out.id, state) {
                bus.publish(TaskRef::Relay(project.clone()), kind);
            }
        }
    };
    let link = Supervisor::spawn(
        PushSession::new(
            shared.target.clone(),
            config.clone(),
            Box::new(observer),
            Some(crate::media::cpu::tag(crate::media::cpu::Owner::Task(
                TaskRef::Relay(project.to_string()),
            ))),
        ),
        Policy {
            initial: Duration::from_millis(config.retry_initial_ms),
            max: Duration::from_millis(config.retry_max_ms),
            retries: Retries::Budget(RETRY_BUDGET),
        },
    );
    Output { shared, link }
}
