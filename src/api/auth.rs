//! Bearer tokens for the native API, the event stream and `/metrics` (`[server] api_tokens`, `read_only_tokens`,
//! `token_file`). Vendor dialects keep their own signatures; `/healthz` and `/readyz` stay open for load
//! balancers. Tokens are compared in constant time and never logged.

use axum::{
    extract::{Request, State},
    http::{header, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{constant_time_eq, ApiError, AppState};
use crate::config::{Secret, ServerConfig, MIN_SECRET_CHARS};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything.
    Full,
    /// GET and HEAD only.
    ReadOnly,
}

/// The node's tokens; none: the native API is open (allowed on loopback, or by `allow_unauthenticated`).
#[derive(Default)]
pub struct Tokens {
    tokens: Vec<(Secret, Access)>,
}

impl Tokens {
    /// The tokens `server` names, its token file read. Refused: a token shorter than 16 characters, an
    /// unreadable file, or no token at all on an address other machines reach (unless `allow_unauthenticated`).
    pub fn from_config(server: &ServerConfig) -> Result<Self, String> {
        let mut tokens: Vec<(Secret, Access)> = server
            .api_tokens
            .iter()
            .map(|t| (t.clone(), Access::Full))
            .chain(
                server
                    .read_only_tokens
                    .iter()
                    .map(|t| (t.clone(), Access::ReadOnly)),
            )
            .collect();
        if !server.token_file.is_empty() {
            let text = std::fs::read_to_string(&server.token_file)
                .map_err(|e| format!("server.token_file {}: {e}", server.token_file))?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                tokens.push(match line.strip_prefix("ro:") {
                    Some(t) => (Secret::from(t.trim()), Access::ReadOnly),
                    None => (Secret::from(line), Access::Full),
                });
            }
        }
        if let Some(n) = tokens.iter().position(|(t, _)| !t.is_strong()) {
            return Err(format!(
                "API token #{} is shorter than {MIN_SECRET_CHARS} characters",
                n + 1
            ));
        }
        if tokens.is_empty() && !server.listen.ip().is_loopback() && !server.allow_unauthenticated {
            return Err(format!(
                "server.listen is {}, which other machines can reach, and no API token is configured: set \\
                 server.api_tokens (or server.token_file), or server.allow_unauthenticated = true to serve the \\
                 native API to anyone who reaches the port",
                server.listen
            ));
        }
        Ok(Self { tokens })
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// What `presented` may do, if it is a token. Every token is compared, in constant time each.
    pub fn check(&self, presented: &str) -> Option<Access> {
        let mut access = None;
        for (token, a) in &self.tokens {
            if constant_time_eq(token.expose().as_bytes(), presented.as_bytes()) {
                access = access.or(Some(*a));
            }
        }
        access
    }
}

/// The token a request presents: `Authorization: Bearer …`, or `?access_token=…` on a GET (an `EventSource` in a
/// browser cannot set headers).
fn presented(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    if req.method() == Method::GET {
        let query = req.uri().query()?;
        return url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned());
    }
    None
}

/// Lets a request through when tokens are off, or it carries one that may do what it asks.
pub async fn require(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let tokens = state.tokens.get();
    if tokens.is_empty() {
        return next.run(req).await;
    }
    let Some(access) = presented(&req).and_then(|t| tokens.check(&t)) else {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this API needs a token: send Authorization: Bearer <token>",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    };
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    if access == Access::ReadOnly && !reads {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may only read (GET)",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(extra: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
        let mut s = ServerConfig::default();
        extra(&mut s);
        s
    }

    #[test]
    fn tokens_are_required_off_loopback_and_strong() {
        let open = server(|s| s.listen = "0.0.0.0:8080".parse().unwrap());
        let e = Tokens::from_config(&open).err().unwrap();
        assert!(e.contains("allow_unauthenticated"), "{e}");
        let allowed = server(|s| {
            s.listen = "0.0.0.0:8080".parse().unwrap();
            s.allow_unauthenticated = true;
        });
        assert!(Tokens::from_config(&allowed).unwrap().is_empty());
        assert!(Tokens::from_config(&ServerConfig::default())
            .unwrap()
            .is_empty());
        let weak = server(|s| s.api_tokens = vec!["short".into()]);
        assert!(Tokens::from_config(&weak).err().unwrap().contains("16"));
    }

    #[test]
    fn full_and_read_only_tokens_from_config_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(
            &file,
            "# ops\nfile-full-token-0123456789\nro: file-read-token-0123456789\n\n",
        )
        .unwrap();
        let t = Tokens::from_config(&server(|s| {
            s.listen = "0.0.0.0:8080".parse().unwrap();
            s.api_tokens = vec!["conf-full-token-0123456789".into()];
            s.read_only_tokens = vec!["conf-read-token-0123456789".into()];
            s.token_file = file.display().to_string();
        }))
        .unwrap();
        assert_eq!(t.check("conf-full-token-0123456789"), Some(Access::Full));
        assert_eq!(t.check("file-full-token-0123456789"), Some(Access::Full));
        assert_eq!(
            t.check("conf-read-token-0123456789"),
            Some(Access::ReadOnly)
        );
        assert_eq!(
            t.check("file-read-token-0123456789"),
            Some(Access::ReadOnly)
        );
        assert_eq!(t.check("conf-full-token-012345678"), None);
        assert_eq!(t.check(""), None);
        let missing = server(|s| s.token_file = "/nonexistent/tokens".into());
        assert!(Tokens::from_config(&missing).is_err());
    }
}
