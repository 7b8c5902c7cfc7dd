//! The serving process's side: the worker processes, where each mix goes, and what happens when one dies.
//!
//! A mix goes to a worker that already has a mix sharing one of its inputs (the input is then pulled and
//! decoded once), else to a new worker while fewer than `engine.workers` run, else to the one with the fewest
//! mixes. A worker whose last mix stopped is closed. Every second the pool reads each worker's CPU time and
//! resident memory from `/proc`, and kills one over `engine.max_worker_memory_mb`; it passes the cluster fence on
//! the moment it moves. A worker that dies, however, reports every mix it ran as failed, and the engine's recovery
//! starts them again (in a new worker).

use std::{
    collections::HashMap,
    os::fd::AsRawFd,
    path::PathBuf,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::Duration,
};

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::{
    usage::{Sample, Usage},
    wire::{self, Fence, Frame, FromWorker, MixReport, ToWorker},
};
use crate::{
    config::Config,
    engine::InputMetrics,
    error::{Error, ErrorKind},
    events::EventBus,
    live::Live,
    media::{cpu::Owner, fence},
};

/// Called with the reason when a mix in a worker fails.
pub type OnFailure = Box<dyn Fn(String) + Send + Sync>;

/// How often the fence is checked besides each change of it (which is passed on at once).
const FENCE_EVERY: Duration = Duration::from_millis(100);
/// How often CPU and memory are read.
const USAGE_EVERY: Duration = Duration::from_secs(1);

/// The worker processes of this node.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    /// What a worker runs (`PROGRAM worker`).
    program: PathBuf,
    /// Read at each placement (`engine.workers`) and each usage check (`engine.max_worker_memory_mb`).
    config: Live<Config>,
    /// Where the workers' events are published again.
    events: EventBus,
    /// Workers running, and places reserved for workers being started.
    list: Mutex<List>,
    /// A worker started ahead, with its plugins loaded, so a new mix does not wait for a process to start (it
    /// runs no mix; not counted in `list`). Started again in the background each time one is taken.
    spare: Mutex<Spare>,
    /// Numbers requests, to match answers.
    seq: AtomicU64,
    /// Numbers preview viewers.
    streams: AtomicU64,
}

#[derive(Default)]
struct Spare {
    worker: Option<Arc<Worker>>,
    /// One is being started.
    starting: bool,
}

#[derive(Default)]
struct List {
    workers: Vec<Arc<Worker>>,
    /// Workers being started (they count against `engine.workers`).
    starting: usize,
}

/// One worker process.
pub struct Worker {
    pub pid: u32,
    /// To the writer task; `None` once the worker is closed.
    tx: Mutex<Option<mpsc::UnboundedSender<Frame<ToWorker>>>>,
    /// Requests waiting for their answer.
    pending: Mutex<HashMap<u64, oneshot::Sender<Frame<FromWorker>>>>,
    /// The mixes placed here.
    slots: Mutex<HashMap<String, Slot>>,
    /// Preview viewers fed from here, by stream number.
    watches: Mutex<HashMap<u64, mpsc::Sender<Bytes>>>,
    /// The worker's last report of its inputs and CPU by owner.
    report: Mutex<WorkerReport>,
    /// CPU and memory, read from `/proc`.
    usage: Mutex<Sample>,
    /// Why the pool killed it, when it did.
    killed: Mutex<Option<String>>,
    dead: AtomicBool,
    /// The fence last sent.
    fence: Mutex<Fence>,
}

struct Slot {
    run: u64,
    /// Resolved input URLs (placement by shared inputs).
    inputs: Vec<String>,
    on_failure: Arc<OnFailure>,
    /// Called instead of `on_failure` when the worker dies.
    on_death: Arc<OnFailure>,
    report: Option<MixReport>,
}

#[derive(Default)]
struct WorkerReport {
    inputs: Vec<InputMetrics>,
    pulls: usize,
    cpu: Vec<(Owner, f64)>,
}

/// A worker's CPU and memory, as a mix's status shows them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProcessUsage {
    /// The worker process's id.
    pub pid: u32,
    /// Cores the worker used over the last second (all its mixes together).
    pub cpu_cores: f64,
    /// Its resident memory, in bytes.
    pub memory_bytes: u64,
    /// Mixes it runs (they share these figures).
    pub mixes: usize,
}

