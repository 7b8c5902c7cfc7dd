//! The one supervision loop: build an attempt, start it off the async workers, judge its progress, stop it,
//! back off, try again — for every input pull and output push Tessera runs.
//!
//! A [`Session`] knows its media (how to build attempt N, what counts as progress, what to do when an attempt
//! ended); the [`Supervisor`] owns time: the retry policy, the backoff, the liveness rule (nothing within the
//! connect timeout, or no progress for the stall timeout once live) and stopping. It knows nothing of GStreamer:
//! `media::pipeline` is the GStreamer attempt the sessions build on, and the tests below drive a fake one
//! under a paused clock.

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::{
    sync::watch,
    task::JoinHandle,
    time::{Instant, MissedTickBehavior},
};

use super::{backoff::Backoff, link::LinkState};

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The stream ended by itself (end of stream: a file played out, a publisher that unpublished).
    Finished,
    /// It failed; why, in words fit for a status view (details go to the log).
    Failed(String),
}

impl End {
    /// What to show as the last error.
    pub fn reason(&self) -> String {
        match self {
            End::Finished => "stream ended".into(),
            End::Failed(why) => why.clone(),
        }
    }
}

/// What the session wants after an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Another attempt after the backoff delay (counted against the retry budget).
    Retry,
    /// Another attempt at once (a playlist's next file): not a failure.
    Now,
    /// Nothing more: the supervisor ends and the link keeps its last state.
    Finish,
}

/// How often a link is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// Until stopped: inputs and outputs of mixes, relay inputs ("live means live").
    Forever,
    /// At most this many attempts in a row that never got live; then the link is `failed` (relay outputs: a
    /// platform that refuses the key will not change its mind, and the operator is told).
    Budget(u32),
}

/// The retry policy of a link.
#[derive(Debug, Clone)]
pub struct Policy {
    /// First delay after a failure; doubles (±20 % jitter) per failure up to `max`, back to `initial` once an
    /// attempt got live.
    pub initial: Duration,
    pub max: Duration,
    pub retries: Retries,
}

/// When an attempt counts as failed although it reported nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Not connected this long after the start (see [`Attempt::connected`]).
    pub connect: Duration,
    /// No progress this long once connected, while something waits to move (see [`Attempt::waiting`]).
    pub stall: Duration,
}

/// One try at a link: typically one GStreamer pipeline (`media::pipeline`).
pub trait Attempt: Send + 'static {
    /// Starts it. Blocking (setting a pipeline to PLAYING): the supervisor calls it on a blocking thread.
    /// Returns what resolves when the attempt ends by itself.
    fn start(&mut self) -> Result<BoxFuture<'static, End>, String>;
    /// A count of media moved in this attempt (bytes sent, buffers received); it only grows. Above 0: live.
    fn progress(&self) -> u64;
    /// Whether the connection is up (an output published), though media may not move yet. Until then the
    /// connect timeout applies; from then on, the stall timeout. By default: once media moved.
    fn connected(&self) -> bool {
        self.progress() > 0
    }
    /// Explains how the attempt ended, in the session's terms (an input adds what its demuxer had to drop).
    fn explain(&self, end: End) -> End {
        end
    }
    /// Whether something is waiting to move: a stall counts only then (an output with nothing queued is idle,
    /// not stuck). Inputs always wait for media.
    fn waiting(&self) -> bool {
        true
    }
    /// Ends the attempt. `by_request`: the link is being stopped (not ending after a failure), so an output
    /// unpublishes cleanly and a connection still being set up is let finish first. Blocking: called on a
    /// blocking thread, after the future from [`Attempt::start`] was dropped.
    fn stop(self, by_request: bool);
}

/// What a supervised link is: how to build its attempts and what to do when one ends.
pub trait Session: Send + 'static {
    type Attempt: Attempt;

    /// Waits until an attempt may be built (an output waits for its encoder's stream headers).
    fn ready(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Builds attempt number `n` (failures since the last live attempt). Cheap: it only assembles.
    fn build(&mut self, n: u32) -> Result<Self::Attempt, String>;

    /// The liveness rule, read at every check (a relay's stall time changes while it runs).
    fn liveness(&self) -> Liveness;

    /// Called on every change of the link's state (events, status).
    fn observe(&mut self, _state: &LinkState) {}

    /// Decides what follows an attempt that ended (`live`: it had got live).
    fn next(&mut self, _end: &End, _live: bool) -> Next {
        Next::Retry
    }
}

