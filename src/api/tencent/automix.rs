//! Push-URL auto-mix: a stream published with `mixv2=t_id:1;session_id:S;layer:b|s` (or the older
//! `mix=layer:b;session_id:S;t_id:1`) in its publish URL's query joins auto-mix session S. Once a big (`b`) and a
//! small (`s`) stream are both live they are mixed — the big one fills the picture, the small one sits at the
//! bottom right (template 10); `t_id:2` mixes sound only — and published under the big stream's id. The session
//! ends when either stream stops.
//!
//! Tessera learns of publishes from the RTMP server's callbacks:
//! - nginx-rtmp: `on_publish http://TESSERA/callbacks/nginx/on_publish;` and
//!   `on_publish_done http://TESSERA/callbacks/nginx/on_publish_done;` (form POST, or GET with
//!   `notify_method get`; the publish URL's query arguments come as fields). Answered 200 at once: nginx holds the
//!   publish until it gets an answer, so the mix starts afterwards, in the background.
//! - SRS: `on_publish` / `on_unpublish` hooks at `/callbacks/srs/on_publish` and `/callbacks/srs/on_unpublish`
//!   (JSON with `stream` and `param`), answered `{"code":0}`.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::json;

use super::{
    codes::Reason,
    request::{Dialect, InputParam, LayoutParams, MixRequest, OutputParams},
    sessions::Owner,
};
use crate::api::AppState;

/// Template 10: the big stream fills the picture, the small one at the bottom right.
const AUTO_TEMPLATE: i64 = 10;
/// A publish callback arrives before the stream carries media: the first start may find it missing.
const START_ATTEMPTS: u32 = 5;
const RETRY: Duration = Duration::from_secs(2);

/// Which side of an auto-mix a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Big,
    Small,
}

/// The auto-mix parameters of a publish URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Join {
    session: String,
    side: Side,
    /// 1: audio and video; 2: audio only.
    template: u32,
}

/// Reads `mixv2=…` (or `mix=…`) from a publish's arguments. `None` when absent or malformed (logged).
fn parse_join(args: &HashMap<String, String>) -> Option<Join> {
    let value = args.get("mixv2").or_else(|| args.get("mix"))?;
    let mut session = None;
    let mut side = None;
    let mut template = None;
    for part in value.split(';') {
        let (k, v) = part.split_once(':')?;
        match k.trim() {
            "session_id" => session = Some(v.trim().to_string()),
            "layer" => {
                side = match v.trim() {
                    "b" => Some(Side::Big),
                    "s" => Some(Side::Small),
                    _ => None,
                }
            }
            "t_id" => template = v.trim().parse::<u32>().ok().filter(|t| *t == 1 || *t == 2),
            _ => {}
        }
    }
    let join = Join {
        session: session.filter(|s| super::translate::valid_id(s))?,
        side: side?,
        template: template?,
    };
    Some(join)
}

/// One auto-mix session's members.
#[derive(Default, Debug)]
struct Members {
    big: Option<String>,
    small: Option<String>,
    template: u32,
}

/// Who has joined which auto-mix session.
#[derive(Default)]
pub struct AutoMix {
    sessions: Mutex<HashMap<String, Members>>,
    /// Which session each live stream joined, to act on its unpublish (whose arguments may be missing).
    streams: Mutex<HashMap<String, String>>,
}

impl AutoMix {
    /// A stream went live with `args` in its publish URL.
    fn published(&self, state: &AppState, stream: &str, args: &HashMap<String, String>) {
        let Some(join) = parse_join(args) else {
            if args.contains_key("mixv2") || args.contains_key("mix") {
                tracing::warn!(%stream, ?args, "auto-mix parameters not understood; ignored");
            }
            return;
        };
        let ready = {
            let mut sessions = self.sessions.lock().unwrap();
            let m = sessions.entry(join.session.clone()).or_default();
            m.template = join.template;
            match join.side {
                Side::Big => m.big = Some(stream.to_string()),
                Side::Small => m.small = Some(stream.to_string()),
            }
            match (&m.big, &m.small) {
                (Some(b), Some(s)) => Some((b.clone(), s.clone(), m.template)),
                _ => None,
            }
        };
        self.streams
            .lock()
            .unwrap()
            .insert(stream.to_string(), join.session.clone());
        tracing::info!(%stream, session = %join.session, side = ?join.side, "joined auto-mix");
        if let Some((big, small, template)) = ready {
            tokio::spawn(start(state.clone(), join.session, big, small, template));
        }
    }

