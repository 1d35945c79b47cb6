//! [`Health`]: the operator's liveness, readiness and leadership flags, shared (in an
//! [`Arc`](std::sync::Arc)) between the controller loop that sets them and the HTTP server
//! that answers `/healthz`, `/readyz` and the `wf_leader` / `wf_ready` gauges of `/metrics`
//! (see [`crate::http`]).
//!
//! What the probes mean, as a Kubernetes operator author would expect them:
//!
//! - **Liveness** (`/healthz`, the `livenessProbe`): a failure makes the kubelet restart the
//!   container, so it fails only when a restart is the fix. The process is live unless it
//!   marked itself broken with [`Health::set_broken`] or, when a watchdog is configured with
//!   [`Health::with_max_silence`], the controller loop stopped calling [`Health::beat`] for
//!   longer than that. The watchdog is off by default: an idle kube-runtime controller only
//!   runs on changes, so a heartbeat would go silent in a healthy operator. A transient
//!   outage of the API server does not fail liveness either (restarting does not fix it).
//!   Shutting down does not fail liveness, so the kubelet does not kill a draining process.
//! - **Readiness** (`/readyz`, the `readinessProbe`): ready once the operator said so with
//!   [`Health::set_ready`] (caches synced, webhooks up...), until [`Health::set_shutting_down`]
//!   or [`Health::set_broken`]. Leadership does not count: a standby replica waiting for the
//!   lease is healthy and ready, as in controller-runtime.
//! - **Leadership** ([`Health::set_leader`]) is only reported, as the `wf_leader` gauge.
//!
//! All the flags are atomics, so reading them from a probe never waits on the controller.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The operator's health flags. Cheap to share in an [`Arc`](std::sync::Arc); every method
/// takes `&self`.
///
/// A new `Health` is live, not ready, not leader and not shutting down.
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    leader: AtomicBool,
    shutting_down: AtomicBool,
    /// Set once [`Health::set_broken`] was called, so probes read one atomic in the common
    /// case.
    broken: AtomicBool,
    /// The first reason given to [`Health::set_broken`].
    broken_reason: Mutex<Option<String>>,
    /// The origin of [`Health::last_beat`].
    created: Instant,
    /// Milliseconds from `created` to the last beat, plus one; 0 when there was none.
    last_beat_millis: AtomicU64,
    /// The liveness watchdog, if any.
    max_silence: Option<Duration>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Flags with no heartbeat watchdog: live until [`Health::set_broken`].
    pub fn new() -> Self {
        Health {
            ready: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            broken_reason: Mutex::new(None),
            created: Instant::now(),
            last_beat_millis: AtomicU64::new(0),
            max_silence: None,
        }
    }

    /// Turns on the heartbeat watchdog: once [`Health::beat`] has been called, liveness fails
    /// when the last beat is older than `max_silence`. Before the first beat the process is
    /// live (start-up is the `startupProbe`'s business). Use it only with a loop that beats
    /// periodically even when there is nothing to reconcile, and pick `max_silence` well above
    /// that period.
    pub fn with_max_silence(mut self, max_silence: Duration) -> Self {
        self.max_silence = Some(max_silence);
        self
    }

    /// The watchdog's limit, if one is set.
    pub fn max_silence(&self) -> Option<Duration> {
        self.max_silence
    }

    /// Marks the operator ready (or not) to do its work, e.g. once its caches are synced.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` succeeds: [`Health::set_ready`] was given `true`, and the process is
    /// neither shutting down nor broken. See [`Health::readiness`] for the reason.
    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Records whether this replica holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Release);
    }

    /// Whether this replica holds the leader lease.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Marks the process as shutting down: readiness fails from now on (there is no way
    /// back), liveness does not change.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Whether [`Health::set_shutting_down`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Marks the process broken beyond repair (say, a task it cannot run without has died):
    /// liveness and readiness fail from now on, with `reason` in the probe's body, so the
    /// kubelet restarts the container. The first reason is kept.
    pub fn set_broken(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::error!(%reason, "marked broken; liveness fails from now on");
        let mut slot = self.lock_reason();
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.broken.store(true, Ordering::Release);
    }

    /// The reason given to [`Health::set_broken`], if it was called.
    pub fn broken_reason(&self) -> Option<String> {
        if !self.broken.load(Ordering::Acquire) {
            return None;
        }
        self.lock_reason().clone()
    }

    /// Records a heartbeat of the controller loop (see [`Health::with_max_silence`]).
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// How long ago [`Health::beat`] was last called; `None` if it never was.
    pub fn last_beat(&self) -> Option<Duration> {
        self.silence_at(Instant::now())
    }

    /// Whether `/healthz` succeeds. See [`Health::liveness`] for the reason.
    pub fn is_live(&self) -> bool {
        self.liveness().is_ok()
    }

    /// `Ok` when live, else why not: `broken: <reason>` or the heartbeat's silence.
    pub fn liveness(&self) -> Result<(), String> {
        self.liveness_at(Instant::now())
    }

    /// `Ok` when ready, else why not: `broken: <reason>`, `shutting down` or `not ready`.
    pub fn readiness(&self) -> Result<(), String> {
        if let Some(reason) = self.broken_reason() {
            return Err(format!("broken: {reason}"));
        }
        if self.is_shutting_down() {
            return Err("shutting down".to_owned());
        }
        if !self.ready.load(Ordering::Acquire) {
            return Err("not ready".to_owned());
        }
        Ok(())
    }

    fn liveness_at(&self, now: Instant) -> Result<(), String> {
        if let Some(reason) = self.broken_reason() {
            return Err(format!("broken: {reason}"));
        }
        if let (Some(max), Some(silence)) = (self.max_silence, self.silence_at(now)) {
            if silence > max {
                return Err(format!(
                    "no heartbeat for {} ms (limit {} ms)",
                    silence.as_millis(),
                    max.as_millis()
                ));
            }
        }
        Ok(())
    }

    fn beat_at(&self, at: Instant) {
        let millis = at.saturating_duration_since(self.created).as_millis();
        let stored = u64::try_from(millis)
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        self.last_beat_millis.fetch_max(stored, Ordering::AcqRel);
    }

    fn silence_at(&self, now: Instant) -> Option<Duration> {
        let stored = self.last_beat_millis.load(Ordering::Acquire);
        let beat = self
            .created
            .checked_add(Duration::from_millis(stored.checked_sub(1)?))?;
        Some(now.saturating_duration_since(beat))
    }

    fn lock_reason(&self) -> MutexGuard<'_, Option<String>> {
        // A panic while holding the lock leaves the reason usable.
        self.broken_reason.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_health_is_live_but_not_ready_nor_leader() {
        let health = Health::new();
        assert!(health.is_live());
        assert_eq!(health.liveness(), Ok(()));
        assert!(!health.is_ready());
        assert_eq!(health.readiness(), Err("not ready".to_owned()));
        assert!(!health.is_leader());
        assert!(!health.is_shutting_down());
        assert_eq!(health.broken_reason(), None);
        assert_eq!(health.last_beat(), None);
        assert_eq!(health.max_silence(), None);
    }

    #[test]
    fn readiness_follows_set_ready_until_shutdown() {
        let health = Health::new();
        health.set_ready(true);
        assert!(health.is_ready());
        health.set_ready(false);
        assert!(!health.is_ready());
        health.set_ready(true);
        health.set_shutting_down();
        assert!(health.is_shutting_down());
        assert_eq!(health.readiness(), Err("shutting down".to_owned()));
        // No way back, and liveness is untouched.
        health.set_ready(true);
        assert!(!health.is_ready());
        assert!(health.is_live());
    }

    #[test]
    fn leadership_is_reported_and_does_not_change_readiness() {
        let health = Health::new();
        health.set_ready(true);
        health.set_leader(true);
        assert!(health.is_leader());
        assert!(health.is_ready());
        health.set_leader(false);
        assert!(!health.is_leader());
        assert!(health.is_ready());
    }

    #[test]
    fn broken_fails_both_probes_and_keeps_the_first_reason() {
        let health = Health::new();
        health.set_ready(true);
        health.set_broken("watcher task died");
        health.set_broken("second");
        assert_eq!(health.broken_reason().as_deref(), Some("watcher task died"));
        assert_eq!(
            health.liveness(),
            Err("broken: watcher task died".to_owned())
        );
        assert_eq!(
            health.readiness(),
            Err("broken: watcher task died".to_owned())
        );
        assert!(!health.is_live());
        assert!(!health.is_ready());
    }

    #[test]
    fn without_a_watchdog_silence_does_not_matter() {
        let health = Health::new();
        let t0 = health.created;
        health.beat_at(t0 + Duration::from_secs(1));
        assert_eq!(health.liveness_at(t0 + Duration::from_secs(86_400)), Ok(()));
    }

    #[test]
    fn the_watchdog_fails_liveness_after_max_silence_since_the_last_beat() {
        let health = Health::new().with_max_silence(Duration::from_secs(60));
        let t0 = health.created;
        // Before the first beat: live however long start-up takes.
        assert_eq!(health.liveness_at(t0 + Duration::from_secs(600)), Ok(()));
        health.beat_at(t0 + Duration::from_secs(10));
        assert_eq!(
            health.silence_at(t0 + Duration::from_secs(40)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(health.liveness_at(t0 + Duration::from_secs(70)), Ok(()));
        assert_eq!(
            health.liveness_at(t0 + Duration::from_secs(71)),
            Err("no heartbeat for 61000 ms (limit 60000 ms)".to_owned())
        );
        // A new beat makes it live again; an older one does not move the clock back.
        health.beat_at(t0 + Duration::from_secs(100));
        health.beat_at(t0 + Duration::from_secs(20));
        assert_eq!(health.liveness_at(t0 + Duration::from_secs(150)), Ok(()));
        assert!(health.last_beat().is_some());
    }
}
