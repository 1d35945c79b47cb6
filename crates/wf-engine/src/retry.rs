//! Retry policy: how many times a step may be retried, how long to wait between tries, and
//! how long one try may take. Defaults live in code; flows and steps override them in YAML.

use std::time::Duration;

use serde::Deserialize;

/// Exponential backoff with a cap and jitter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay before the first retry (default 1 s).
    pub initial: Duration,
    /// The longest delay (default 60 s).
    pub max: Duration,
    /// What each further retry multiplies the delay by (default 2.0, at least 1.0).
    pub factor: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            factor: 2.0,
        }
    }
}

impl Backoff {
    /// The un-jittered delay before retry number `attempt` (1-based): `initial * factor^(attempt-1)`,
    /// capped at `max`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.factor.powi(exponent);
        let capped = secs.min(self.max.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max)
    }

    /// The delay with "equal jitter": half the base delay plus `unit` (in `[0, 1)`) times the
    /// other half. Never more than `max`, never less than half the base delay.
    pub fn delay_with_jitter(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt);
        let unit = unit.clamp(0.0, 1.0);
        base.mul_f64(0.5 + 0.5 * unit)
    }

    /// The delay with a random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with_jitter(attempt, fastrand::f64())
    }
}

/// The retry policy of a flow or a step.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// How many times a step may be tried again after it failed (default 10); the failure
    /// after that interrupts the run with `MANY_RETRY`. Each step's budget is its own; at
    /// the flow level this is only the default of the flow's steps. A step run again after
    /// a crash is a resume and does not count (see `maxResumes`,
    /// [`crate::WorkflowConfig::max_resumes`]).
    pub max_retries: u32,
    /// The backoff between retries; the runtime returns it as a requeue hint and never
    /// sleeps itself.
    pub backoff: Backoff,
    /// The longest one try of the step may take; a try that takes longer fails (retryable).
    pub timeout: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 10,
            backoff: Backoff::default(),
            timeout: None,
        }
    }
}

/// A retry policy that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RetryPolicyError {
    /// A duration string did not parse.
    #[error(
        "`{field}`: cannot parse duration `{value}`: {message} (write e.g. `500ms`, `2s`, `1m`)"
    )]
    BadDuration {
        /// The YAML field.
        field: &'static str,
        /// What was written.
        value: String,
        /// The parser's message.
        message: String,
    },
    /// `maxRetries` is zero, which would forbid even the first try.
    #[error("`maxRetries` must be at least 1")]
    ZeroRetries,
    /// A duration that must be positive is zero.
    #[error("`{0}` must be greater than zero")]
    ZeroDuration(&'static str),
    /// `backoff.factor` is below 1 or not finite.
    #[error("`backoff.factor` must be a finite number >= 1.0, got {0}")]
    BadFactor(f64),
    /// `backoff.max` is below `backoff.initial`.
    #[error("`backoff.max` ({max:?}) must not be less than `backoff.initial` ({initial:?})")]
    MaxBelowInitial {
        /// The initial delay.
        initial: Duration,
        /// The cap.
        max: Duration,
    },
}

/// The backoff part of a YAML override: every field optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSpec {
    /// e.g. `1s`.
    #[serde(default)]
    pub initial: Option<String>,
    /// e.g. `5m`.
    #[serde(default)]
    pub max: Option<String>,
    /// e.g. `2.0`.
    #[serde(default)]
    pub factor: Option<f64>,
}

/// A partial retry policy as written in YAML on a flow or a step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetrySpec {
    /// `maxRetries`.
    pub max_retries: Option<u32>,
    /// `backoff`.
    pub backoff: Option<BackoffSpec>,
    /// `timeout`, e.g. `30s`.
    pub timeout: Option<String>,
}

impl RetrySpec {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.max_retries.is_none() && self.backoff.is_none() && self.timeout.is_none()
    }
}

fn parse_duration(field: &'static str, value: &str) -> Result<Duration, RetryPolicyError> {
    let parsed =
        humantime::parse_duration(value.trim()).map_err(|e| RetryPolicyError::BadDuration {
            field,
            value: value.to_owned(),
            message: e.to_string(),
        })?;
    if parsed.is_zero() {
        return Err(RetryPolicyError::ZeroDuration(field));
    }
    Ok(parsed)
}

