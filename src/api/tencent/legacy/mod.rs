//! The legacy `Mix_StreamV2` CGI: `POST /common_access?appid=…&interface=Mix_StreamV2&t=…&sign=…` (the older
//! spelling `cmd=` for `appid=` too), `sign = md5(key + t)`, `t` the expiry. Every answer is
//! `{"code","message","event_id","timestamp"}` with HTTP 200, `code` 0 on success.

mod wire;

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, RawQuery, State},
    response::{IntoResponse, Response},
    Json,
};
use md5::{Digest, Md5};
use serde_json::json;

use super::{
    codes::{Reason, Refusal},
    request::{Dialect, MixRequest},
    sessions::{Applied, Owner},
};
use crate::{api::AppState, config::TencentConfig};

const START: &str = "mix_streamv2.start_mix_stream_advanced";
const CANCEL: &str = "mix_streamv2.cancel_mix_stream";

/// `md5(key + t)`, lowercase hex.
pub fn sign(key: &str, t: &str) -> String {
    let mut h = Md5::new();
    h.update(key.as_bytes());
    h.update(t.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

use crate::clock::unix_now as now_unix;

/// Checks the query's authentication; the app id on success.
fn authenticate(
    query: &HashMap<String, String>,
    config: &TencentConfig,
    now: i64,
) -> Result<u64, Refusal> {
    let missing = |what: &str| {
        Refusal::new(
            Reason::AuthMissing,
            format!("the query must carry appid (or cmd), interface=Mix_StreamV2, t and sign; {what} is missing"),
        )
    };
    let appid = query
        .get("appid")
        .or_else(|| query.get("cmd"))
        .ok_or_else(|| missing("appid"))?;
    let interface = query.get("interface").ok_or_else(|| missing("interface"))?;
    let t = query.get("t").ok_or_else(|| missing("t"))?;
    let sign_given = query.get("sign").ok_or_else(|| missing("sign"))?;
    if interface != "Mix_StreamV2" {
        return Err(Refusal::new(
            Reason::Parse,
            format!("interface {interface:?} is not supported; use Mix_StreamV2"),
        ));
    }
    let app: u64 = appid.trim().parse().map_err(|_| {
        Refusal::new(
            Reason::AuthUnknownApp,
            format!("appid {appid:?} is not a number"),
        )
    })?;
    // An empty key would verify requests signed with md5(t): such an app is not configured (configuration refuses
    // it too).
    let key = config
        .key_of(app)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            Refusal::new(
                Reason::AuthUnknownApp,
                format!("appid {app} is not configured"),
            )
        })?;
    let expiry: i64 = t
        .trim()
        .parse()
        .map_err(|_| Refusal::new(Reason::AuthExpired, "t must be a UNIX time in seconds"))?;
    if now > expiry {
        return Err(Refusal::new(
            Reason::AuthExpired,
            format!("the request expired at t={expiry} (now {now})"),
        ));
    }
    let ahead = config.max_expiry_ahead_s.min(i64::MAX as u64) as i64;
    if expiry.saturating_sub(now) > ahead {
        return Err(Refusal::new(
            Reason::AuthExpired,
            format!(
                "t={expiry} is more than {ahead} s ahead of the server's clock (now {now}); sign with an expiry a minute ahead"
            ),
        ));
    }
    let expected = sign(key, t);
    if !crate::api::constant_time_eq(
        expected.as_bytes(),
        sign_given.to_ascii_lowercase().as_bytes(),
    ) {
        return Err(Refusal::new(
            Reason::AuthSignature,
            "sign does not match md5(key + t)",
        ));
    }
    Ok(app)
}

fn answer(code: i64, message: &str, event_id: Option<i64>, timestamp: Option<i64>) -> Response {
    let mut r = Json(json!({
        "code": code,
        "message": message,
        "event_id": event_id.unwrap_or(0),
        "timestamp": timestamp.unwrap_or_else(now_unix),
    }))
    .into_response();
    if code != 0 {
        r.extensions_mut().insert(crate::api::Outcome::REFUSED);
    }
    r
}

