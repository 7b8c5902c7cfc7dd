//! A worker's CPU and resident memory, read from `/proc/PID/stat` and `/proc/PID/statm`.

use std::{collections::HashMap, time::Instant};

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Cores used since the previous reading (0 at the first).
    pub cores: f64,
    pub rss_bytes: u64,
}

/// The previous CPU time of each process, to turn the next into a rate.
#[derive(Default)]
pub struct Usage {
    last: HashMap<u32, (Instant, f64)>,
}

impl Usage {
    /// Reads process `pid`; `None` when it is gone.
    pub fn sample(&mut self, pid: u32) -> Option<Sample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
        let cpu = cpu_seconds(&stat)?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let now = Instant::now();
        let cores = match self.last.insert(pid, (now, cpu)) {
            Some((then, before)) => {
                let secs = now.duration_since(then).as_secs_f64();
                if secs > 0.0 {
                    ((cpu - before) / secs).max(0.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        Some(Sample {
            cores,
            rss_bytes: pages * page_size(),
        })
    }

    /// Forgets processes other than `pids`.
    pub fn retain(&mut self, pids: &[u32]) {
        self.last.retain(|pid, _| pids.contains(pid));
    }
}

/// CPU seconds this process's children used: those alive (or ended and not yet waited for) by their own
/// `stat`, those waited for by this process's `cutime` + `cstime`. For the worker processes, whose CPU
/// `process_cpu_seconds_total` does not include; it only grows.
pub fn children_cpu_seconds() -> f64 {
    let me = std::process::id().to_string();
    let waited = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let cutime: f64 = f.get(13)?.parse().ok()?;
            let cstime: f64 = f.get(14)?.parse().ok()?;
            Some((cutime + cstime) / ticks_per_second())
        })
        .unwrap_or(0.0);
    let alive: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                == Some(me.as_str())
        })
        .filter_map(|stat| cpu_seconds(&stat))
        .sum();
    waited + alive
}

/// User + system CPU seconds from a `stat` line (the sampler's own reading).
fn cpu_seconds(stat: &str) -> Option<f64> {
    crate::media::cpu::cpu_of_stat(stat)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_odd_names() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        assert_eq!(cpu_seconds(line), Some(300.0 / ticks_per_second()));
    }

    #[test]
    fn this_process_is_read() {
        let mut u = Usage::default();
        let s = u.sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 1 << 20);
        assert_eq!(s.cores, 0.0);
        assert!(u.sample(u32::MAX).is_none());
    }
}
