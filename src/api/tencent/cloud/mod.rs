//! Tencent Cloud API 3.0: `POST /` with `X-TC-Action: CreateCommonMixStream | CancelCommonMixStream`
//! (`X-TC-Version: 2018-08-01`), signed with TC3-HMAC-SHA256. Every answer is HTTP 200 with
//! `Content-Type: application/json` and `{"Response":{…,"RequestId"}}`; errors carry `Response.Error.{Code,Message}`
//! (the official SDKs read errors only in that shape).

pub mod tc3;
mod wire;

use axum::{
    body::Bytes,
    http::{HeaderMap, Method, Uri},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use super::{
    codes::{Reason, Refusal},
    request::{Dialect, MixRequest},
    sessions::Owner,
};
use crate::api::AppState;

const VERSION: &str = "2018-08-01";
/// Allowed clock difference of `X-TC-Timestamp`, as Tencent allows.
const MAX_SKEW_S: i64 = 300;

fn request_id() -> String {
    let r = fastrand::u128(..);
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn ok() -> Response {
    Json(json!({"Response": {"RequestId": request_id()}})).into_response()
}

fn error(code: &str, message: &str) -> Response {
    let mut r = Json(
        json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id()}}),
    )
    .into_response();
    r.extensions_mut().insert(crate::api::Outcome::REFUSED);
    r
}

use crate::clock::unix_now as now_unix;

/// A request whose headers name an `X-TC-Action`. The signature covers the raw body, checked before parsing.
pub async fn handle(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<Bytes>,
) -> Response {
    let action = headers
        .get("x-tc-action")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let config = &state.config.get().tencentcloud;
    let body = match body {
        Some(b) => b,
        None => {
            return error(
                "InvalidParameter",
                "the request body could not be read (too large?)",
            )
        }
    };
    let lookup = |id: &str| {
        (!config.secret_id.is_empty()
            && crate::api::constant_time_eq(id.as_bytes(), config.secret_id.as_bytes()))
        .then(|| config.secret_key.expose().to_string())
    };
    let verified = match tc3::verify(
        method.as_str(),
        uri.path(),
        uri.query().unwrap_or(""),
        headers,
        &body,
        lookup,
        now_unix(),
        MAX_SKEW_S,
    ) {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(code = e.code(), %action, "tencent API 3.0 request refused: {}", e.message());
            return error(e.code(), &e.message());
        }
    };
    // Counted once the signature holds, so only the SecretId's owner spends its budget (live and CME alike).
    if state
        .rates
        .get()
        .tencent_cloud
        .check(&verified.secret_id)
        .is_err()
    {
        let reason = Reason::RateLimited;
        let message = format!(
            "more than {} requests per second for this SecretId; retry later",
            config.max_requests_per_s
        );
        tracing::info!(code = reason.cloud_code(), %action, "tencent API 3.0 request refused: {message}");
        return error(reason.cloud_code(), &message);
    }
    let version = headers.get("x-tc-version").and_then(|v| v.to_str().ok());
    match verified.service.as_str() {
        "live" => match version {
            None | Some(VERSION) => {}
            Some(other) => {
                return error(
                    "NoSuchVersion",
                    &format!("live version {other:?} is not supported; use {VERSION}"),
                )
            }
        },
        "cme" => {
            if !matches!(version, None | Some(super::cme::VERSION)) {
                return error(
                    "NoSuchVersion",
                    &format!(
                        "cme version {:?} is not supported; use {}",
                        version.unwrap_or(""),
                        super::cme::VERSION
                    ),
                );
            }
            return match super::cme::handle(state, &action, &body).await {
                Ok(mut response) => {
                    response["RequestId"] = request_id().into();
                    Json(json!({ "Response": response })).into_response()
                }
                Err(e) => {
                    tracing::info!(code = e.code, %action, message = %e.message, "tencent CME request refused");
                    error(e.code, &e.message)
                }
            };
        }
        _ => {
            return error(
                "AuthFailure.SignatureFailure",
                "the credential scope must name the service \"live\" or \"cme\"",
            )
        }
    }
    let owner = Owner::SecretId(verified.secret_id);
    let result = match action.as_str() {
        "CreateCommonMixStream" => create(state, &body, owner).await,
        "CancelCommonMixStream" => cancel(state, &body, owner).await,
        "" => Err(Refusal::new(Reason::Missing, "X-TC-Action is empty")),
        other => {
            return error(
                "InvalidAction",
                &format!("action {other:?} does not exist here (CreateCommonMixStream, CancelCommonMixStream)"),
            )
        }
    };
    match result {
        Ok(()) => ok(),
        Err(r) => {
            tracing::info!(code = r.reason.cloud_code(), %action, message = %r.message, "tencent API 3.0 request refused");
            error(r.reason.cloud_code(), &r.message)
        }
    }
}

fn parse<'a, T: serde::Deserialize<'a>>(body: &'a [u8], action: &str) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            Reason::Parse,
            format!("the body is not a valid {action} request: {e}"),
        )
    })
}

async fn create(state: &AppState, body: &[u8], owner: Owner) -> Result<(), Refusal> {
    let req: wire::Create = parse(body, "CreateCommonMixStream")?;
    if let Some(field) = wire::missing(&req) {
        return Err(Refusal::new(
            Reason::Missing,
            format!("{field} is required"),
        ));
    }
    let req = MixRequest::from(&req);
    state
        .tencent
        .sessions
        .start(state, &req, Dialect::Cloud, owner)
        .await
        .map(|_| ())
}

async fn cancel(state: &AppState, body: &[u8], owner: Owner) -> Result<(), Refusal> {
    let req: wire::Cancel = parse(body, "CancelCommonMixStream")?;
    let session = req
        .mix_stream_session_id
        .ok_or_else(|| Refusal::new(Reason::Missing, "MixStreamSessionId is required"))?;
    state
        .tencent
        .sessions
        .cancel(&state.engine, &session, None, &owner)
        .await
}
