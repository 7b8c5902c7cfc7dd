//! The Tencent Cloud dialects: the legacy `Mix_StreamV2` CGI (`POST /common_access`), Cloud API 3.0
//! (`POST /` with `X-TC-Action`) and push-URL auto-mix. Both request forms become one [`request::MixRequest`],
//! which one shared mapping turns into the core model.

pub mod automix;
pub mod cloud;
pub mod cme;
pub mod codes;
pub mod isotime;
pub mod legacy;
pub mod request;
pub mod sessions;
pub mod templates;
pub mod translate;

use std::{sync::Arc, time::Duration};

use crate::{config::Config, engine::Engine, node::NodeParts, relay::Relays};

/// What the Tencent dialects keep between requests.
pub struct TencentState {
    /// Running sessions of the CGI, API 3.0 and auto-mix.
    pub sessions: Arc<sessions::Sessions>,
    /// Streams that joined an auto-mix session through their publish URL.
    pub automix: automix::AutoMix,
    /// CME stream-connect projects' names, owners and inputs as given.
    pub cme: cme::CmeState,
}

impl TencentState {
    pub fn new(config: &Config, parts: &NodeParts, engine: Engine) -> Self {
        Self {
            sessions: Arc::new(sessions::Sessions::new(
                parts.store.clone(),
                engine.clone(),
                Duration::from_secs(config.tencent.idle_end_s),
            )),
            automix: automix::AutoMix::default(),
            cme: cme::CmeState::new(parts.store.clone(), engine),
        }
    }

    /// Takes back what the dialects recorded of the tasks the engine and the relays restored.
    /// Takes over the session or CME project driving `task`, if one is recorded (a cluster node that now owns
    /// the engine task).
    pub async fn adopt(&self, task: &crate::events::TaskRef) {
        self.sessions.adopt(task).await;
        self.cme.adopt(task).await;
    }

    /// Forgets the session or project driving `task`, keeping its record (another node owns it now).
    pub fn release(&self, task: &crate::events::TaskRef) {
        self.sessions.release(task);
        self.cme.release(task);
    }

    pub async fn restore(&self, engine: &Engine, relays: &Relays) {
        self.sessions.restore(engine).await;
        self.cme.restore(relays).await;
    }
}
