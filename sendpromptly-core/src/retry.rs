//! Retry timing shared by the server's callback dispatcher and the SDKs.
//!
//! - [`CallbackSchedule`]: the repair-callback schedule of the contract
//!   (5 s, 30 s, 2 min, 10 min, 30 min, 1 h, then give up), with jitter and
//!   `Retry-After`.
//! - [`parse_retry_after`]: reads a `Retry-After` header (seconds or HTTP date).
//!
//! Pure: the random jitter and the current time are inputs.

use std::time::Duration;

use crate::Timestamp;

/// What one delivery attempt of a callback ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptClass {
    /// Any 2xx: delivered.
    Delivered,
    /// `410 Gone`: the receiver asks us to stop at once.
    Gone,
    /// Anything else (other status, timeout, connection error): try again later.
    Retryable,
}

impl AttemptClass {
    /// Classifies an HTTP status; `None` means no response (transport error).
    pub fn of_status(status: Option<u16>) -> Self {
        match status {
            Some(200..=299) => AttemptClass::Delivered,
            Some(410) => AttemptClass::Gone,
            _ => AttemptClass::Retryable,
        }
    }
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered; nothing more to send.
    Done,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// Stop trying.
    GiveUp(GiveUpReason),
}

/// Why delivery gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUpReason {
    /// Every attempt of the schedule failed.
    AttemptsExhausted,
    /// The receiver answered `410 Gone`.
    Gone,
}

impl GiveUpReason {
    /// A short explanation for timelines.
    pub fn describe(self) -> &'static str {
        match self {
            GiveUpReason::AttemptsExhausted => "every attempt of the retry schedule failed",
            GiveUpReason::Gone => "the repair endpoint answered 410 Gone",
        }
    }
}

/// The delays between callback attempts, with jitter.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackSchedule {
    /// Delay before retry 1, 2, …; the number of attempts is `delays.len() + 1`.
    pub delays: Vec<Duration>,
    /// Fraction of each delay added at random (0.0 – 1.0), so retries spread out.
    pub jitter: f64,
    /// Longest wait a `Retry-After` header can impose.
    pub max_retry_after: Duration,
}

impl Default for CallbackSchedule {
    /// The contract's schedule: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, then give up; 20 % jitter.
    fn default() -> Self {
        CallbackSchedule {
            delays: [5, 30, 120, 600, 1800, 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl CallbackSchedule {
    /// The total number of attempts (the first plus one per delay).
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// Decides what follows attempt number `attempt` (1-based).
    ///
    /// `jitter_unit` is a random number in `[0, 1)`; `retry_after` is the
    /// receiver's `Retry-After`, if it sent one. A `Retry-After` longer than
    /// the scheduled delay wins, up to `max_retry_after`.
    pub fn next_step(
        &self,
        attempt: u32,
        class: AttemptClass,
        retry_after: Option<Duration>,
        jitter_unit: f64,
        now: Timestamp,
    ) -> NextStep {
        match class {
            AttemptClass::Delivered => NextStep::Done,
            AttemptClass::Gone => NextStep::GiveUp(GiveUpReason::Gone),
            AttemptClass::Retryable => {
                let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
                let Some(base) = self.delays.get(index) else {
                    return NextStep::GiveUp(GiveUpReason::AttemptsExhausted);
                };
                let jitter = self.jitter.clamp(0.0, 1.0) * jitter_unit.clamp(0.0, 1.0);
                let scheduled = base.mul_f64(1.0 + jitter);
                let delay = match retry_after {
                    Some(asked) => scheduled.max(asked.min(self.max_retry_after)),
                    None => scheduled,
                };
                NextStep::RetryAt(now + delay)
            }
        }
    }
}

/// Reads a `Retry-After` header: delay-seconds or an HTTP date.
///
/// Returns `None` for a missing or unreadable value; a date in the past is a
/// zero delay.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = Timestamp::from_datetime(date.with_timezone(&chrono::Utc));
    let millis = at.millis_since(now).max(0);
    Some(Duration::from_millis(u64::try_from(millis).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_unix_seconds(1_000_000);

    #[test]
    fn follows_the_contract_schedule_then_gives_up() {
        let schedule = CallbackSchedule::default();
        assert_eq!(schedule.max_attempts(), 7);
        let expected = [5, 30, 120, 600, 1800, 3600];
        for (i, secs) in expected.iter().enumerate() {
            let attempt = u32::try_from(i).unwrap() + 1;
            let step = schedule.next_step(attempt, AttemptClass::Retryable, None, 0.0, NOW);
            assert_eq!(step, NextStep::RetryAt(NOW.plus_seconds(*secs)));
        }
        assert_eq!(
            schedule.next_step(7, AttemptClass::Retryable, None, 0.0, NOW),
            NextStep::GiveUp(GiveUpReason::AttemptsExhausted)
        );
    }

    #[test]
    fn jitter_stretches_within_bounds() {
        let schedule = CallbackSchedule::default();
        let NextStep::RetryAt(at) =
            schedule.next_step(1, AttemptClass::Retryable, None, 0.999, NOW)
        else {
            panic!("expected a retry");
        };
        let waited = at.millis_since(NOW);
        assert!((5000..=6000).contains(&waited), "{waited}");
    }

    #[test]
    fn retry_after_wins_when_longer_but_is_capped() {
        let schedule = CallbackSchedule::default();
        let step = schedule.next_step(
            1,
            AttemptClass::Retryable,
            Some(Duration::from_secs(90)),
            0.0,
            NOW,
        );
        assert_eq!(step, NextStep::RetryAt(NOW.plus_seconds(90)));
        let step = schedule.next_step(
            1,
            AttemptClass::Retryable,
            Some(Duration::from_secs(86_400)),
            0.0,
            NOW,
        );
        assert_eq!(step, NextStep::RetryAt(NOW.plus_seconds(3600)));
    }

    #[test]
    fn gone_and_delivered() {
        let schedule = CallbackSchedule::default();
        assert_eq!(AttemptClass::of_status(Some(204)), AttemptClass::Delivered);
        assert_eq!(AttemptClass::of_status(Some(410)), AttemptClass::Gone);
        assert_eq!(AttemptClass::of_status(Some(500)), AttemptClass::Retryable);
        assert_eq!(AttemptClass::of_status(None), AttemptClass::Retryable);
        assert_eq!(
            schedule.next_step(1, AttemptClass::Gone, None, 0.0, NOW),
            NextStep::GiveUp(GiveUpReason::Gone)
        );
    }

    #[test]
    fn parses_retry_after_both_forms() {
        assert_eq!(
            parse_retry_after("120", NOW),
            Some(Duration::from_secs(120))
        );
        let later = NOW.plus_seconds(30).to_datetime().to_rfc2822();
        assert_eq!(
            parse_retry_after(&later, NOW),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", NOW), None);
    }
}
