//! Which task the CPU goes to, by thread.
//!
//! Every pipeline's streaming threads are named after the task they work for when they start working for it
//! (the bus's `STREAM_STATUS` "enter" message arrives, synchronously, on the thread itself: see
//! [`super::bus`]). GStreamer reuses threads from a pool, so a thread's CPU time is attributed in pieces: when a
//! thread enters a task, what it used since it last changed hands goes to its previous owner. A sampler reads
//! `/proc/self/task/*/stat` every second, so a thread that ends loses at most its last second.
//!
//! Tags are short (a thread name holds 15 bytes): `m<n>` for mix number n, `r<n>` for relay projects, `i<n>` for
//! shared input pulls (decoded once for every mix that uses them: their time is split between those mixes).

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, OnceLock, RwLock,
    },
    time::Duration,
};

use crate::events::TaskRef;

/// What a tag stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Owner {
    Task(TaskRef),
    /// A shared input pull, by URL.
    Input(String),
}

#[derive(Default)]
struct Accounts {
    /// Owner → tag (tag → owner is [`owners`]).
    tags: HashMap<Owner, String>,
    /// Seconds of CPU each tag's threads used and handed over (threads that moved on or ended).
    settled: HashMap<String, f64>,
    /// Thread id → (tag, CPU seconds at the time it took that tag, CPU seconds last seen).
    threads: HashMap<i32, (String, f64, f64)>,
    /// Threads looked at that carry no tag (the API's, GStreamer's own), so each is read once.
    foreign: HashSet<i32>,
}

fn accounts() -> &'static Mutex<Accounts> {
    static A: OnceLock<Mutex<Accounts>> = OnceLock::new();
    A.get_or_init(Default::default)
}

/// Tag → owner. Apart from [`accounts`], whose lock the sampler holds while it reads `/proc`: GStreamer's log
/// function looks tags up on streaming threads ([`super::gstlog`]) and must not wait for that.
fn owners() -> &'static RwLock<HashMap<String, Owner>> {
    static O: OnceLock<RwLock<HashMap<String, Owner>>> = OnceLock::new();
    O.get_or_init(Default::default)
}

/// What `tag` stands for, if it was made by [`tag`].
pub fn owner_of(tag: &str) -> Option<Owner> {
    // Never a panic here: it runs inside GStreamer's log function.
    owners()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(tag)
        .cloned()
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// The thread-name tag of `owner` (made on first use).
pub fn tag(owner: Owner) -> String {
    let mut a = accounts().lock().unwrap();
    if let Some(t) = a.tags.get(&owner) {
        return t.clone();
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = match &owner {
        Owner::Task(TaskRef::Mix(_)) => format!("m{n}"),
        Owner::Task(TaskRef::Relay(_)) => format!("r{n}"),
        Owner::Input(_) => format!("i{n}"),
    };
    owners().write().unwrap().insert(t.clone(), owner.clone());
    a.tags.insert(owner, t.clone());
    t
}

/// CPU ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> f64 {
    static T: OnceLock<f64> = OnceLock::new();
    *T.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    })
}

/// User + system CPU seconds in a `/proc/…/stat` line (fields 14 and 15, after the parenthesised name).
pub(crate) fn cpu_of_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// The calling thread's id.
fn this_thread() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn thread_cpu(tid: i32) -> Option<f64> {
    cpu_of_stat(&std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?)
}

/// The calling thread starts working for the task tagged `tag`: what it used since it last changed hands goes to
/// its previous tag. Called on the thread itself (a bus sync handler), which also renames its GStreamer task
/// `<tag>:<task>`, so GStreamer names the thread that way.
pub fn enter(tag: &str) {
    let tid = this_thread();
    let now = thread_cpu(tid).unwrap_or(0.0);
    {
        let mut a = accounts().lock().unwrap();
        if let Some((old, since, _)) = a.threads.remove(&tid) {
            *a.settled.entry(old).or_default() += (now - since).max(0.0);
        }
        a.threads.insert(tid, (tag.to_string(), now, now));
    }
    if let Ok(name) = std::ffi::CString::new(tag) {
        // SAFETY: a NUL-terminated name of at most 15 bytes for the calling thread.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
    }
}

