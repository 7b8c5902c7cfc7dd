//! Rates over a sliding window (frames per second, bits per second), updated from streaming threads.

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Counts events with a size and reports their rate over the last `window`.
#[derive(Debug)]
pub struct RateMeter {
    window: Duration,
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl RateMeter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            samples: Mutex::new(VecDeque::new()),
        }
    }

    pub fn record(&self, amount: u64) {
        let now = Instant::now();
        let mut s = self.samples.lock().unwrap();
        s.push_back((now, amount));
        while s
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > self.window)
        {
            s.pop_front();
        }
    }

    /// Events per second over the window.
    pub fn events_per_sec(&self) -> f64 {
        self.rate(|_| 1)
    }

    /// Summed amounts per second over the window.
    pub fn amount_per_sec(&self) -> f64 {
        self.rate(|a| a)
    }

    fn rate(&self, f: impl Fn(u64) -> u64) -> f64 {
        let now = Instant::now();
        let s = self.samples.lock().unwrap();
        let total: u64 = s
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= self.window)
            .map(|(_, a)| f(*a))
            .sum();
        total as f64 / self.window.as_secs_f64()
    }
}