/// The program workers run, when mixes run in workers: `engine.worker_program` (`tessera serve` fills it in with
/// its own executable when it is empty). `None` (mixes run in this process) when `engine.workers` is 0, or when
/// a program embedding the library (a test binary) names none.
pub fn program(config: &crate::config::EngineConfig) -> Option<PathBuf> {
    if config.workers() == 0 {
        return None;
    }
    if config.worker_program.is_empty() {
        tracing::info!("mixes run in this process: engine.worker_program is empty");
        return None;
    }
    Some(PathBuf::from(&config.worker_program))
}

impl Workers {
    /// A pool running `program`; the usage and fence loop runs while the pool exists.
    pub fn new(program: PathBuf, config: Live<Config>, events: EventBus) -> Self {
        let inner = Arc::new(PoolInner {
            program,
            config,
            events,
            list: Mutex::default(),
            spare: Mutex::default(),
            seq: AtomicU64::new(1),
            streams: AtomicU64::new(1),
        });
        tokio::spawn(watch_over(Arc::downgrade(&inner)));
        let pool = Self { inner };
        pool.refill();
        pool
    }

    /// Starts a spare worker in the background unless there is one (or one is starting).
    fn refill(&self) {
        {
            let mut spare = self.inner.spare.lock().unwrap();
            if spare.starting
                || spare
                    .worker
                    .as_ref()
                    .is_some_and(|w| !w.dead.load(Ordering::Acquire))
            {
                return;
            }
            spare.starting = true;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            let started = pool.spawn();
            let mut spare = pool.inner.spare.lock().unwrap();
            spare.starting = false;
            spare.worker = started.ok();
        });
    }

    /// The spare worker, if one is ready (a new one is started meanwhile), told where the fence is now.
    fn take_spare(&self) -> Option<Arc<Worker>> {
        let taken = self.inner.spare.lock().unwrap().worker.take();
        self.refill();
        let w = taken.filter(|w| !w.dead.load(Ordering::Acquire))?;
        let now = Fence(fence::deadline_monotonic_ns());
        *w.fence.lock().unwrap() = now;
        w.send(Frame::new(ToWorker::Fence(now))).then_some(w)
    }

    /// Where a new mix with `inputs` goes (a worker started when needed), with its slot taken there.
    pub(super) async fn place(
        &self,
        id: &str,
        run: u64,
        inputs: Vec<String>,
        on_failure: OnFailure,
        on_death: OnFailure,
    ) -> Result<Arc<Worker>, Error> {
        let slot = Slot {
            run,
            inputs,
            on_failure: Arc::new(on_failure),
            on_death: Arc::new(on_death),
            report: None,
        };
        let max = self.inner.config.get().engine.workers().max(1);
        {
            let mut list = self.inner.list.lock().unwrap();
            list.workers.retain(|w| !w.dead.load(Ordering::Acquire));
            let sharing = list.workers.iter().find(|w| {
                w.slots
                    .lock()
                    .unwrap()
                    .values()
                    .any(|s| s.inputs.iter().any(|i| slot.inputs.contains(i)))
            });
            let chosen = match sharing {
                Some(w) => Some(w.clone()),
                None if list.workers.len() + list.starting < max => None,
                None => list
                    .workers
                    .iter()
                    .min_by_key(|w| w.slots.lock().unwrap().len())
                    .cloned(),
            };
            match chosen {
                Some(w) => {
                    w.slots.lock().unwrap().insert(id.to_string(), slot);
                    return Ok(w);
                }
                None => list.starting += 1,
            }
        }
        let started = match self.take_spare() {
            Some(w) => Ok(w),
            None => self.spawn(),
        };
        let mut list = self.inner.list.lock().unwrap();
        list.starting -= 1;
        let worker = started?;
        worker.slots.lock().unwrap().insert(id.to_string(), slot);
        list.workers.push(worker.clone());
        Ok(worker)
    }

    /// Gives up mix `id`'s slot in `worker`; a worker left with no mix is closed.
    pub(super) fn release(&self, worker: &Arc<Worker>, id: &str) {
        let mut list = self.inner.list.lock().unwrap();
        let mut slots = worker.slots.lock().unwrap();
        slots.remove(id);
        if slots.is_empty() {
            list.workers.retain(|w| !Arc::ptr_eq(w, worker));
            // The worker reads the end of its socket and exits.
            worker.tx.lock().unwrap().take();
        }
    }

    /// Starts a worker process and says hello.
    fn spawn(&self) -> Result<Arc<Worker>, Error> {
        let fail = |what: &str, e: std::io::Error| {
            tracing::error!(program = %self.inner.program.display(), error = %e, "{what}");
            Error::new(ErrorKind::Internal, "no worker process could be started")
        };
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| fail("no worker socket", e))?;
        let fd = theirs.as_raw_fd();
        let parent = std::process::id() as i32;
        let mut command = std::process::Command::new(&self.inner.program);
        command.arg("worker").stdin(Stdio::null());
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if fd == super::child::SOCKET_FD {
                    // Already in place: only the close-on-exec flag must go.
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, super::child::SOCKET_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Dies with the serving process, even one killed with no chance to close the socket.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the serving process is gone"));
                }
                Ok(())
            });
        }
        let child = run_forever_thread(command)
            .map_err(|e| fail("the worker program could not be started", e))?;
        drop(theirs);
        let pid = child.id();
        ours.set_nonblocking(true)
            .map_err(|e| fail("worker socket", e))?;
        let socket =
            tokio::net::UnixStream::from_std(ours).map_err(|e| fail("worker socket", e))?;
        let (mut reader, mut writer) = socket.into_split();
        let (tx, mut outgoing) = mpsc::unbounded_channel::<Frame<ToWorker>>();
        let config = self.inner.config.get();
        let fence_now = Fence(fence::deadline_monotonic_ns());
        let _ = tx.send(Frame::new(ToWorker::Hello {
            log: config.log.clone(),
            config: Box::new((*config).clone()),
            fence: fence_now,
        }));
        let worker = Arc::new(Worker {
            pid,
            tx: Mutex::new(Some(tx)),
            pending: Mutex::default(),
            slots: Mutex::default(),
            watches: Mutex::default(),
            report: Mutex::default(),
            usage: Mutex::new(Sample::default()),
            killed: Mutex::default(),
            dead: AtomicBool::new(false),
            fence: Mutex::new(fence_now),
        });
        tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                if wire::write(&mut writer, &frame).await.is_err() {
                    break;
                }
            }
        });
        let (w, pool) = (worker.clone(), Arc::downgrade(&self.inner));
        tokio::spawn(async move {
            let mut child = child;
            while let Ok(Some(frame)) = wire::read::<FromWorker>(&mut reader).await {
                w.take(frame, &pool);
            }
            let status = tokio::task::spawn_blocking(move || child.wait())
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            w.died(status, &pool);
        });
        tracing::info!(pid, "worker process started");
        Ok(worker)
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.inner.seq.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn next_stream(&self) -> u64 {
        self.inner.streams.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn config(&self) -> Arc<Config> {
        self.inner.config.get()
    }

    /// The inputs every worker pulls, as their last reports said.
    pub fn inputs(&self) -> Vec<InputMetrics> {
        self.each(|w| w.report.lock().unwrap().inputs.clone())
            .into_iter()
            .flatten()
            .collect()
    }

    /// Pulls running in every worker.
    pub fn pulls(&self) -> usize {
        self.each(|w| w.report.lock().unwrap().pulls)
            .into_iter()
            .sum()
    }

    /// CPU seconds per owner in every worker.
    pub fn cpu(&self) -> Vec<(Owner, f64)> {
        self.each(|w| w.report.lock().unwrap().cpu.clone())
            .into_iter()
            .flatten()
            .collect()
    }

    /// Every worker's CPU and memory.
    pub fn usage(&self) -> Vec<ProcessUsage> {
        self.each(|w| w.usage())
    }

    fn each<T>(&self, f: impl Fn(&Worker) -> T) -> Vec<T> {
        let workers = self.inner.list.lock().unwrap().workers.clone();
        workers.iter().map(|w| f(w)).collect()
    }
}