impl RetryPolicy {
    /// This policy with `spec`'s fields applied on top, validated.
    pub fn with_overrides(&self, spec: &RetrySpec) -> Result<RetryPolicy, RetryPolicyError> {
        let mut policy = self.clone();
        if let Some(max) = spec.max_retries {
            policy.max_retries = max;
        }
        if let Some(backoff) = &spec.backoff {
            if let Some(initial) = &backoff.initial {
                policy.backoff.initial = parse_duration("backoff.initial", initial)?;
            }
            if let Some(max) = &backoff.max {
                policy.backoff.max = parse_duration("backoff.max", max)?;
            }
            if let Some(factor) = backoff.factor {
                policy.backoff.factor = factor;
            }
        }
        if let Some(timeout) = &spec.timeout {
            policy.timeout = Some(parse_duration("timeout", timeout)?);
        }
        policy.validate()?;
        Ok(policy)
    }

    /// Checks the policy's invariants.
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        if self.max_retries == 0 {
            return Err(RetryPolicyError::ZeroRetries);
        }
        if self.backoff.initial.is_zero() {
            return Err(RetryPolicyError::ZeroDuration("backoff.initial"));
        }
        if !self.backoff.factor.is_finite() || self.backoff.factor < 1.0 {
            return Err(RetryPolicyError::BadFactor(self.backoff.factor));
        }
        if self.backoff.max < self.backoff.initial {
            return Err(RetryPolicyError::MaxBelowInitial {
                initial: self.backoff.initial,
                max: self.backoff.max,
            });
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(RetryPolicyError::ZeroDuration("timeout"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn backoff_is_exponential_and_capped() {
        let b = Backoff {
            initial: secs(1.0),
            max: secs(10.0),
            factor: 2.0,
        };
        assert_eq!(b.base_delay(1), secs(1.0));
        assert_eq!(b.base_delay(2), secs(2.0));
        assert_eq!(b.base_delay(4), secs(8.0));
        assert_eq!(b.base_delay(5), secs(10.0));
        assert_eq!(b.base_delay(500), secs(10.0));
    }

    #[test]
    fn backoff_jitter_stays_between_half_and_full_delay() {
        let b = Backoff::default();
        assert_eq!(b.delay_with_jitter(3, 0.0), secs(2.0));
        assert_eq!(b.delay_with_jitter(3, 1.0), secs(4.0));
        for _ in 0..100 {
            let d = b.delay(3);
            assert!(d >= secs(2.0) && d <= secs(4.0), "{d:?}");
        }
    }

    #[test]
    fn yaml_overrides_apply_on_top_of_defaults() {
        let spec = RetrySpec {
            max_retries: Some(3),
            backoff: Some(BackoffSpec {
                initial: Some("200ms".into()),
                max: None,
                factor: Some(3.0),
            }),
            timeout: Some("30s".into()),
        };
        let p = RetryPolicy::default().with_overrides(&spec).unwrap();
        assert_eq!(p.max_retries, 3);
        assert_eq!(p.backoff.initial, Duration::from_millis(200));
        assert_eq!(p.backoff.max, Duration::from_secs(60));
        assert_eq!(p.backoff.factor, 3.0);
        assert_eq!(p.timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn invalid_retry_policies_are_rejected() {
        let base = RetryPolicy::default();
        let zero = RetrySpec {
            max_retries: Some(0),
            ..RetrySpec::default()
        };
        assert_eq!(
            base.with_overrides(&zero),
            Err(RetryPolicyError::ZeroRetries)
        );
        let factor = RetrySpec {
            backoff: Some(BackoffSpec {
                factor: Some(0.5),
                ..BackoffSpec::default()
            }),
            ..RetrySpec::default()
        };
        assert_eq!(
            base.with_overrides(&factor),
            Err(RetryPolicyError::BadFactor(0.5))
        );
        let inverted = RetrySpec {
            backoff: Some(BackoffSpec {
                initial: Some("10s".into()),
                max: Some("1s".into()),
                factor: None,
            }),
            ..RetrySpec::default()
        };
        assert!(matches!(
            base.with_overrides(&inverted),
            Err(RetryPolicyError::MaxBelowInitial { .. })
        ));
        let garbage = RetrySpec {
            timeout: Some("soon".into()),
            ..RetrySpec::default()
        };
        let err = base.with_overrides(&garbage).unwrap_err();
        assert!(err.to_string().contains("`timeout`"), "{err}");
    }
}
