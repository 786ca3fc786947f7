//! The queue's timing rules as pure functions: how long a failed job waits, and what a run of
//! failures does to its destination. No clock, database or randomness of their own: callers pass
//! `now` and a jitter draw, so the rules are tested exactly.

use std::time::Duration;

/// What the queue knows about a destination's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationState {
    /// Jobs run as they come due.
    Ok,
    /// Several consecutive failures: jobs are held and one at a time is tried as a probe, with
    /// growing pauses.
    Failing,
    /// Failing for long: jobs are held and probed rarely.
    Unreachable,
}

impl DestinationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failing => "failing",
            Self::Unreachable => "unreachable",
        }
    }

    /// Reads a stored state; anything unknown is treated as healthy rather than holding jobs
    /// forever on a value this version does not understand.
    pub fn parse(s: &str) -> Self {
        match s {
            "failing" => Self::Failing,
            "unreachable" => Self::Unreachable,
            _ => Self::Ok,
        }
    }
}

/// The queue's timing rules. All durations are whole seconds, the unit of every timestamp.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The wait after a job's first failure; it doubles with each further failure.
    pub base_delay: i64,
    /// The longest wait between two attempts of a job, and between two probes of a failing
    /// destination.
    pub max_delay: i64,
    /// The longest `Retry-After` the queue honours, so that a destination cannot park jobs
    /// for a month with one header.
    pub max_retry_after: i64,
    /// Consecutive failures after which a destination is failing (its jobs are held).
    pub failing_after: i64,
    /// Consecutive failures after which a destination is unreachable (probed rarely).
    pub unreachable_after: i64,
    /// The pause between probes of an unreachable destination.
    pub unreachable_probe: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            base_delay: 30,
            max_delay: 3600,
            max_retry_after: 86_400,
            failing_after: 3,
            unreachable_after: 10,
            unreachable_probe: 3600,
        }
    }
}

impl Policy {
    /// The wait after the `failures`-th failure before jitter: `base_delay`, doubled each time,
    /// capped at `max_delay`.
    pub fn backoff(&self, failures: i64) -> i64 {
        let doublings = u32::try_from(failures.clamp(1, 31) - 1).unwrap_or(0);
        self.base_delay
            .saturating_mul(1_i64 << doublings)
            .min(self.max_delay)
            .max(1)
    }

    /// The wait after a job's `attempts`-th attempt failed. A `Retry-After` from the destination
    /// is honoured as given (capped at `max_retry_after`); otherwise the backoff with jitter
    /// `jitter` (a draw from `[0, 1)`): a wait between half and all of the backoff, so that jobs
    /// that failed together do not all come back in the same second.
    pub fn retry_delay(&self, attempts: i64, retry_after: Option<Duration>, jitter: f64) -> i64 {
        match retry_after {
            Some(after) => self.clamp_retry_after(after),
            None => jittered(self.backoff(attempts), jitter),
        }
    }

    fn clamp_retry_after(&self, after: Duration) -> i64 {
        i64::try_from(after.as_secs())
            .unwrap_or(i64::MAX)
            .clamp(1, self.max_retry_after)
    }