/// Reads every accounted thread's CPU; a thread that has ended is settled with what was last seen of it.
///
/// Threads that encoders and decoders start themselves (x264's and libav's workers) never pass a bus: they are
/// found here by the name they inherited from the streaming thread that created them, and their whole life is
/// that task's. `/proc` is read without the lock held, so a streaming thread entering a task never waits for a
/// sample.
fn sample() {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let alive: HashSet<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let (known, unknown): (Vec<i32>, Vec<i32>) = {
        let mut a = accounts().lock().unwrap();
        a.foreign.retain(|tid| alive.contains(tid));
        let known = a.threads.keys().copied().collect();
        let unknown = alive
            .iter()
            .filter(|tid| !a.threads.contains_key(tid) && !a.foreign.contains(tid))
            .copied()
            .collect();
        (known, unknown)
    };
    let readings: Vec<(i32, Option<f64>)> =
        known.iter().map(|tid| (*tid, thread_cpu(*tid))).collect();
    let named: Vec<(i32, String, f64)> = unknown
        .iter()
        .map(|tid| {
            let name =
                std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default();
            (
                *tid,
                name.trim_end().to_string(),
                thread_cpu(*tid).unwrap_or(0.0),
            )
        })
        .collect();
    let mut a = accounts().lock().unwrap();
    for (tid, reading) in readings {
        match reading {
            Some(now) => {
                if let Some((_, _, last)) = a.threads.get_mut(&tid) {
                    *last = now;
                }
            }
            None => {
                if let Some((tag, since, last)) = a.threads.remove(&tid) {
                    *a.settled.entry(tag).or_default() += (last - since).max(0.0);
                }
            }
        }
    }
    for (tid, name, now) in named {
        if a.threads.contains_key(&tid) {
            // It entered a task meanwhile.
            continue;
        }
        // `m3:queue0:src`: a task's thread or one it started (the name is inherited).
        let tag = name.split(':').next().unwrap_or_default().to_string();
        if owners().read().unwrap().contains_key(&tag) {
            a.threads.insert(tid, (tag, 0.0, now));
        } else {
            a.foreign.insert(tid);
        }
    }
}

/// Samples every second, for as long as the process runs (started once).
pub fn start_sampler() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let _ = std::thread::Builder::new()
            .name("cpu-sampler".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_secs(1));
                sample();
            });
    });
}

/// CPU seconds used so far, by owner (threads working for it now included).
pub fn by_owner() -> Vec<(Owner, f64)> {
    sample();
    let a = accounts().lock().unwrap();
    let mut totals: HashMap<String, f64> = a.settled.clone();
    for (tag, since, last) in a.threads.values() {
        *totals.entry(tag.clone()).or_default() += (last - since).max(0.0);
    }
    let owners = owners().read().unwrap();
    totals
        .into_iter()
        .filter_map(|(tag, s)| Some((owners.get(&tag)?.clone(), s)))
        .collect()
}

/// CPU seconds the whole process has used.
pub fn process() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_of_stat(&s))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_read_with_odd_names() {
        let line = "1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0";
        assert_eq!(
            cpu_of_stat(line),
            Some(400.0 / ticks_per_second()),
            "{line}"
        );
    }

    #[test]
    fn a_thread_that_changes_hands_is_split_between_its_owners() {
        let (a, b) = (
            tag(Owner::Input("test://a".into())),
            tag(Owner::Input("test://b".into())),
        );
        assert_ne!(a, b);
        assert_eq!(tag(Owner::Input("test://a".into())), a);
        // Spins until the thread has used `d` of CPU (not of wall time: the machine may be busy).
        let spin = |d: Duration| {
            let tid = this_thread();
            let until = thread_cpu(tid).unwrap() + d.as_secs_f64();
            while thread_cpu(tid).unwrap() < until {
                std::hint::black_box(0u64);
            }
        };
        let (used_a, used_b) = std::thread::spawn(move || {
            enter(&a);
            spin(Duration::from_millis(300));
            enter(&b);
            spin(Duration::from_millis(600));
            let totals = by_owner();
            let of = |url: &str| {
                totals
                    .iter()
                    .find(|(o, _)| *o == Owner::Input(url.into()))
                    .map_or(0.0, |(_, s)| *s)
            };
            (of("test://a"), of("test://b"))
        })
        .join()
        .unwrap();
        assert!((0.28..0.36).contains(&used_a), "a {used_a}");
        assert!((0.58..0.66).contains(&used_b), "b {used_b}");
    }
}
