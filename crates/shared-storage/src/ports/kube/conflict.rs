//! Retries of a read-modify-write that lost an optimistic-concurrency race (HTTP 409): each
//! try reads afresh and writes with the read `resourceVersion` as a precondition, so a
//! retry never replaces what the winner wrote. Pauses double from
//! [`KubePortsConfig::conflict_backoff`] up to one second and are jittered, so racing
//! writers drift apart; after [`KubePortsConfig::conflict_attempts`] tries the last
//! [`PortError::Conflict`] is returned.

use std::future::Future;
use std::time::Duration;

use super::KubePortsConfig;
use crate::ports::PortError;

/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// How lost races are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConflictRetry {
    attempts: u32,
    backoff: Duration,
}

impl ConflictRetry {
    /// The policy of `config`.
    pub(crate) fn from_config(config: &KubePortsConfig) -> Self {
        ConflictRetry {
            attempts: config.conflict_attempts.max(1),
            backoff: config.conflict_backoff,
        }
    }

    /// Runs `attempt` until it does not fail with a conflict, or the tries are used up.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        let mut pause = self.backoff;
        let mut tries = 1;
        loop {
            match attempt().await {
                Err(e) if e.is_conflict() && tries < self.attempts => {
                    tracing::debug!(what, tries, "write lost a race (409); reading again");
                    tries += 1;
                    tokio::time::sleep(jittered(pause)).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                other => return other,
            }
        }
    }
}

/// A pause between half of `pause` and `pause`.
fn jittered(pause: Duration) -> Duration {
    let nanos = u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(nanos / 2 + fastrand::u64(0..=nanos / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(attempts: u32) -> ConflictRetry {
        ConflictRetry::from_config(&KubePortsConfig {
            conflict_attempts: attempts,
            conflict_backoff: Duration::from_millis(1),
            ..KubePortsConfig::default()
        })
    }

    fn conflict() -> PortError {
        PortError::Conflict {
            port: "ids",
            what: "configmap".into(),
        }
    }

    #[tokio::test]
    async fn conflicts_are_retried_until_a_try_wins() {
        let tries = &AtomicU32::new(0);
        let out = policy(5)
            .run("x", move || async move {
                if tries.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(conflict())
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(out, Ok(7));
        assert_eq!(tries.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn the_last_conflict_is_returned_when_the_tries_are_used_up() {
        let tries = &AtomicU32::new(0);
        let out: Result<(), _> = policy(3)
            .run("x", move || async move {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(conflict())
            })
            .await;
        assert!(out.unwrap_err().is_conflict());
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_errors_are_returned_at_once() {
        let tries = &AtomicU32::new(0);
        let out: Result<(), _> = policy(5)
            .run("x", move || async move {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(PortError::Rejected {
                    port: "ids",
                    message: "no".into(),
                })
            })
            .await;
        assert!(matches!(out, Err(PortError::Rejected { .. })));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_pause() {
        for _ in 0..100 {
            let p = jittered(Duration::from_millis(10));
            assert!(p >= Duration::from_millis(5) && p <= Duration::from_millis(10));
        }
    }
}
