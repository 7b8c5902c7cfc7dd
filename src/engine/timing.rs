//! Aligns an input's timestamps to the shared clock when its media arrives, not by its first frame.
//!
//! Each pull session maps the stream's own timestamps onto the system clock with one offset (so audio and video
//! of one input stay in sync with each other), chosen when the first buffer arrives. The first buffer is often late
//! (connection and decoder start-up, a backlog drained in a burst), so for the first seconds the offset may still
//! fall to the smallest delay seen, by at most a second: otherwise that start-up delay would stay in the input
//! for good and put it out of step with the others. Mixes subtract their own base time. If the stream's timestamps
//! jump (a publisher restart, a server-side discontinuity) or drift so far that buffers arrive more than a second
//! late, the offset is chosen again.

use std::time::Duration;

/// How late a mapped buffer may be before the mapping is rebuilt.
const LATE_RESYNC: u64 = 1_000_000_000;
/// How early a mapped buffer may be before the mapping is rebuilt (a jump forward in the stream's timestamps).
const EARLY_RESYNC: u64 = 5_000_000_000;
/// Buffers more than this early are held back: paces inputs that arrive faster than real time (files).
const PACE_AHEAD: u64 = 200_000_000;
/// How long after (re)choosing the offset it may still fall to a smaller delay.
const LEARN_FOR: u64 = 3_000_000_000;
/// How far it may fall in that time.
const LEARN_MAX: i128 = 1_000_000_000;

#[derive(Debug, Default)]
pub struct Timing {
    /// clock time − stream time, in nanoseconds; `None` until the first buffer of a session.
    offset: Option<i128>,
    /// The offset first chosen, bounding how far learning moves it.
    first_offset: i128,
    /// Clock time until which the offset may still fall.
    learn_until: u64,
}

impl Timing {
    fn choose(&mut self, offset: i128, now: u64) -> i128 {
        self.offset = Some(offset);
        self.first_offset = offset;
        self.learn_until = now + LEARN_FOR;
        offset
    }

    /// Forgets the mapping; the next buffer starts a new one (used when a pull session restarts).
    pub fn reset(&mut self) {
        self.offset = None;
    }

    /// Maps stream time `pts` to clock time, given the clock time `now`. Returns the clock time and how long the
    /// caller should wait before delivering (to pace faster-than-real-time input).
    pub fn map(&mut self, pts: u64, now: u64) -> (u64, Duration) {
        let delay = i128::from(now) - i128::from(pts);
        let offset = match self.offset {
            None => self.choose(delay, now),
            Some(o) if now < self.learn_until && delay < o => {
                let o = delay.max(self.first_offset - LEARN_MAX);
                self.offset = Some(o);
                o
            }
            Some(o) => o,
        };
        let mut mapped = i128::from(pts) + offset;
        if mapped + i128::from(LATE_RESYNC) < i128::from(now)
            || mapped > i128::from(now + EARLY_RESYNC)
        {
            self.choose(delay, now);
            mapped = i128::from(now);
        }
        let mapped = mapped.max(0) as u64;
        let wait = mapped.saturating_sub(now + PACE_AHEAD);
        (mapped, Duration::from_nanos(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const S: u64 = 1_000_000_000;

    #[test]
    fn first_buffer_lands_now_and_later_ones_keep_their_spacing() {
        let mut t = Timing::default();
        assert_eq!(t.map(50 * S, 1000 * S).0, 1000 * S);
        assert_eq!(t.map(50 * S + S / 2, 1000 * S + S / 2).0, 1000 * S + S / 2);
        // A buffer that arrives a bit late keeps its slot (lip sync and spacing win over arrival time).
        assert_eq!(t.map(51 * S, 1001 * S + S / 5).0, 1001 * S);
    }

    #[test]
    fn a_late_first_buffer_does_not_delay_the_input_for_good() {
        let mut t = Timing::default();
        // The first frame comes 700 ms after the ones that follow would have: start-up delay.
        assert_eq!(t.map(0, 10 * S + 7 * S / 10).0, 10 * S + 7 * S / 10);
        // The backlog drains; then frames arrive on time, 30 ms after their own time.
        t.map(S / 2, 10 * S + 8 * S / 10);
        assert_eq!(t.map(2 * S, 12 * S + 30_000_000).0, 12 * S + 30_000_000);
        assert_eq!(t.map(3 * S, 13 * S + 30_000_000).0, 13 * S + 30_000_000);
        // After the learning period the offset holds: a late frame keeps its slot.
        assert_eq!(t.map(5 * S, 15 * S + 90_000_000).0, 15 * S + 30_000_000);
    }

    #[test]
    fn learning_moves_the_offset_by_at_most_a_second() {
        let mut t = Timing::default();
        t.map(0, 10 * S);
        // A file arriving all at once: pts races ahead of the clock.
        assert_eq!(t.map(5 * S, 10 * S).0, 14 * S);
    }

    #[test]
    fn jumps_and_long_stalls_resync() {
        let mut t = Timing::default();
        t.map(0, 10 * S);
        // Publisher restarted: its timestamps went back to zero while the clock went on.
        assert_eq!(t.map(0, 30 * S).0, 30 * S);
        // A jump forward of a minute.
        assert_eq!(t.map(60 * S, 30 * S + S / 10).0, 30 * S + S / 10);
    }

    #[test]
    fn faster_than_real_time_input_is_paced() {
        let mut t = Timing::default();
        t.map(0, 10 * S);
        // The first second of a burst counts as start-up backlog; the rest is held back to real time.
        let (mapped, wait) = t.map(2 * S, 10 * S);
        assert_eq!(mapped, 11 * S);
        assert_eq!(wait, Duration::from_nanos(S - PACE_AHEAD));
    }
}