    /// A stream stopped: its auto-mix session (if any) ends.
    fn unpublished(&self, state: &AppState, stream: &str) {
        let Some(session) = self.streams.lock().unwrap().remove(stream) else {
            return;
        };
        {
            let mut sessions = self.sessions.lock().unwrap();
            if let Some(m) = sessions.get_mut(&session) {
                if m.big.as_deref() == Some(stream) {
                    m.big = None;
                }
                if m.small.as_deref() == Some(stream) {
                    m.small = None;
                }
                if m.big.is_none() && m.small.is_none() {
                    sessions.remove(&session);
                }
            }
        }
        let state = state.clone();
        tokio::spawn(async move {
            if state.tencent.sessions.owner_of(&session) != Some(Owner::AutoMix) {
                return;
            }
            let r = state
                .tencent
                .sessions
                .cancel(&state.engine, &session, None, &Owner::AutoMix)
                .await;
            tracing::info!(%session, ended = r.is_ok(), "auto-mix member left; session ended");
        });
    }

    /// Whether the members are still the ones a start was scheduled for.
    fn still(&self, session: &str, big: &str, small: &str) -> bool {
        self.sessions
            .lock()
            .unwrap()
            .get(session)
            .is_some_and(|m| m.big.as_deref() == Some(big) && m.small.as_deref() == Some(small))
    }
}

fn request(session: &str, big: &str, small: &str, template: u32) -> MixRequest {
    let audio_only = template == 2;
    let input = |id: &str, layer: i64| InputParam {
        stream_id: id.to_string(),
        layout: Some(LayoutParams {
            layer: Some(layer),
            input_type: Some(if audio_only { 4 } else { 0 }),
            ..Default::default()
        }),
        crop: None,
    };
    MixRequest {
        session_id: session.to_string(),
        template_id: (!audio_only).then_some(AUTO_TEMPLATE),
        output: OutputParams {
            stream_id: big.to_string(),
            stream_type: Some(0),
            ..Default::default()
        },
        inputs: vec![input(big, 1), input(small, 2)],
        control: Default::default(),
    }
}

async fn start(state: AppState, session: String, big: String, small: String, template: u32) {
    let req = request(&session, &big, &small, template);
    for attempt in 1..=START_ATTEMPTS {
        if !state.tencent.automix.still(&session, &big, &small) {
            return;
        }
        match state
            .tencent
            .sessions
            .start(&state, &req, Dialect::Legacy, Owner::AutoMix)
            .await
        {
            Ok(_) => {
                tracing::info!(%session, %big, %small, "auto-mix started");
                return;
            }
            Err(r) if r.reason == Reason::InputNotFound && attempt < START_ATTEMPTS => {
                tokio::time::sleep(RETRY).await;
            }
            Err(r) => {
                tracing::warn!(%session, code = r.reason.legacy_code(), message = %r.message, "auto-mix could not start");
                return;
            }
        }
    }
}

