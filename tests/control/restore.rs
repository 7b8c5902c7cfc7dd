//! A restart answers at once, starts the recorded mixes in the background, says when it is ready, and keeps
//! (and reports) what it could not start; a request that was never acknowledged leaves no record.

use super::*;

fn states(server: &Server) -> Vec<(String, String)> {
    let (_, list) = server.request("GET", "/v1/mixes", None);
    list["mixes"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap_or("").to_string(),
                        m["status"]["state"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_restart_answers_at_once_and_reports_what_it_could_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = write_binary_config(dir.path(), "");
    let host = SlowHttp::start(Some(Duration::ZERO), png(64, 64), "image/png");
    let server = Server::start(&config, port);
    server.send("PUT", "/v1/mixes/good", Some(&mix("good-out", None)));
    server.send(
        "PUT",
        "/v1/mixes/logo",
        Some(&mix("logo-out", Some(&host.url("logo.png")))),
    );

    // A picture that is a FIFO is refused at once (opening it would wait for a writer forever), and the
    // refused request leaves no record. It lies in the pictures folder (`dir`), named by its absolute path: the
    // loader refuses it, not the folder's rules.
    let fifo = dir.path().join("logo.png");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (status, body, took) = timed(
        &client(Duration::from_secs(10)),
        "PUT",
        &format!("{}/v1/mixes/fifo", server.base),
        Some(&mix("fifo-out", Some(fifo.to_str().unwrap()))),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("resource_unavailable")),
        "{body} after {took:?}"
    );

    // The picture host hangs from now on; a crash, and a start on the same state.
    host.set_delay(None);
    server.kill();
    let mut server = Server::spawn(&config, port);
    server.wait_healthy(Duration::from_secs(10));
    let answered = Instant::now();
    let listed = states(&server);
    assert!(
        answered.elapsed() < Duration::from_secs(1),
        "listing took {:?}",
        answered.elapsed()
    );
    let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["good", "logo"], "{listed:?}");
    // Not ready while a recorded mix is still starting; the log says "ready" only once it is.
    let (ready, body) = server.request("GET", "/readyz", None);
    assert_eq!(ready, 503, "{body}");
    assert!(!server.log().contains("tessera ready"));
    assert!(
        wait_for(Duration::from_secs(45), || server
            .request("GET", "/readyz", None)
            .0
            == 200),
        "never ready: {:?}",
        states(&server)
    );
    assert!(server.wait_log("tessera ready", Duration::from_secs(5)));
    // The mix whose picture hangs is kept, failed, with the reason; the other runs.
    let (_, logo) = server.request("GET", "/v1/mixes/logo", None);
    assert_eq!(logo["status"]["state"], "failed", "{logo}");
    assert!(
        logo["status"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("logo.png")),
        "{logo}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || states(&server)
            .contains(&("good".into(), "running".into()))),
        "{:?}",
        states(&server)
    );
    // Deleting the failed mix removes its record: the next start does not try it again.
    server.send("DELETE", "/v1/mixes/logo", None);
    server.kill();
    let server = Server::start(&config, port);
    let ids: Vec<String> = states(&server).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["good"]);
}
