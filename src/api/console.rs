//! `GET /console`: the operator's web console, one HTML page, one script and one stylesheet (plus the vendored
//! mpegts.js player), compiled into the binary from `assets/console/`. The page holds no data: it reads everything
//! from the native API in the browser, with the token the operator types in, so it is served without a token,
//! outside the native API's access check and rate limit. See `docs/console.md`.
//!
//! Every answer says `Cache-Control: no-cache` with an `ETag` (a hash of the content): a browser asks again each
//! time and gets `304 Not Modified` until the binary changes. The page's `Content-Security-Policy` lets it load
//! only its own script, style and API (`'self'`), and show `blob:` pictures and media (snapshots fetched with the
//! token, the player's MediaSource).

use std::sync::LazyLock;

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use sha2::{Digest, Sha256};

use super::AppState;

/// The page's policy: its own script, style and API; snapshots and the player's stream as `blob:` URLs; no
/// frames, plugins, forms or `<base>`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
     media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One file of the console.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    /// A strong validator of `body`, computed on first use.
    etag: LazyLock<HeaderValue>,
}

macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset {
            body: include_bytes!(concat!("../../assets/console/", $path)),
            content_type: $content_type,
            etag: LazyLock::new(|| etag(include_bytes!(concat!("../../assets/console/", $path)))),
        }
    };
}

static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
static SCRIPT: Asset = asset!("console.js", "text/javascript; charset=utf-8");
static STYLE: Asset = asset!("console.css", "text/css; charset=utf-8");
static PLAYER: Asset = asset!("vendor/mpegts.js", "text/javascript; charset=utf-8");
static PLAYER_LICENSE: Asset = asset!("vendor/LICENSE-mpegts.js", "text/plain; charset=utf-8");
static PLAYER_NOTICES: Asset = asset!("vendor/mpegts.js.LICENSE.txt", "text/plain; charset=utf-8");

/// `"<first 16 bytes of the SHA-256, hex>"`.
fn etag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|h: HeaderMap| async move { serve(&INDEX, &h) }),
        )
        // The page names its files relative to `/console`; from `/console/` they would resolve one level down.
        .route("/console/", get(to_console))
        .route(
            "/console/console.js",
            get(|h: HeaderMap| async move { serve(&SCRIPT, &h) }),
        )
        .route(
            "/console/console.css",
            get(|h: HeaderMap| async move { serve(&STYLE, &h) }),
        )
        .route(
            "/console/vendor/mpegts.js",
            get(|h: HeaderMap| async move { serve(&PLAYER, &h) }),
        )
        .route(
            "/console/vendor/LICENSE-mpegts.js",
            get(|h: HeaderMap| async move { serve(&PLAYER_LICENSE, &h) }),
        )
        .route(
            "/console/vendor/mpegts.js.LICENSE.txt",
            get(|h: HeaderMap| async move { serve(&PLAYER_NOTICES, &h) }),
        )
}

async fn to_console() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("../console"))],
    )
        .into_response()
}

/// `asset`, or 304 when the browser already has it.
fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let etag = asset.etag.clone();
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/").as_bytes() == etag.as_bytes()
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if std::ptr::eq(asset, &INDEX) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        http::{header, Request, StatusCode},
    };
    use tower::ServiceExt;

    use crate::{api, Config};

    async fn get(
        config: Config,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let app = api::app(api::AppState::in_memory(config));
        let mut req = Request::builder().uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, headers, body)
    }

    fn memory() -> Config {
        let mut config = Config::default();
        config.store.path = String::new();
        config
    }

    #[tokio::test]
    async fn the_page_is_html_with_its_policy() {
        let (status, headers, body) = get(memory(), "/console", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("img-src 'self' blob:"));
        let page = String::from_utf8(body).unwrap();
        assert!(page.starts_with("<!doctype html>"), "{page}");
        assert!(page.contains("console/console.js") && page.contains("console/console.css"));
    }

    #[tokio::test]
    async fn assets_have_their_types_and_revalidate() {
        for (path, kind) in [
            ("/console/console.js", "text/javascript; charset=utf-8"),
            ("/console/console.css", "text/css; charset=utf-8"),
            (
                "/console/vendor/mpegts.js",
                "text/javascript; charset=utf-8",
            ),
            (
                "/console/vendor/LICENSE-mpegts.js",
                "text/plain; charset=utf-8",
            ),
        ] {
            let (status, headers, body) = get(memory(), path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], kind, "{path}");
            assert!(!body.is_empty(), "{path}");
            let etag = headers[header::ETAG].to_str().unwrap().to_string();
            let (status, headers, body) = get(memory(), path, &[("if-none-match", &etag)]).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
            assert_eq!(headers[header::ETAG].to_str().unwrap(), etag);
            assert!(body.is_empty());
        }
        let (status, _, _) = get(memory(), "/console/", &[]).await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        let (status, _, _) = get(memory(), "/console/nothing.js", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn served_without_a_token_when_the_api_needs_one() {
        let mut config = memory();
        config.server.api_tokens = vec!["console-test-token-0123456789".into()];
        let (status, _, _) = get(config.clone(), "/console", &[]).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = get(config.clone(), "/console/console.js", &[]).await;
        assert_eq!(status, StatusCode::OK);
        // The data it shows still needs one.
        let (status, _, _) = get(config, "/v1/mixes", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