/// How often an attempt's progress is checked.
const TICK: Duration = Duration::from_millis(100);

/// Runs sessions.
pub struct Supervisor;

impl Supervisor {
    /// Starts supervising `session` on the current runtime.
    pub fn spawn<S: Session>(session: S, policy: Policy) -> Handle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (state_tx, state_rx) = watch::channel(LinkState::Connecting { attempt: 0 });
        let task = tokio::spawn(run(session, policy, stop_rx, state_tx));
        Handle {
            stop_tx,
            state: state_rx,
            task: Some(task),
        }
    }
}

/// A supervised link: its state, and the way to stop it. Dropping it stops the link (without waiting).
pub struct Handle {
    stop_tx: watch::Sender<bool>,
    state: watch::Receiver<LinkState>,
    task: Option<JoinHandle<()>>,
}

impl Handle {
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Asks the link to stop; returns at once.
    pub fn stop(&self) {
        let _ = self.stop_tx.send(true);
    }

    /// Stops the link and waits until its last attempt is down, at most `timeout` (then it is left to finish in
    /// the background). `false` when it did not end in time.
    pub async fn shutdown(mut self, timeout: Duration) -> bool {
        self.stop();
        match self.task.take() {
            Some(task) => tokio::time::timeout(timeout, task).await.is_ok(),
            None => true,
        }
    }

    /// Whether the supervisor has ended (stopped, or finished by the session's choice).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `stop` is set (or every handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

struct Link<S: Session> {
    session: S,
    state: watch::Sender<LinkState>,
}

impl<S: Session> Link<S> {
    fn set(&mut self, state: LinkState) {
        if *self.state.borrow() != state {
            self.session.observe(&state);
            self.state.send_replace(state);
        }
    }
}

/// Runs `attempt` off the async workers and hands it back with the result.
async fn blocking<A: Attempt, R: Send + 'static>(
    attempt: A,
    f: impl FnOnce(&mut A) -> R + Send + 'static,
) -> Option<(A, R)> {
    tokio::task::spawn_blocking(move || {
        let mut attempt = attempt;
        let r = f(&mut attempt);
        (attempt, r)
    })
    .await
    .ok()
}

async fn stop_attempt<A: Attempt>(attempt: A, by_request: bool) {
    let _ = tokio::task::spawn_blocking(move || attempt.stop(by_request)).await;
}

/// How one attempt went.
enum Outcome {
    Stopped,
    Ended { end: End, live: bool },
}

