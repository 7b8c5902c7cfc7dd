//! Ending sessions nobody feeds: vendors end a mix whose inputs have all been gone for a while (ZEGO's
//! MaxIdleTime, Tencent's 15 minutes). Each dialect waits here, then removes its own record and the mix.

use std::time::{Duration, Instant};

use crate::engine::{status::InputState, Engine};

/// Waits until mix `mix_id` has had no live input for `max_idle`. `false` when the mix went away first.
pub async fn until_idle(engine: &Engine, mix_id: &str, max_idle: Duration) -> bool {
    let mut last_live = Instant::now();
    let mut tick =
        tokio::time::interval(Duration::from_secs(1).min(max_idle.max(Duration::from_millis(100))));
    loop {
        tick.tick().await;
        let Some(view) = engine.get_mix(mix_id) else {
            return false;
        };
        if view
            .status
            .inputs
            .iter()
            .any(|i| i.state == InputState::Live)
        {
            last_live = Instant::now();
        } else if last_live.elapsed() >= max_idle {
            return true;
        }
    }
}