impl Worker {
    /// Sends a frame; false when the worker is closed or gone.
    pub(super) fn send(&self, frame: Frame<ToWorker>) -> bool {
        match &*self.tx.lock().unwrap() {
            Some(tx) => tx.send(frame).is_ok(),
            None => false,
        }
    }

    /// Sends a request and waits for its answer (`seq` must be the request's). Fails when the worker dies
    /// first, or after `timeout`.
    pub(super) async fn ask(
        &self,
        seq: u64,
        frame: Frame<ToWorker>,
        timeout: Duration,
    ) -> Result<Frame<FromWorker>, Error> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(seq, tx);
        let gone = || Error::new(ErrorKind::Unavailable, "the mix's worker process is gone");
        if !self.send(frame) {
            self.pending.lock().unwrap().remove(&seq);
            return Err(gone());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(gone()),
            Err(_) => {
                self.pending.lock().unwrap().remove(&seq);
                tracing::error!(pid = self.pid, ?timeout, "a worker did not answer in time");
                Err(Error::new(
                    ErrorKind::Unavailable,
                    "the mix's worker process did not answer in time",
                ))
            }
        }
    }

    pub(super) fn set_report(&self, id: &str, report: Option<MixReport>) {
        if let Some(s) = self.slots.lock().unwrap().get_mut(id) {
            s.report = report;
        }
    }

    pub(super) fn report_of(&self, id: &str) -> Option<MixReport> {
        self.slots.lock().unwrap().get(id)?.report.clone()
    }

    pub(super) fn watch(&self, stream: u64, tx: mpsc::Sender<Bytes>) {
        self.watches.lock().unwrap().insert(stream, tx);
    }

    pub(super) fn unwatch(&self, stream: u64) {
        if self.watches.lock().unwrap().remove(&stream).is_some() {
            self.send(Frame::new(ToWorker::Unwatch { stream }));
        }
    }

    pub fn usage(&self) -> ProcessUsage {
        let s = *self.usage.lock().unwrap();
        ProcessUsage {
            pid: self.pid,
            cpu_cores: s.cores,
            memory_bytes: s.rss_bytes,
            mixes: self.slots.lock().unwrap().len(),
        }
    }

    /// One frame from the worker.
    fn take(&self, frame: Frame<FromWorker>, pool: &Weak<PoolInner>) {
        let seq = match &frame.head {
            FromWorker::Done { seq, .. }
            | FromWorker::Jpeg { seq, .. }
            | FromWorker::Watching { seq, .. } => Some(*seq),
            _ => None,
        };
        if let Some(seq) = seq {
            if let Some(tx) = self.pending.lock().unwrap().remove(&seq) {
                let _ = tx.send(frame);
            }
            return;
        }
        match frame.head {
            FromWorker::Flv { stream } => {
                let tx = self.watches.lock().unwrap().get(&stream).cloned();
                let Some(tx) = tx else { return };
                // A viewer that cannot keep up is dropped, as in the serving process.
                if tx.try_send(Bytes::from(frame.body)).is_err() {
                    self.unwatch(stream);
                }
            }
            FromWorker::FlvEnd { stream } => {
                self.watches.lock().unwrap().remove(&stream);
            }
            FromWorker::Failed { id, run, reason } => {
                let call = self
                    .slots
                    .lock()
                    .unwrap()
                    .get(&id)
                    .filter(|s| s.run == run)
                    .map(|s| s.on_failure.clone());
                if let Some(on_failure) = call {
                    on_failure(reason);
                }
            }
            FromWorker::Event { task, kind } => {
                if let Some(pool) = pool.upgrade() {
                    pool.events.publish(task, kind);
                }
            }
            FromWorker::Report(report) => {
                let report = *report;
                {
                    let mut slots = self.slots.lock().unwrap();
                    for m in report.mixes {
                        if let Some(s) = slots.get_mut(&m.id) {
                            s.report = Some(m);
                        }
                    }
                }
                *self.report.lock().unwrap() = WorkerReport {
                    inputs: report.inputs,
                    pulls: report.pulls,
                    cpu: report.cpu,
                };
            }
            FromWorker::Done { .. } | FromWorker::Jpeg { .. } | FromWorker::Watching { .. } => {}
        }
    }

    /// The worker's socket ended: it exited (closed by the pool, or died). Every mix it still had fails.
    fn died(&self, status: std::io::Result<std::process::ExitStatus>, pool: &Weak<PoolInner>) {
        self.dead.store(true, Ordering::Release);
        self.tx.lock().unwrap().take();
        self.pending.lock().unwrap().clear();
        self.watches.lock().unwrap().clear();
        let slots: Vec<(String, Arc<OnFailure>)> = self
            .slots
            .lock()
            .unwrap()
            .drain()
            .map(|(id, s)| (id, s.on_death))
            .collect();
        if let Some(pool) = pool.upgrade() {
            pool.list
                .lock()
                .unwrap()
                .workers
                .retain(|w| !std::ptr::eq(&**w, self));
        }
        let how = match &status {
            Ok(s) => describe_exit(s),
            Err(e) => format!("could not be waited for ({e})"),
        };
        if slots.is_empty() {
            tracing::debug!(pid = self.pid, exit = %how, "worker process ended");
            return;
        }
        let reason = match self.killed.lock().unwrap().take() {
            Some(why) => why,
            None => format!("the mix's worker process {how}"),
        };
        let mixes: Vec<&str> = slots.iter().map(|(id, _)| id.as_str()).collect();
        tracing::error!(pid = self.pid, exit = %how, ?mixes, %reason, "worker process died; its mixes restart");
        for (_, on_death) in slots {
            on_death(reason.clone());
        }
    }
}