    /// A destination's state after its `failures`-th consecutive failure at `now`, and when a
    /// probe may next be tried (`None` while it is still healthy).
    pub fn after_failure(
        &self,
        failures: i64,
        now: i64,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> (DestinationState, Option<i64>) {
        let floor = retry_after.map_or(0, |a| self.clamp_retry_after(a));
        if failures < self.failing_after {
            (DestinationState::Ok, None)
        } else if failures < self.unreachable_after {
            let wait = jittered(self.backoff(failures - self.failing_after + 1), jitter);
            (DestinationState::Failing, Some(now + wait.max(floor)))
        } else {
            let wait = jittered(self.unreachable_probe, jitter);
            (DestinationState::Unreachable, Some(now + wait.max(floor)))
        }
    }
}

/// Between half and all of `delay`, by `jitter` in `[0, 1)`; never less than one second.
fn jittered(delay: i64, jitter: f64) -> i64 {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = delay / 2;
    // The product is at most `half`, an i64, so the conversion back cannot overflow.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let extra = ((delay - half) as f64 * jitter) as i64;
    (half + extra).clamp(1, delay.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_caps() {
        let p = Policy::default();
        assert_eq!(p.backoff(1), 30);
        assert_eq!(p.backoff(2), 60);
        assert_eq!(p.backoff(3), 120);
        assert_eq!(p.backoff(7), 1920);
        assert_eq!(p.backoff(8), 3600);
        assert_eq!(p.backoff(500), 3600);
        assert_eq!(
            p.backoff(0),
            30,
            "a zero count is read as the first failure"
        );
    }

    #[test]
    fn jitter_spreads_retries_between_half_and_all_of_the_backoff() {
        let p = Policy::default();
        assert_eq!(p.retry_delay(3, None, 0.0), 60);
        assert_eq!(p.retry_delay(3, None, 0.5), 90);
        assert_eq!(p.retry_delay(3, None, 0.999_999), 119);
        assert_eq!(
            p.retry_delay(3, None, f64::NAN),
            60,
            "a bad draw is no jitter"
        );
        assert_eq!(p.retry_delay(3, None, 7.0), 120, "draws are clamped");
        let many: Vec<i64> = (0..100)
            .map(|i| p.retry_delay(5, None, f64::from(i) / 100.0))
            .collect();
        assert!(many.iter().all(|d| (240..=480).contains(d)), "{many:?}");
        assert!(many.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = Policy::default();
        assert_eq!(p.retry_delay(1, Some(Duration::from_secs(600)), 0.0), 600);
        assert_eq!(p.retry_delay(9, Some(Duration::from_secs(5)), 0.9), 5);
        assert_eq!(
            p.retry_delay(1, Some(Duration::from_secs(90 * 86_400)), 0.0),
            86_400
        );
        assert_eq!(p.retry_delay(1, Some(Duration::ZERO), 0.0), 1);
    }

    #[test]
    fn failures_move_a_destination_to_failing_then_unreachable() {
        let p = Policy::default();
        let now = 1_000_000;
        assert_eq!(
            p.after_failure(1, now, None, 0.0),
            (DestinationState::Ok, None)
        );
        assert_eq!(
            p.after_failure(2, now, None, 0.0),
            (DestinationState::Ok, None)
        );
        // Third failure: failing, first probe after half to all of the base delay.
        assert_eq!(
            p.after_failure(3, now, None, 0.0),
            (DestinationState::Failing, Some(now + 15))
        );
        assert_eq!(
            p.after_failure(4, now, None, 0.0),
            (DestinationState::Failing, Some(now + 30))
        );
        assert_eq!(
            p.after_failure(9, now, None, 0.999),
            (DestinationState::Failing, Some(now + 1919))
        );
        assert_eq!(
            p.after_failure(10, now, None, 0.0),
            (DestinationState::Unreachable, Some(now + 1800))
        );
        assert_eq!(
            p.after_failure(50, now, None, 0.5),
            (DestinationState::Unreachable, Some(now + 2700))
        );
    }

    #[test]
    fn retry_after_delays_the_next_probe_of_a_failing_destination() {
        let p = Policy::default();
        let now = 5_000;
        let (state, probe) = p.after_failure(3, now, Some(Duration::from_secs(900)), 0.0);
        assert_eq!((state, probe), (DestinationState::Failing, Some(now + 900)));
        // A short Retry-After does not shorten the destination's own pause.
        let (_, probe) = p.after_failure(12, now, Some(Duration::from_secs(2)), 0.0);
        assert_eq!(probe, Some(now + 1800));
    }

    #[test]
    fn stored_states_read_back() {
        for s in [
            DestinationState::Ok,
            DestinationState::Failing,
            DestinationState::Unreachable,
        ] {
            assert_eq!(DestinationState::parse(s.as_str()), s);
        }
        assert_eq!(DestinationState::parse("???"), DestinationState::Ok);
    }
}