async fn run<S: Session>(
    session: S,
    policy: Policy,
    mut stop: watch::Receiver<bool>,
    state: watch::Sender<LinkState>,
) {
    let mut link = Link { session, state };
    let mut backoff = Backoff::new(policy.initial, policy.max);
    // The observer hears the first state too.
    link.session.observe(&LinkState::Connecting { attempt: 0 });
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            _ = link.session.ready() => {}
        }
        link.set(LinkState::Connecting {
            attempt: backoff.attempt(),
        });
        let outcome = match link.session.build(backoff.attempt()) {
            Ok(attempt) => attempt_once(&mut link, attempt, &mut stop).await,
            Err(why) => Outcome::Ended {
                end: End::Failed(why),
                live: false,
            },
        };
        let (end, live) = match outcome {
            Outcome::Stopped => return,
            Outcome::Ended { end, live } => (end, live),
        };
        if live {
            backoff.reset();
        }
        match link.session.next(&end, live) {
            Next::Finish => return,
            Next::Now => continue,
            Next::Retry => {}
        }
        let delay = backoff.next_delay();
        let attempt = backoff.attempt();
        let last_error = end.reason();
        if let Retries::Budget(budget) = policy.retries {
            if attempt >= budget {
                tracing::warn!(%last_error, attempt, "link failed; retry budget spent");
                link.set(LinkState::Failed { last_error });
                return;
            }
        }
        tracing::debug!(%last_error, attempt, ?delay, "link down; will retry");
        link.set(LinkState::Retrying {
            attempt,
            last_error,
            retry_in_ms: delay.as_millis() as u64,
        });
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Starts `attempt`, watches it until it ends, fails the liveness rule or the link is stopped, and stops it.
async fn attempt_once<S: Session>(
    link: &mut Link<S>,
    attempt: S::Attempt,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let Some((attempt, started)) = blocking(attempt, |a| a.start()).await else {
        return Outcome::Ended {
            end: End::Failed("the attempt could not be started".into()),
            live: false,
        };
    };
    let mut ended = match started {
        Ok(ended) => ended,
        Err(why) => {
            stop_attempt(attempt, false).await;
            return Outcome::Ended {
                end: End::Failed(why),
                live: false,
            };
        }
    };
    let began = Instant::now();
    let mut last_progress = 0u64;
    let mut progress_at = began;
    let mut live = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            biased;
            _ = stopped(stop) => {
                drop(ended);
                stop_attempt(attempt, true).await;
                return Outcome::Stopped;
            }
            end = &mut ended => break end,
            _ = tick.tick() => {
                let now = Instant::now();
                let progress = attempt.progress();
                if progress > last_progress {
                    last_progress = progress;
                    progress_at = now;
                    if !live {
                        live = true;
                        link.set(LinkState::Live);
                    }
                    continue;
                }
                let rule = link.session.liveness();
                if !attempt.connected() {
                    if now - began > rule.connect {
                        break End::Failed(format!("not connected within {} ms", rule.connect.as_millis()));
                    }
                    progress_at = now;
                    continue;
                }
                // The stall clock runs only while something waits to move (an idle output is not stuck).
                if !attempt.waiting() {
                    progress_at = now;
                } else if now - progress_at > rule.stall {
                    break End::Failed(format!("no media moved for {} ms", rule.stall.as_millis()));
                }
            }
        }
    };
    drop(ended);
    // Media that moved after the last check still counts (a short file played out between two checks).
    let live = live || attempt.progress() > last_progress;
    let end = attempt.explain(end);
    stop_attempt(attempt, false).await;
    Outcome::Ended { end, live }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    };

    use futures::FutureExt;
    use tokio::sync::oneshot;

    use std::sync::Arc;

    use super::*;

    /// What the fake attempts of one session do and what happened to them.
    #[derive(Default)]
    struct Script {
        /// Per attempt: how it goes (attempts beyond the list behave like the last).
        plans: Mutex<Vec<Plan>>,
        built: AtomicU64,
        stops: Mutex<Vec<bool>>,
        /// Progress of the attempt running now.
        progress: AtomicU64,
        waiting: AtomicBool,
        /// Ends the running attempt.
        end_now: Mutex<Option<oneshot::Sender<End>>>,
        states: Mutex<Vec<LinkState>>,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Plan {
        /// Starts, then never moves anything.
        Silent,
        /// Starts and moves media until ended from outside.
        Flowing,
        /// Cannot start.
        Refused,
    }

    struct FakeAttempt {
        script: Arc<Script>,
        plan: Plan,
    }

    impl Attempt for FakeAttempt {
        fn start(&mut self) -> Result<BoxFuture<'static, End>, String> {
            if self.plan == Plan::Refused {
                return Err("refused".into());
            }
            self.script.progress.store(0, Ordering::SeqCst);
            let (tx, rx) = oneshot::channel();
            *self.script.end_now.lock().unwrap() = Some(tx);
            Ok(rx.map(|r| r.unwrap_or(End::Finished)).boxed())
        }
        fn progress(&self) -> u64 {
            if self.plan == Plan::Flowing {
                self.script.progress.load(Ordering::SeqCst)
            } else {
                0
            }
        }
        fn waiting(&self) -> bool {
            self.script.waiting.load(Ordering::SeqCst)
        }
        fn stop(self, by_request: bool) {
            self.script.stops.lock().unwrap().push(by_request);
        }
    }

    struct FakeSession {
        script: Arc<Script>,
        next: Next,
    }

    impl Session for FakeSession {
        type Attempt = FakeAttempt;
        fn build(&mut self, _n: u32) -> Result<FakeAttempt, String> {
            let i = self.script.built.fetch_add(1, Ordering::SeqCst) as usize;
            let plans = self.script.plans.lock().unwrap();
            let plan = *plans.get(i).or(plans.last()).unwrap();
            Ok(FakeAttempt {
                script: self.script.clone(),
                plan,
            })
        }
        fn liveness(&self) -> Liveness {
            Liveness {
                connect: Duration::from_secs(5),
                stall: Duration::from_secs(2),
            }
        }
        fn observe(&mut self, state: &LinkState) {
            self.script.states.lock().unwrap().push(state.clone());
        }
        fn next(&mut self, _end: &End, _live: bool) -> Next {
            self.next
        }
    }

    fn script(plans: &[Plan]) -> Arc<Script> {
        let s = Script::default();
        *s.plans.lock().unwrap() = plans.to_vec();
        s.waiting.store(true, Ordering::SeqCst);
        Arc::new(s)
    }

    fn policy(retries: Retries) -> Policy {
        Policy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(4),
            retries,
        }
    }

    fn spawn(script: &Arc<Script>, retries: Retries) -> Handle {
        Supervisor::spawn(
            FakeSession {
                script: script.clone(),
                next: Next::Retry,
            },
            policy(retries),
        )
    }

    /// Lets the supervisor (and the blocking threads it waits for) run until `cond` holds, in steps of
    /// virtual time; panics after `limit` of virtual time.
    async fn until(limit: Duration, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + limit;
        while !cond() {
            assert!(Instant::now() < deadline, "condition not met in {limit:?}");
            // Blocking tasks run on real threads: give them real time, then let virtual time move.
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn retry_delays(states: &[LinkState]) -> Vec<(u32, u64)> {
        states
            .iter()
            .filter_map(|s| match s {
                LinkState::Retrying {
                    attempt,
                    retry_in_ms,
                    ..
                } => Some((*attempt, *retry_in_ms)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_attempt_times_out_and_retries_with_bounded_backoff() {
        let s = script(&[Plan::Silent]);
        let handle = spawn(&s, Retries::Forever);
        until(Duration::from_secs(120), || {
            s.built.load(Ordering::SeqCst) >= 7
        })
        .await;
        let states = s.states.lock().unwrap().clone();
        let delays = retry_delays(&states);
        // Every attempt failed its connect timeout, and the delays doubled (±20 %) up to the 4 s ceiling.
        assert!(states.iter().any(
            |st| matches!(st, LinkState::Retrying { last_error, .. } if last_error.contains("not connected within 5000 ms"))
        ));
        for (attempt, ms) in &delays {
            let base = (500u64 << (attempt - 1).min(10)).min(4000);
            assert!(
                (base * 8 / 10..=base * 12 / 10).contains(ms),
                "attempt {attempt}: {ms} ms (base {base})"
            );
        }
        assert!(delays.iter().any(|(_, ms)| *ms >= 3200), "{delays:?}");
        assert!(!states.contains(&LinkState::Live));
        // Failed attempts are stopped as failures, not as requested stops.
        assert!(s.stops.lock().unwrap().iter().all(|by_request| !by_request));
        assert!(handle.shutdown(Duration::from_secs(5)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_attempt_that_stalls_is_retried_and_the_backoff_restarts() {
        let s = script(&[Plan::Refused, Plan::Refused, Plan::Flowing]);
        let handle = spawn(&s, Retries::Forever);
        until(Duration::from_secs(30), || {
            s.progress.fetch_add(1, Ordering::SeqCst);
            handle.state() == LinkState::Live
        })
        .await;
        // Media moves for a while: live, no retry.
        for _ in 0..20 {
            s.progress.fetch_add(100, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(handle.state(), LinkState::Live);
        // Nothing moves while nothing waits: an idle output, not a stall.
        s.waiting.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(handle.state(), LinkState::Live);
        // Something waits and nothing moves for the stall time: the attempt failed.
        s.waiting.store(true, Ordering::SeqCst);
        until(Duration::from_secs(5), || {
            matches!(handle.state(), LinkState::Retrying { .. })
        })
        .await;
        let states = s.states.lock().unwrap().clone();
        let LinkState::Retrying {
            attempt,
            last_error,
            retry_in_ms,
        } = states.last().unwrap().clone()
        else {
            unreachable!()
        };
        assert!(
            last_error.contains("no media moved for 2000 ms"),
            "{last_error}"
        );
        // The live attempt reset the backoff: the first delay again, not the third.
        assert_eq!(attempt, 1);
        assert!((400..=600).contains(&retry_in_ms), "{retry_in_ms}");
        assert!(handle.shutdown(Duration::from_secs(5)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_ends_in_failed() {
        let s = script(&[Plan::Refused]);
        let handle = spawn(&s, Retries::Budget(3));
        until(Duration::from_secs(30), || handle.is_finished()).await;
        assert_eq!(s.built.load(Ordering::SeqCst), 3);
        assert_eq!(
            handle.state(),
            LinkState::Failed {
                last_error: "refused".into()
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_while_connecting_stops_the_attempt_as_requested() {
        let s = script(&[Plan::Silent]);
        let handle = spawn(&s, Retries::Forever);
        until(Duration::from_secs(5), || {
            s.end_now.lock().unwrap().is_some()
        })
        .await;
        assert_eq!(handle.state(), LinkState::Connecting { attempt: 0 });
        assert!(handle.shutdown(Duration::from_secs(5)).await);
        assert_eq!(*s.stops.lock().unwrap(), vec![true]);
        assert_eq!(s.built.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_while_waiting_to_retry_builds_nothing_more() {
        let s = script(&[Plan::Refused]);
        let handle = spawn(&s, Retries::Forever);
        until(Duration::from_secs(5), || {
            matches!(handle.state(), LinkState::Retrying { .. })
        })
        .await;
        let built = s.built.load(Ordering::SeqCst);
        assert!(handle.shutdown(Duration::from_secs(1)).await);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(s.built.load(Ordering::SeqCst), built);
    }

    #[tokio::test(start_paused = true)]
    async fn the_session_decides_what_follows_an_end() {
        // A playlist: an attempt that ends is followed at once by the next, without a retry state.
        let s = script(&[Plan::Flowing]);
        let handle = Supervisor::spawn(
            FakeSession {
                script: s.clone(),
                next: Next::Now,
            },
            policy(Retries::Budget(1)),
        );
        for round in 1..=3 {
            until(Duration::from_secs(5), || {
                s.built.load(Ordering::SeqCst) == round && s.end_now.lock().unwrap().is_some()
            })
            .await;
            s.progress.fetch_add(1, Ordering::SeqCst);
            until(Duration::from_secs(5), || handle.state() == LinkState::Live).await;
            let tx = s.end_now.lock().unwrap().take().unwrap();
            tx.send(End::Finished).unwrap();
        }
        until(Duration::from_secs(5), || {
            s.built.load(Ordering::SeqCst) == 4
        })
        .await;
        assert!(retry_delays(&s.states.lock().unwrap()).is_empty());
        // Finish ends the supervisor and keeps the last state.
        let s2 = script(&[Plan::Flowing]);
        let done = Supervisor::spawn(
            FakeSession {
                script: s2.clone(),
                next: Next::Finish,
            },
            policy(Retries::Forever),
        );
        until(Duration::from_secs(5), || {
            s2.end_now.lock().unwrap().is_some()
        })
        .await;
        s2.end_now
            .lock()
            .unwrap()
            .take()
            .unwrap()
            .send(End::Finished)
            .unwrap();
        until(Duration::from_secs(5), || done.is_finished()).await;
        assert_eq!(s2.built.load(Ordering::SeqCst), 1);
        drop(handle);
    }
}
