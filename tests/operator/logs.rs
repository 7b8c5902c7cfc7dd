//! The real binary's log with `[log] format = "json"`: every line one JSON object, a task's id a field at the top
//! level, and failed attempts logged with their task (an input's with its pipeline).

use super::*;

/// The complete lines of `log`, each parsed (panics on one that is not a JSON object).
fn json_lines(log: &str) -> Vec<Value> {
    let complete = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect()
}

#[test]
fn json_logs_carry_task_ids_and_gstreamer_failures() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:{port}"
[ingest]
pull_url = "{NOWHERE}/live/{{stream_id}}"
retry_initial_ms = 200
retry_max_ms = 400
[egress]
push_url = "{NOWHERE}/mix/{{stream_id}}"
retry_initial_ms = 200
retry_max_ms = 400
[store]
path = ""
[log]
format = "json"
level = "info"
"#
        ),
    )
    .unwrap();
    // The configured level, not RUST_LOG's; GStreamer's threshold is Tessera's to choose.
    let server = Server::start_with(&config, port, |c| {
        c.env_remove("RUST_LOG").env_remove("GST_DEBUG");
    });
    server.send("PUT", "/v1/mixes/logged", Some(&mix("logged-out")));

    // Input and output lead nowhere: their attempts fail, and each failure is logged with its pipeline and task.
    let found = |pred: &dyn Fn(&Value) -> bool| json_lines(&server.log()).into_iter().find(pred);
    let wait = |what: &str, pred: &dyn Fn(&Value) -> bool| {
        let mut line = None;
        wait_for(Duration::from_secs(30), || {
            line = found(pred);
            line.is_some()
        });
        line.unwrap_or_else(|| panic!("no {what} in\n{}", server.log()))
    };
    // An output is an RTMP connection of Tessera's own (no pipeline): its failed attempt is one line too.
    let push = wait("failed output attempt", &|l| {
        l["message"] == "output attempt failed" && l["mix"] == "logged"
    });
    assert!(
        push["url"].as_str().is_some_and(|u| u.starts_with(NOWHERE)),
        "{push}"
    );
    assert!(
        push["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{push}"
    );
    assert_eq!(push["level"], "WARN");
    let pull = wait("failed input attempt", &|l| {
        l["message"] == "pipeline error"
            && l["url"].as_str().is_some_and(|u| u.starts_with(NOWHERE))
    });
    assert!(
        pull["pipeline"]
            .as_str()
            .is_some_and(|p| p.starts_with("pull-i")),
        "{pull}"
    );

    let lines = json_lines(&server.log());
    let applied = lines
        .iter()
        .find(|l| l["message"] == "mix applied")
        .unwrap_or_else(|| panic!("no mix applied in {lines:#?}"));
    assert_eq!(applied["mix"], "logged");
    assert_eq!(applied["level"], "INFO");
    assert_eq!(applied["target"], "tessera::engine::control");
    assert!(applied["timestamp"].is_string());
    for l in &lines {
        assert!(l["message"].is_string() && l["level"].is_string(), "{l}");
        // log.level = "info", RUST_LOG unset.
        assert!(
            !matches!(l["level"].as_str(), Some("DEBUG" | "TRACE")),
            "{l}"
        );
        // GStreamer's own records name their category, and their pipeline whenever they are about an object.
        if l["target"] == "gstreamer" {
            assert!(l["category"].is_string(), "{l}");
            let in_pipeline = l["object"]
                .as_str()
                .is_some_and(|o| o.starts_with("/GstPipeline:"));
            assert!(!in_pipeline || l["pipeline"].is_string(), "{l}");
        }
    }

    let gstreamer = lines.iter().filter(|l| l["target"] == "gstreamer").count();
    eprintln!("{gstreamer} GStreamer records; mix applied: {applied}");

    server.send("DELETE", "/v1/mixes/logged", None);
    assert!(server.wait_log("mix deleted", Duration::from_secs(10)));
    server.terminate();
}
