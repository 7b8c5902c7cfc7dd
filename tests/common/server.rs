//! Tessera under test, in-process: `tessera::server::serve` on a std thread running a tokio runtime.

use std::{
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::nginx::Nginx;

pub struct Tessera {
    /// The server's engine, for what HTTP cannot reach (fault injection).
    pub engine: ::tessera::engine::Engine,
    /// The server's relay projects, for tests that drive them directly (in the server's runtime: see
    /// [`Tessera::block_on`]).
    pub relays: ::tessera::relay::Relays,
    /// The server's tokio runtime.
    pub runtime: tokio::runtime::Handle,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: mpsc::Receiver<std::io::Result<()>>,
    thread: Option<JoinHandle<()>>,
    client: reqwest::blocking::Client,
}

impl Tessera {
    /// Serves `config` on 127.0.0.1:0 (`config.server.listen` is set to the bound address) and returns
    /// once `GET /healthz` answers 200. Panics if the server exits or is not healthy within 30 s.
    pub fn start(config: ::tessera::Config) -> Tessera {
        Tessera::start_at(config, 0)
    }

    /// Like [`Tessera::start`], on a given port (one handed to an RTMP server's callbacks beforehand).
    pub fn start_at(mut config: ::tessera::Config, port: u16) -> Tessera {
        super::util::init();
        // Mixes run in worker processes of the real program, as under `tessera serve` (this test binary cannot
        // be one).
        if config.engine.worker_program.is_empty() {
            config.engine.worker_program = env!("CARGO_BIN_EXE_tessera").into();
        }
        // The workers log to the test's stderr, which is not captured: errors only, unless RUST_LOG asks (the
        // serving process logs only then, into the captured output).
        if std::env::var_os("RUST_LOG").is_none() {
            config.log.level = "error".into();
        }
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1 for tessera");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        config.server.listen = addr;
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (engine_tx, engine_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tessera-server".into())
            .spawn(move || {
                let result = (|| {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()?;
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        let state = ::tessera::server::build(config).await?;
                        let _ = engine_tx.send((
                            state.engine.clone(),
                            state.relays.clone(),
                            tokio::runtime::Handle::current(),
                        ));
                        ::tessera::server::serve_state(listener, state, async move {
                            let _ = shutdown_rx.await;
                        })
                        .await
                    })
                    // The runtime is dropped here, which waits for its blocking tasks.
                })();
                let _ = done_tx.send(result);
            })
            .expect("spawn tessera thread");
        let (engine, relays, runtime) = match engine_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(parts) => parts,
            Err(_) => panic!("tessera did not start: {:?}", done.try_recv()),
        };
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .build()
            .expect("reqwest client");
        let tessera = Tessera {
            engine,
            relays,
            runtime,
            base: format!("http://{addr}"),
            shutdown: Some(shutdown_tx),
            done,
            thread: Some(thread),
            client,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tessera.done.try_recv() {
                Ok(result) => panic!("tessera exited during startup: {result:?}"),
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!("tessera's server thread panicked during startup")
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let healthy = tessera
                .client
                .get(format!("{}/healthz", tessera.base))
                .timeout(Duration::from_secs(2))
                .send()
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false);
            if healthy {
                return tessera;
            }
            if Instant::now() > deadline {
                panic!("tessera at {} not healthy within 30 s", tessera.base);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The default config, with inputs pulled from and outputs pushed to `nginx`
    /// (`…/live/{stream_id}` and `…/mix/{stream_id}`).
    pub fn config_for(nginx: &Nginx) -> ::tessera::Config {
        let mut config = ::tessera::Config::default();
        // Memory only: tests that resume tasks name a file of their own.
        config.store.path = String::new();
        config.ingest.pull_url = format!("rtmp://127.0.0.1:{}/live/{{stream_id}}", nginx.rtmp_port);
        config.egress.push_url = format!("rtmp://127.0.0.1:{}/mix/{{stream_id}}", nginx.rtmp_port);
        config
    }

    /// Runs `future` to completion on the server's runtime (what it spawns runs there too), from a test's thread.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// `base + path`
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, serde_json::Value) {
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("request to tessera failed: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn put(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send(self.client.put(self.url(path)).json(body))
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send(self.client.post(self.url(path)).json(body))
    }

    /// POST with an arbitrary body and content type; the answer is `Value::Null` when it is not JSON.
    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        self.send(
            self.client
                .post(self.url(path))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(self.client.get(self.url(path)))
    }

    pub fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(self.client.delete(self.url(path)))
    }

    /// Like the others but with the raw response: status, headers, body bytes.
    pub fn request_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self.client.request(method, self.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("request to tessera failed: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (
            status,
            headers,
            resp.bytes().map(|b| b.to_vec()).unwrap_or_default(),
        )
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.done.recv_timeout(Duration::from_secs(20)) {
            Ok(result) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                if let Err(e) = result {
                    if !std::thread::panicking() {
                        panic!("tessera exited with an error: {e}");
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = self.thread.take().map(|t| t.join());
                if !std::thread::panicking() {
                    panic!("tessera's server thread panicked");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Leave the thread behind rather than hang the test run.
                if !std::thread::panicking() {
                    panic!("tessera did not shut down within 20 s");
                }
            }
        }
    }
}
