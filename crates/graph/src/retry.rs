//! Retry policy: `Retry-After`, exponential backoff with full jitter, caps.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// How often and how long the client retries temporary failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff base: attempt `n` waits a random time in `[0, base·2ⁿ)`.
    pub base_delay: Duration,
    /// Cap of one backoff wait (a longer `Retry-After` is still honoured).
    pub max_delay: Duration,
    /// Cap of the total time one request may spend waiting between attempts.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The backoff for the given retry number (1 for the first retry): full jitter.
    #[must_use]
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << retry.min(20));
        let cap = exp.min(self.max_delay);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// Parses `Retry-After`: seconds (possibly fractional, like `2.128`) or an HTTP date.
#[must_use]
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
        return None;
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Bookkeeping of one request's retries.
#[derive(Debug)]
pub(crate) struct RetryState<'a> {
    policy: &'a RetryPolicy,
    pub(crate) attempts: u32,
    waited: Duration,
}

impl<'a> RetryState<'a> {
    pub(crate) fn new(policy: &'a RetryPolicy) -> Self {
        Self {
            policy,
            attempts: 0,
            waited: Duration::ZERO,
        }
    }

    /// Call before each attempt.
    pub(crate) fn start_attempt(&mut self) {
        self.attempts += 1;
    }

    /// After a failed attempt: how long to wait before the next one, or `None` to give up.
    pub(crate) fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let delay = retry_after.unwrap_or_else(|| self.policy.backoff(self.attempts));
        if self.waited + delay > self.policy.max_total_wait {
            return None;
        }
        self.waited += delay;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after(" 10 "), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        let future = SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(future)).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
            ..RetryPolicy::default()
        };
        for n in 1..30 {
            assert!(p.backoff(n) <= Duration::from_millis(700));
        }
        let samples: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(5)).collect();
        assert!(samples.len() > 5, "backoff is not random");
    }

    #[test]
    fn state_caps_attempts_and_total_wait() {
        let p = RetryPolicy {
            max_attempts: 3,
            max_total_wait: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        let mut s = RetryState::new(&p);
        s.start_attempt();
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        s.start_attempt();
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(4))),
            None,
            "total wait cap"
        );
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        s.start_attempt();
        assert_eq!(s.next_delay(Some(Duration::ZERO)), None, "attempt cap");
    }
}
