//! Reloading the configuration of the real binary: SIGHUP and `POST /v1/admin/reload` change tokens and limits
//! at once without touching a running mix; what needs a restart (the listen address) is reported and kept; an
//! invalid file is refused whole and the running configuration stays.

use super::*;

const OLD: &str = "reload-old-token-0123456789";
const NEW: &str = "reload-new-token-0123456789";
const READ: &str = "reload-read-token-0123456789";

/// The config file's sections besides the store and listen address: inputs and outputs nowhere, `tokens`.
fn sections(port: u16, tokens: &str, max_inputs: usize) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
api_tokens = [{tokens}]
read_only_tokens = ["{READ}"]
[ingest]
pull_url = "{NOWHERE}/live/{{stream_id}}"
[egress]
push_url = "{NOWHERE}/mix/{{stream_id}}"
retry_initial_ms = 200
retry_max_ms = 400
[engine]
max_mixes = 4
max_inputs = {max_inputs}
"#
    )
}

fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = server
        .http
        .request(method.parse().unwrap(), format!("{}{path}", server.base))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

fn two_inputs() -> Value {
    let mut spec = mix("two-out");
    spec["inputs"] = json!([
        {"id": "a", "source": {"stream_id": "a"}, "rect": {"x": 0, "y": 0, "width": 160, "height": 90}},
        {"id": "b", "source": {"stream_id": "b"}, "rect": {"x": 160, "y": 0, "width": 160, "height": 90}}
    ]);
    spec
}

#[test]
fn a_reload_changes_tokens_and_limits_live_and_keeps_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = write_config_with(dir.path(), "");
    // write_config_with wrote [server] and [store]; the test owns the whole file from here on.
    let store = format!(
        "[store]\npath = \"{}\"\n",
        dir.path().join("state/tessera.db").display()
    );
    let write = |tokens: &str, max_inputs: usize, listen: u16| {
        std::fs::write(&config, sections(listen, tokens, max_inputs) + &store).unwrap();
    };
    write(&format!("\"{OLD}\""), 4, port);
    let server = Server::start(&config, port);
    assert_eq!(
        call(&server, "PUT", "/v1/mixes/m", OLD, Some(&mix("m-out"))).0,
        201
    );

    // SIGHUP with new tokens, one input per mix, and another listen address.
    let other_port = free_port();
    write(&format!("\"{NEW}\""), 1, other_port);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        server.wait_log("configuration reloaded", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap();
    assert!(line.contains("server.listen"), "{line}");
    // Tokens: the old one is refused at once, the new one taken.
    assert_eq!(call(&server, "GET", "/v1/mixes", OLD, None).0, 401);
    assert_eq!(call(&server, "GET", "/v1/mixes", NEW, None).0, 200);
    // Limits: the next request sees the new one; the running mix was not touched.
    let (status, body) = call(&server, "PUT", "/v1/mixes/two", NEW, Some(&two_inputs()));
    assert_eq!(status, 422, "{body}");
    let (status, m) = call(&server, "GET", "/v1/mixes/m", NEW, None);
    assert_eq!(status, 200);
    assert_eq!(m["status"]["state"], "running", "{m}");
    // The listen address needs a restart: still served where it was.
    assert!(reqwest::blocking::get(format!("http://127.0.0.1:{other_port}/healthz")).is_err());

    // The same through the API: a read-only token may not; a full one may, and hears what changed and what not.
    assert_eq!(call(&server, "POST", "/v1/admin/reload", READ, None).0, 403);
    write(&format!("\"{NEW}\", \"{OLD}\""), 4, other_port);
    let (status, done) = call(&server, "POST", "/v1/admin/reload", NEW, None);
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["changed"], json!(["server", "engine"]), "{done}");
    assert_eq!(done["kept"], json!(["server.listen"]), "{done}");
    assert_eq!(
        call(&server, "PUT", "/v1/mixes/two", OLD, Some(&two_inputs())).0,
        201
    );

    // An invalid file (a token too short, a key misspelt) is refused whole: nothing changes.
    for bad in [
        "\"short\"",
        "\"fine-token-0123456789\"]\nmax_requests_per_sec = [1",
    ] {
        write(bad, 1, port);
        let (status, refused) = call(&server, "POST", "/v1/admin/reload", NEW, None);
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["error"]["code"], "invalid_config");
        assert_eq!(call(&server, "GET", "/v1/mixes", NEW, None).0, 200);
        assert_eq!(call(&server, "GET", "/v1/mixes", OLD, None).0, 200);
    }
    let (_, list) = call(&server, "GET", "/v1/mixes", NEW, None);
    assert_eq!(list["mixes"].as_array().map(Vec::len), Some(2), "{list}");

    // The log level, live: debug lines appear.
    assert!(!server.log().contains(" DEBUG "));
    std::fs::write(
        &config,
        sections(port, &format!("\"{NEW}\""), 4) + &store + "[log]\nlevel = \"debug\"\n",
    )
    .unwrap();
    let (status, done) = call(&server, "POST", "/v1/admin/reload", NEW, None);
    assert_eq!(status, 200, "{done}");
    assert!(
        done["changed"].as_array().unwrap().contains(&json!("log")),
        "{done}"
    );
    call(&server, "PUT", "/v1/mixes/m", NEW, Some(&mix("m-out")));
    assert!(
        server.wait_log(" DEBUG ", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    server.terminate();
}
