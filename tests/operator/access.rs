//! Who may use the native API: bearer tokens, full or read-only; health and readiness stay open; vendor
//! dialects keep their own signatures; an open API off loopback must be a decision.

use super::*;

const FULL: &str = "full-access-token-0123456789";
const READ: &str = "read-only-token-0123456789";

fn send(
    http: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = http.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().unwrap_or(Value::Null), headers)
}

#[test]
fn tokens_guard_the_native_api_and_nothing_else() {
    let mut c = config();
    c.server.api_tokens = vec![FULL.into()];
    c.server.read_only_tokens = vec![READ.into()];
    c.zego.app_id = 1234567890;
    c.zego.server_secret = "0123456789abcdef0123456789abcdef".into();
    c.zego.max_requests_per_s = 0;
    let tessera = Tessera::start(c);
    let http = reqwest::blocking::Client::new();
    let mixes = tessera.url("/v1/mixes");

    // No token, a wrong one: 401 in the native error shape, with the scheme to use.
    for token in [None, Some("not-a-token-at-all-0123456789"), Some("")] {
        let (status, body, headers) = send(&http, "GET", &mixes, token, None);
        assert_eq!(status, 401, "{token:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    let (status, _, _) = send(
        &http,
        "PUT",
        &tessera.url("/v1/mixes/m"),
        None,
        Some(&mix("o")),
    );
    assert_eq!(status, 401);
    assert_eq!(
        send(&http, "GET", &tessera.url("/v1/events"), None, None).0,
        401
    );

    // A read-only token reads, and may not change anything.
    assert_eq!(send(&http, "GET", &mixes, Some(READ), None).0, 200);
    let (status, body, _) = send(
        &http,
        "PUT",
        &tessera.url("/v1/mixes/m"),
        Some(READ),
        Some(&mix("o")),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(
        send(
            &http,
            "DELETE",
            &tessera.url("/v1/relays/r"),
            Some(READ),
            None
        )
        .0,
        403
    );

    // A full token does everything.
    assert_eq!(
        send(
            &http,
            "PUT",
            &tessera.url("/v1/mixes/m"),
            Some(FULL),
            Some(&mix("o"))
        )
        .0,
        201
    );
    assert_eq!(
        send(
            &http,
            "DELETE",
            &tessera.url("/v1/mixes/m"),
            Some(FULL),
            None
        )
        .0,
        204
    );
    // The event stream takes the token in the query too (a browser's EventSource sends no header).
    let _stream = SseReader::open(
        &tessera.url(&format!("/v1/events?access_token={READ}")),
        &[],
    );

    // Health, readiness and the API's description stay open; vendor dialects answer on their own signatures.
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(
            send(&http, "GET", &tessera.url(path), None, None).0,
            200,
            "{path}"
        );
    }
    let zego = zego_path(
        1234567890,
        "0123456789abcdef0123456789abcdef",
        "GetMixTaskInfo",
    );
    let (status, body, _) = send(
        &http,
        "GET",
        &tessera.url(&format!("{zego}&TaskId=none")),
        None,
        None,
    );
    assert_eq!(
        (status, body["Code"].as_u64()),
        (200, Some(110209001)),
        "{body}"
    );
}

#[test]
fn an_open_api_off_loopback_is_refused_at_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    let port = free_port();
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!("[server]\nlisten = \"0.0.0.0:{port}\"\n{extra}\n[store]\npath = \"\"\n"),
        )
        .unwrap()
    };
    write("");
    let out = std::process::Command::new(binary())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("allow_unauthenticated"), "{stderr}");
    assert!(stderr.contains("api_tokens"), "{stderr}");

    // Deliberately open, it starts.
    write("allow_unauthenticated = true");
    let server = Server::start(&config, port);
    assert_eq!(server.request("GET", "/v1/mixes", None).0, 200);
}