fn form(raw: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// nginx-rtmp's fields: the query (GET) and the form body (POST) together.
fn nginx_fields(query: Option<String>, body: &Bytes) -> HashMap<String, String> {
    let mut fields = form(query.unwrap_or_default().as_bytes());
    fields.extend(form(body));
    fields
}

/// `on_publish` of nginx-rtmp.
pub async fn nginx_publish(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> StatusCode {
    let fields = nginx_fields(query, &body);
    if let Some(name) = fields.get("name") {
        if push_expired(&state, name) {
            // nginx-rtmp refuses the publish on any answer but 2xx.
            return StatusCode::FORBIDDEN;
        }
    }
    if state.config.get().tencent.automix {
        if let Some(name) = fields.get("name") {
            state.tencent.automix.published(&state, name, &fields);
        }
    }
    StatusCode::OK
}

/// `on_publish_done` of nginx-rtmp.
pub async fn nginx_publish_done(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> StatusCode {
    let fields = nginx_fields(query, &body);
    if let Some(name) = fields.get("name") {
        state.tencent.automix.unpublished(&state, name);
    }
    StatusCode::OK
}

/// A publish to an expired CME push URL (`RtmpPushInputInfo.ExpiredSecond`) is refused.
fn push_expired(state: &AppState, stream: &str) -> bool {
    let expired = state
        .tencent
        .cme
        .push_expired(stream, crate::clock::unix_now());
    if expired {
        tracing::warn!(%stream, "publish refused: its CME push URL has expired");
    }
    expired
}

/// What SRS posts to its HTTP hooks (the fields used here; SRS sends more).
#[derive(Deserialize)]
pub struct SrsHook {
    #[serde(default)]
    stream: String,
    /// The publish URL's query, with its leading `?`.
    #[serde(default)]
    param: String,
}

fn srs_ok() -> Response {
    Json(json!({"code": 0})).into_response()
}

/// SRS `on_publish`.
pub async fn srs_publish(State(state): State<AppState>, body: Bytes) -> Response {
    if let Ok(hook) = serde_json::from_slice::<SrsHook>(&body) {
        if push_expired(&state, &hook.stream) {
            // SRS refuses the publish unless the answer's code is 0.
            return Json(json!({"code": 403, "msg": "push URL expired"})).into_response();
        }
        if state.config.get().tencent.automix && !hook.stream.is_empty() {
            let args = form(hook.param.trim_start_matches('?').as_bytes());
            state.tencent.automix.published(&state, &hook.stream, &args);
        }
    }
    srs_ok()
}

/// SRS `on_unpublish`.
pub async fn srs_unpublish(State(state): State<AppState>, body: Bytes) -> Response {
    if let Ok(hook) = serde_json::from_slice::<SrsHook>(&body) {
        state.tencent.automix.unpublished(&state, &hook.stream);
    }
    srs_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn both_spellings_parse() {
        let j = parse_join(&args(&[("mixv2", "t_id:1;session_id:room_1;layer:b")])).unwrap();
        assert_eq!(
            j,
            Join {
                session: "room_1".into(),
                side: Side::Big,
                template: 1
            }
        );
        let j = parse_join(&args(&[("mix", "layer:s;session_id:room_1;t_id:2")])).unwrap();
        assert_eq!((j.side, j.template), (Side::Small, 2));
        // The form decoder has already turned %3A / %3B back into : and ;.
        let decoded = form(b"name=a&mixv2=t_id%3A1%3Bsession_id%3Ar%3Blayer%3Ab");
        assert_eq!(parse_join(&decoded).unwrap().session, "r");
    }

    #[test]
    fn malformed_parameters_are_ignored() {
        for v in [
            "t_id:3;session_id:r;layer:b",
            "t_id:1;session_id:r;layer:x",
            "t_id:1;layer:b",
            "t_id:1;session_id:bad-id;layer:b",
            "garbage",
        ] {
            assert_eq!(parse_join(&args(&[("mixv2", v)])), None, "{v}");
        }
        assert_eq!(parse_join(&args(&[("other", "x")])), None);
    }

    #[test]
    fn requests_follow_the_template() {
        let r = request("s", "big", "small", 1);
        assert_eq!(r.template_id, Some(10));
        assert_eq!(r.output.stream_id, "big");
        assert_eq!(r.inputs[0].layout.as_ref().unwrap().layer, Some(1));
        let r = request("s", "big", "small", 2);
        assert_eq!(r.template_id, None);
        assert!(r
            .inputs
            .iter()
            .all(|i| i.layout.as_ref().unwrap().input_type == Some(4)));
    }
}
