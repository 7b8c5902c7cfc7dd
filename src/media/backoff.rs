//! Exponential backoff with jitter, shared by every reconnect: mix inputs and outputs, relay inputs and outputs.

use std::time::Duration;

/// Delays that double from `initial` up to `max`, each with ±20 % jitter so many reconnecting clients spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// Failed attempts since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let base = self.initial.saturating_mul(1 << exp).min(self.max);
        let jitter = 0.8 + 0.4 * fastrand::f64();
        base.mul_f64(jitter)
    }

    /// Records a success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert!((80..=120).contains(&d[0]), "{d:?}");
        assert!((160..=240).contains(&d[1]), "{d:?}");
        assert!((800..=1200).contains(&d[5]), "{d:?}");
        assert_eq!(b.attempt(), 6);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
