//! The Tencent dialects end to end: the legacy CGI signed as Tencent's samples sign it, API 3.0 through the
//! official Python SDK, push-URL auto-mix through nginx-rtmp's callbacks; the real engine, nginx-rtmp, and the
//! decoded output checked for the picture and sound each request asked for.

#[path = "../common/mod.rs"]
mod common;

mod automix;
mod cgi;
mod cloud;
mod cme;
mod templates;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

pub const SECRET_ID: &str = "AKIDtessera0000000000000000000000000";
pub const SECRET_KEY: &str = "tesserasecretkey00000000000000000";
pub const T: Duration = Duration::from_secs(25);

/// A rig with Tencent's dialects on: the CGI (inputs checked for 3 s) and API 3.0.
pub fn rig() -> Rig {
    rig_with(|_| {})
}

pub fn rig_with(adjust: impl FnOnce(&mut tessera::Config)) -> Rig {
    Rig::start_with(|config| {
        config.tencent.appid = CGI_APPID;
        config.tencent.key = CGI_KEY.into();
        config.tencent.input_check_ms = 3_000;
        config.tencentcloud.secret_id = SECRET_ID.into();
        config.tencentcloud.secret_key = SECRET_KEY.into();
        adjust(config);
    })
}

/// Tencent's publishers and calls.
impl Rig {
    /// A 640×360 solid-colour publisher at `live/{stream}`, with a tone when asked, once nginx has it (the CGI
    /// checks its inputs exist).
    pub fn live(&self, stream: &str, rgb: u32, tone: Option<f64>) -> Publisher {
        self.live_sized(stream, rgb, tone, 640, 360)
    }

    pub fn live_sized(
        &self,
        stream: &str,
        rgb: u32,
        tone: Option<f64>,
        w: u32,
        h: u32,
    ) -> Publisher {
        self.published(
            stream,
            PublishOpts {
                pattern: Pattern::Solid(rgb),
                tone_hz: tone,
                width: w,
                height: h,
                ..PublishOpts::default()
            },
        )
    }

    /// POSTs a CGI body with a valid signature; returns the answer (asserting HTTP 200 + JSON shape).
    pub fn cgi(&self, body: &Value) -> Value {
        self.cgi_with_query(
            &cgi_query(CGI_APPID, CGI_KEY),
            body.to_string().into_bytes(),
        )
    }

    pub fn cgi_with_query(&self, query: &str, body: Vec<u8>) -> Value {
        let (status, headers, bytes) = self.tessera.request_raw(
            "POST",
            &format!("/common_access?{query}"),
            &[("content-type", "application/json")],
            body,
        );
        assert_eq!(status, 200, "CGI answers are HTTP 200");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let v: Value = serde_json::from_slice(&bytes).expect("JSON answer");
        assert!(
            v["code"].is_i64() && v["message"].is_string() && v["timestamp"].is_i64(),
            "{v}"
        );
        v
    }

    /// The engine's spec of a session's mix, if it runs.
    pub fn session_spec(&self, session: &str) -> Option<Value> {
        let (status, body) = self.tessera.get(&format!("/v1/mixes/tencent-{session}"));
        (status == 200).then(|| body["spec"].clone())
    }
}

/// The CGI envelope around `para`.
pub fn cgi_body(para: Value) -> Value {
    let now = unix_now();
    let mut para = para;
    if para.get("app_id").is_none() {
        para["app_id"] = json!(CGI_APPID);
    }
    json!({
        "timestamp": now,
        "eventId": now,
        "interface": {"interfaceName": "Mix_StreamV2", "para": para}
    })
}

/// `start_mix_stream_advanced` with these inputs.
pub fn start_para(session: &str, output: &str, inputs: Value) -> Value {
    json!({
        "interface": "mix_streamv2.start_mix_stream_advanced",
        "mix_stream_session_id": session,
        "output_stream_id": output,
        "input_stream_list": inputs
    })
}

pub fn cancel_para(session: &str, output: &str) -> Value {
    json!({
        "interface": "mix_streamv2.cancel_mix_stream",
        "mix_stream_session_id": session,
        "output_stream_id": output
    })
}

pub fn code(v: &Value) -> i64 {
    v["code"].as_i64().unwrap()
}