/// Starts `command` from a thread that lives as long as the process: a child is killed when the thread that
/// started it ends (`PR_SET_PDEATHSIG` follows the thread, not the process), and runtime threads come and go.
fn run_forever_thread(command: std::process::Command) -> std::io::Result<std::process::Child> {
    type Job = (
        std::process::Command,
        std::sync::mpsc::Sender<std::io::Result<std::process::Child>>,
    );
    static SPAWNER: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("worker-spawner".into())
            .spawn(move || {
                for (mut command, answer) in rx {
                    let _ = answer.send(command.spawn());
                }
            })
            .expect("spawn the worker-spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((command, tx))
        .map_err(|_| std::io::Error::other("the worker-spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the worker-spawner thread is gone"))?
}

fn describe_exit(s: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig} ({})", signal_name(sig)),
        _ => "ended".into(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        _ => "signal",
    }
}

/// Reads every worker's CPU and memory each second (killing one over its memory limit) and passes the fence
/// on as soon as it moves, while the pool exists.
async fn watch_over(pool: Weak<PoolInner>) {
    let mut tick = tokio::time::interval(FENCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let per_usage = (USAGE_EVERY.as_millis() / FENCE_EVERY.as_millis()) as u32;
    let mut usage = Usage::default();
    let mut n = 0u32;
    let mut fence_moved = fence::subscribe();
    loop {
        // A fence that moves is passed on at once; the tick is for memory and CPU (and a fence change missed).
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            _ = fence_moved.changed() => false,
        };
        if ticked {
            n += 1;
        }
        let Some(pool) = pool.upgrade() else { return };
        let workers = pool.list.lock().unwrap().workers.clone();
        let now = Fence(fence::deadline_monotonic_ns());
        for w in &workers {
            let mut sent = w.fence.lock().unwrap();
            if *sent != now && w.send(Frame::new(ToWorker::Fence(now))) {
                *sent = now;
            }
        }
        if !ticked || !n.is_multiple_of(per_usage) {
            continue;
        }
        let limit_mb = pool.config.get().engine.max_worker_memory_mb;
        let pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
        usage.retain(&pids);
        for w in &workers {
            let Some(sample) = usage.sample(w.pid) else {
                continue;
            };
            *w.usage.lock().unwrap() = sample;
            let mb = sample.rss_bytes / (1 << 20);
            if mb > limit_mb && w.killed.lock().unwrap().is_none() {
                let why = format!(
                    "the mix's worker process used {mb} MiB, over engine.max_worker_memory_mb ({limit_mb} MiB); it was restarted"
                );
                tracing::error!(
                    pid = w.pid,
                    rss_mib = mb,
                    limit_mib = limit_mb,
                    "worker over its memory limit; killing it"
                );
                *w.killed.lock().unwrap() = Some(why);
                // SAFETY: plain kill(2) of our own child.
                unsafe { libc::kill(w.pid as i32, libc::SIGKILL) };
            }
        }
    }
}
