//! The failover policy, as a pure function of the inputs' health (the project's control task applies it every
//! 100 ms; the router makes the switch land on a keyframe).

use std::time::Duration;

use super::{model::Failover, router::SwitchReason, status::Endpoint, status::InputState};

/// An input's health, without details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Live,
    Stalled,
    Absent,
}

impl Health {
    pub(crate) fn of(state: &InputState) -> Self {
        match state {
            InputState::Live => Self::Live,
            InputState::Stalled => Self::Stalled,
            InputState::Absent { .. } => Self::Absent,
        }
    }
}

/// What the policy sees.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// Where the router is headed (pending switch, else active input); `None` before anything was forwarded.
    pub target: Option<Endpoint>,
    pub main: Health,
    /// `None` without a backup input.
    pub backup: Option<Health>,
    /// How long the main input has been live without interruption.
    pub main_live_for: Duration,
    /// A manual switch to the backup holds off the return to main (until an automatic failover).
    pub manual_hold: bool,
}

/// The switch to ask for, if any: the first live input at the start; away from an input that stalled or ended
/// when the other is live; back to main once it has been live for `return_after_ms` (if `return_to_main`).
pub(crate) fn decide(v: &View, failover: &Failover) -> Option<(Endpoint, SwitchReason)> {
    let health = |e: Endpoint| match e {
        Endpoint::Main => Some(v.main),
        Endpoint::Backup => v.backup,
    };
    let Some(target) = v.target else {
        return [Endpoint::Main, Endpoint::Backup]
            .into_iter()
            .find(|&e| health(e) == Some(Health::Live))
            .map(|e| (e, SwitchReason::Manual));
    };
    match health(target) {
        Some(Health::Live) => {
            let back = target == Endpoint::Backup
                && failover.return_to_main
                && !v.manual_hold
                && v.main == Health::Live
                && v.main_live_for >= Duration::from_millis(failover.return_after_ms);
            back.then_some((Endpoint::Main, SwitchReason::ReturnToMain))
        }
        h => {
            let other = target.other();
            let reason = if h == Some(Health::Stalled) {
                SwitchReason::Stalled
            } else {
                SwitchReason::Ended
            };
            (health(other) == Some(Health::Live)).then_some((other, reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Endpoint::{Backup, Main};
    use Health::{Absent, Live, Stalled};

    fn view(target: Option<Endpoint>, main: Health, backup: Option<Health>) -> View {
        View {
            target,
            main,
            backup,
            main_live_for: Duration::ZERO,
            manual_hold: false,
        }
    }

    #[test]
    fn starts_on_the_first_live_input_preferring_main() {
        let f = Failover::default();
        assert_eq!(decide(&view(None, Absent, Some(Absent)), &f), None);
        assert_eq!(decide(&view(None, Live, Some(Live)), &f).unwrap().0, Main);
        assert_eq!(
            decide(&view(None, Absent, Some(Live)), &f).unwrap().0,
            Backup
        );
        assert_eq!(decide(&view(None, Stalled, None), &f), None);
    }

    #[test]
    fn fails_over_only_to_a_live_input() {
        let f = Failover::default();
        assert_eq!(
            decide(&view(Some(Main), Stalled, Some(Live)), &f),
            Some((Backup, SwitchReason::Stalled))
        );
        assert_eq!(
            decide(&view(Some(Main), Absent, Some(Live)), &f),
            Some((Backup, SwitchReason::Ended))
        );
        assert_eq!(decide(&view(Some(Main), Absent, Some(Stalled)), &f), None);
        assert_eq!(decide(&view(Some(Main), Absent, None), &f), None);
        assert_eq!(
            decide(&view(Some(Backup), Live, Some(Absent)), &f),
            Some((Main, SwitchReason::Ended))
        );
        assert_eq!(decide(&view(Some(Main), Live, Some(Live)), &f), None);
    }

    #[test]
    fn returns_to_main_after_it_has_been_live_long_enough() {
        let mut f = Failover {
            return_after_ms: 5_000,
            ..Failover::default()
        };
        let mut v = view(Some(Backup), Live, Some(Live));
        v.main_live_for = Duration::from_millis(4_900);
        assert_eq!(decide(&v, &f), None);
        v.main_live_for = Duration::from_millis(5_000);
        assert_eq!(decide(&v, &f), Some((Main, SwitchReason::ReturnToMain)));
        v.manual_hold = true;
        assert_eq!(decide(&v, &f), None);
        v.manual_hold = false;
        f.return_to_main = false;
        assert_eq!(decide(&v, &f), None);
    }
}