/// `POST /common_access`.
pub async fn handle(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut event_id = None;
    let mut timestamp = None;
    let result = async {
        let app = authenticate(&query, &state.config.get().tencent, now_unix())?;
        // Counted once the signature holds, so only the APPID's owner spends its budget.
        if state
            .rates
            .get()
            .tencent_cgi
            .check(&app.to_string())
            .is_err()
        {
            return Err(Refusal::new(
                Reason::RateLimited,
                format!(
                    "more than {} requests per second for appid {app}; retry later",
                    state.config.get().tencent.max_requests_per_s
                ),
            ));
        }
        let body = body.map_err(|_| {
            Refusal::new(
                Reason::Parse,
                "the request body could not be read (too large?)",
            )
        })?;
        let body: wire::Body = serde_json::from_slice(&body).map_err(|e| {
            Refusal::new(
                Reason::Parse,
                format!("the body is not a valid Mix_StreamV2 request: {e}"),
            )
        })?;
        event_id = body.event_id;
        timestamp = body.timestamp;
        if body.interface.interface_name != "Mix_StreamV2" {
            return Err(Refusal::new(
                Reason::Parse,
                format!(
                    "interface.interfaceName is {:?}; it must be Mix_StreamV2",
                    body.interface.interface_name
                ),
            ));
        }
        let para = &body.interface.para;
        match para.app_id {
            Some(id) if id > 0 && id as u64 == app => {}
            Some(id) if id > 0 => {
                return Err(Refusal::new(
                    Reason::Parameter,
                    format!("para.app_id {id} is not the appid of the query ({app})"),
                ))
            }
            _ => {
                return Err(Refusal::new(
                    Reason::Parameter,
                    "para.app_id is missing or 0",
                ))
            }
        }
        if body.event_id.unwrap_or(0) == 0 {
            return Err(Refusal::new(Reason::Parameter, "eventId is missing or 0"));
        }
        let owner = Owner::App(app);
        match para.interface.as_str() {
            START => {
                let req = MixRequest::from(para);
                let applied = state
                    .tencent
                    .sessions
                    .start(&state, &req, Dialect::Legacy, owner)
                    .await?;
                Ok(applied)
            }
            CANCEL => {
                let output = Some(para.output_stream_id.as_str()).filter(|s| !s.is_empty());
                state
                    .tencent
                    .sessions
                    .cancel(&state.engine, &para.mix_stream_session_id, output, &owner)
                    .await?;
                Ok(Applied::Ended)
            }
            other => Err(Refusal::new(
                Reason::Parse,
                format!("para.interface {other:?} is not {START} or {CANCEL}"),
            )),
        }
    }
    .await;
    match result {
        Ok(_) => answer(0, "Success!", event_id, timestamp),
        Err(r) => {
            tracing::info!(code = r.reason.legacy_code(), message = %r.message, "tencent CGI request refused");
            answer(r.reason.legacy_code(), &r.message, event_id, timestamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_the_reference_example() {
        assert_eq!(
            sign("40328529ca4381a80c6ecf2e6aa57438", "1490858347"),
            "7f29ed83c61b77de1b0d66936fd4fd44"
        );
    }

    fn config() -> TencentConfig {
        TencentConfig {
            appid: 1252500000,
            key: "k1".into(),
            apps: vec![crate::config::TencentApp {
                appid: 7,
                key: "k7".into(),
            }],
            ..Default::default()
        }
    }

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn authentication_outcomes() {
        let c = config();
        let s1 = sign("k1", "2000");
        let s7 = sign("k7", "2000");
        let ok = authenticate(
            &q(&[
                ("appid", "1252500000"),
                ("interface", "Mix_StreamV2"),
                ("t", "2000"),
                ("sign", &s1),
            ]),
            &c,
            1500,
        );
        assert_eq!(ok, Ok(1252500000));
        // The older `cmd` spelling, a second app, upper-case hex.
        let ok = authenticate(
            &q(&[
                ("cmd", "7"),
                ("interface", "Mix_StreamV2"),
                ("t", "2000"),
                ("sign", &s7.to_uppercase()),
            ]),
            &c,
            1500,
        );
        assert_eq!(ok, Ok(7));
        let reason =
            |pairs: &[(&str, &str)], now| authenticate(&q(pairs), &c, now).unwrap_err().reason;
        assert_eq!(
            reason(&[("appid", "7"), ("t", "2000"), ("sign", &s7)], 1500),
            Reason::AuthMissing
        );
        assert_eq!(
            reason(
                &[
                    ("appid", "8"),
                    ("interface", "Mix_StreamV2"),
                    ("t", "2000"),
                    ("sign", &s7)
                ],
                1500
            ),
            Reason::AuthUnknownApp
        );
        assert_eq!(
            reason(
                &[
                    ("appid", "7"),
                    ("interface", "Mix_StreamV2"),
                    ("t", "2000"),
                    ("sign", &s7)
                ],
                2001
            ),
            Reason::AuthExpired
        );
        assert_eq!(
            reason(
                &[
                    ("appid", "7"),
                    ("interface", "Mix_StreamV2"),
                    ("t", "2000"),
                    ("sign", &s1)
                ],
                1500
            ),
            Reason::AuthSignature
        );
        assert_eq!(
            reason(
                &[
                    ("appid", "7"),
                    ("interface", "Other"),
                    ("t", "2000"),
                    ("sign", &s7)
                ],
                1500
            ),
            Reason::Parse
        );
    }

    /// Defence in depth: even if validation were bypassed, an app with an empty key verifies nothing.
    #[test]
    fn an_empty_key_verifies_nothing() {
        let c = TencentConfig {
            appid: 5,
            key: "".into(),
            apps: vec![crate::config::TencentApp {
                appid: 7,
                key: "".into(),
            }],
            ..Default::default()
        };
        let s = sign("", "2000");
        for app in ["5", "7"] {
            let r = authenticate(
                &q(&[
                    ("appid", app),
                    ("interface", "Mix_StreamV2"),
                    ("t", "2000"),
                    ("sign", &s),
                ]),
                &c,
                1000,
            );
            assert_eq!(
                r.map_err(|e| e.reason),
                Err(Reason::AuthUnknownApp),
                "{app}"
            );
        }
    }

    /// `t` is an expiry: one far ahead would make a signed URL good for that long (Tencent's documentation asks
    /// for now + 60 s). More than `tencent.max_expiry_ahead_s` (600) ahead is refused as expired.
    #[test]
    fn an_expiry_too_far_ahead_is_refused() {
        let c = config();
        let now = 1_700_000_000;
        let auth = |ahead: i64| {
            let t = (now + ahead).to_string();
            authenticate(
                &q(&[
                    ("appid", "1252500000"),
                    ("interface", "Mix_StreamV2"),
                    ("t", &t),
                    ("sign", &sign("k1", &t)),
                ]),
                &c,
                now,
            )
            .map_err(|e| e.reason)
        };
        assert_eq!(auth(60), Ok(1252500000));
        assert_eq!(auth(600), Ok(1252500000));
        assert_eq!(auth(601), Err(Reason::AuthExpired));
        assert_eq!(auth(365 * 86_400), Err(Reason::AuthExpired));
    }

    #[test]
    fn the_cgi_is_off_without_apps() {
        let c = TencentConfig::default();
        let s = sign("", "2000");
        let r = authenticate(
            &q(&[
                ("appid", "0"),
                ("interface", "Mix_StreamV2"),
                ("t", "2000"),
                ("sign", &s),
            ]),
            &c,
            1000,
        );
        assert_eq!(r.unwrap_err().reason, Reason::AuthUnknownApp);
    }
}
