//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's `leaderelection`
//! semantics.
//!
//! - [`LeaderElector::try_acquire_or_renew`] is one attempt: read the Lease (create it with
//!   us as holder when absent), renew it when we hold it, take it over when its holder let it
//!   expire, and give up (`Ok(false)`) when someone else holds it.
//! - Expiry is judged on the *local* clock: a lease held by another is expired when
//!   `leaseDurationSeconds` have passed since this elector last **observed a change** of the
//!   lease record (holder, times, transitions), not by comparing the remote `renewTime` with
//!   our wall clock, so clock skew between nodes does not matter.
//! - Every write is a `replace` carrying the `resourceVersion` that was read: of two electors
//!   racing for the same lease the loser gets a 409, reported as `Ok(false)`.
//! - [`LeaderElector::step_down`] releases a lease we hold (empty holder,
//!   `leaseDurationSeconds: 1`), so a standby takes over at once (client-go's
//!   `ReleaseOnCancel`).
//! - [`LeaderElector::spawn`] runs the loop: try every `retry_period`; once leader, renew every
//!   `retry_period`; publish `false` on a [`watch`] channel when no renewal succeeded for
//!   `renew_deadline`, or at once when the lease shows another holder; on shutdown release the
//!   lease and publish `false`.
//!
//! Local times are [`tokio::time::Instant`]s, so tests drive elections with paused time.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use wf_engine::CancellationToken;
//! use wf_kube::{LeaderElector, LeaseConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let identity = std::env::var("POD_NAME")?;
//! let config = LeaseConfig::new("operators", "db-operator", identity);
//! let elector = Arc::new(LeaderElector::new(client, config)?);
//!
//! let shutdown = CancellationToken::new();
//! let handle = elector.spawn(shutdown.clone());
//! let mut leading = handle.subscribe();
//! // Reconcile only while leading.
//! leading.wait_for(|leader| *leader).await?;
//! tokio::select! {
//!     _ = async { /* reconciler.run(api).await */ } => {}
//!     // Leadership lost: stop reconciling (usually: exit and let the pod restart).
//!     _ = leading.wait_for(|leader| !*leader) => {}
//! }
//! shutdown.cancel(); // releases the lease if we still hold it
//! handle.join().await?;
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wf_engine::CancellationToken;

use crate::resource::status_code;

/// How many times [`LeaderElector::step_down`] re-reads the lease after a conflict.
const RELEASE_ATTEMPTS: u32 = 3;

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The [`LeaseConfig`] is inconsistent.
    #[error("invalid leader election config for lease {namespace}/{name}: {reason}")]
    InvalidConfig {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A call to the Kubernetes API failed (other than a 409, which is a lost race).
    #[error("lease {namespace}/{name}: {source}")]
    Kube {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
        /// The API error (boxed: it is large).
        #[source]
        source: Box<kube::Error>,
    },
    /// A renewal did not complete before the renew deadline.
    #[error("lease {namespace}/{name}: renewal timed out")]
    Timeout {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
    },
}

/// Which lease to compete for, as whom, and the timings (client-go's defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The lease's namespace.
    pub namespace: String,
    /// The lease's name.
    pub name: String,
    /// This candidate's identity (unique per process, usually the pod name).
    pub identity: String,
    /// How long a lease stays valid after its last observed change. Default 15 s.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down. Default 10 s.
    pub renew_deadline: Duration,
    /// The pause between attempts. Default 2 s.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// The lease `namespace/name` contended for by `identity`, with the default timings.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Sets the lease duration.
    pub fn with_lease_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration;
        self
    }

    /// Sets the renew deadline.
    pub fn with_renew_deadline(mut self, deadline: Duration) -> Self {
        self.renew_deadline = deadline;
        self
    }

    /// Sets the retry period.
    pub fn with_retry_period(mut self, period: Duration) -> Self {
        self.retry_period = period;
        self
    }

    /// Checks that names are set, `lease_duration` is at least 1 s, and
    /// `retry_period < renew_deadline < lease_duration`.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let reason = if self.namespace.is_empty() || self.name.is_empty() {
            "the lease namespace and name must not be empty"
        } else if self.identity.is_empty() {
            "the identity must not be empty"
        } else if self.lease_duration < Duration::from_secs(1) {
            "lease_duration must be at least 1s"
        } else if self.renew_deadline >= self.lease_duration {
            "renew_deadline must be shorter than lease_duration"
        } else if self.retry_period.is_zero() {
            "retry_period must not be zero"
        } else if self.retry_period >= self.renew_deadline {
            "retry_period must be shorter than renew_deadline"
        } else {
            return Ok(());
        };
        Err(LeaderError::InvalidConfig {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            reason: reason.to_string(),
        })
    }

    /// `lease_duration` in whole seconds, rounded up.
    fn lease_duration_seconds(&self) -> i32 {
        let d = self.lease_duration;
        let seconds = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        i32::try_from(seconds).unwrap_or(i32::MAX)
    }
}

/// The part of a lease whose changes count as activity of its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    /// `None` when absent or empty (released).
    holder: Option<String>,
    lease_duration_seconds: Option<i32>,
    acquire_time: Option<MicroTime>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            lease_duration_seconds: spec.lease_duration_seconds,
            acquire_time: spec.acquire_time,
            renew_time: spec.renew_time,
            transitions: spec.lease_transitions,
        }
    }
}

/// A record and the local time at which it was first seen.
#[derive(Debug)]
struct Observed {
    record: Record,
    at: Instant,
}

/// The outcome of one attempt.
#[derive(Debug)]
enum Attempt {
    /// We hold the lease (created, renewed or taken over).
    Held,
    /// Another candidate holds a lease that has not expired.
    OtherHolder(String),
    /// Our write lost a race (409).
    Conflict,
}

/// A candidate for the leadership of one lease.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Mutex<Option<Observed>>,
    leader: AtomicBool,
}

impl LeaderElector {
    /// A candidate for the lease of `config`, which is validated.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Result<Self, LeaderError> {
        config.validate()?;
        Ok(LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
            leader: AtomicBool::new(false),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Whether we held the lease at the last attempt (cached, no API call).
    ///
    /// Set by a successful [`try_acquire_or_renew`](Self::try_acquire_or_renew), cleared when
    /// it sees another holder, by [`step_down`](Self::step_down), and by the
    /// [`spawn`](Self::spawn)ed loop when it gives up leadership. Errors and lost races leave
    /// it unchanged.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// One attempt to acquire or renew the lease: `Ok(true)` when we hold it afterwards,
    /// `Ok(false)` when another candidate holds an unexpired lease or won a race for it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        Ok(matches!(self.attempt().await?, Attempt::Held))
    }

    /// Releases the lease if we hold it (empty holder, `leaseDurationSeconds: 1`), so that a
    /// standby acquires it at its next attempt. Clears [`is_leader`](Self::is_leader) first.
    pub async fn step_down(&self) -> Result<(), LeaderError> {
        self.leader.store(false, Ordering::SeqCst);
        let mut last_conflict = None;
        for _ in 0..RELEASE_ATTEMPTS {
            let Some(mut lease) = self.get().await? else {
                return Ok(());
            };
            let record = Record::of(&lease);
            if record.holder.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            let now = later_than(now(), record.renew_time.as_ref());
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.acquire_time = Some(now.clone());
            spec.renew_time = Some(now);
            match self.replace(&lease).await {
                Ok(written) => {
                    self.observe(&Record::of(&written));
                    tracing::info!(
                        lease = %self.lease_key(),
                        identity = %self.config.identity,
                        "released the lease"
                    );
                    return Ok(());
                }
                Err(e) if status_code(&e) == Some(409) => last_conflict = Some(e),
                Err(e) => return Err(self.kube_error(e)),
            }
        }
        match last_conflict {
            Some(e) => Err(self.kube_error(e)),
            None => Ok(()),
        }
    }

    /// Runs the election loop until `shutdown` is cancelled; see the [module](self) docs.
    ///
    /// The handle publishes `true` while we lead. After leadership is lost the loop goes on
    /// as a candidate. On shutdown it publishes `false` and then releases the lease.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> LeaderHandle {
        let (sender, receiver) = watch::channel(false);
        let elector = Arc::clone(&self);
        let task = tokio::spawn(async move { elector.run(sender, shutdown).await });
        LeaderHandle {
            elector: self,
            receiver,
            task,
        }
    }

    async fn run(&self, sender: watch::Sender<bool>, shutdown: CancellationToken) {
        let lease = self.lease_key();
        let identity = self.config.identity.as_str();
        // Some(time of the last successful renewal) while leading.
        let mut renewed: Option<Instant> = None;
        loop {
            let result = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                result = self.bounded_attempt(renewed) => result,
            };
            let now = Instant::now();
            match (result, renewed) {
                (Ok(Attempt::Held), previous) => {
                    if previous.is_none() {
                        tracing::info!(%lease, %identity, "leading");
                        sender.send_replace(true);
                    }
                    renewed = Some(now);
                }
                (Ok(Attempt::OtherHolder(holder)), Some(_)) => {
                    tracing::info!(%lease, %identity, %holder, "lost the lease to another holder");
                    self.stop_leading(&sender);
                    renewed = None;
                }
                (result, Some(last)) => {
                    match result {
                        Err(error) => {
                            tracing::warn!(%lease, %identity, %error, "failed to renew the lease")
                        }
                        Ok(_) => tracing::debug!(%lease, %identity, "lease renewal conflicted"),
                    }
                    if now.duration_since(last) >= self.config.renew_deadline {
                        tracing::info!(
                            %lease,
                            %identity,
                            deadline = ?self.config.renew_deadline,
                            "stepping down: the lease was not renewed in time"
                        );
                        self.stop_leading(&sender);
                        renewed = None;
                    }
                }
                (Err(error), None) => {
                    tracing::warn!(%lease, %identity, %error, "failed to acquire the lease")
                }
                (Ok(_), None) => {}
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        if renewed.is_some() || self.is_leader() {
            sender.send_replace(false);
            tracing::info!(%lease, %identity, "shutting down: stepping down");
            match tokio::time::timeout(self.config.renew_deadline, self.step_down()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%lease, %identity, %error, "failed to release the lease")
                }
                Err(_) => tracing::warn!(%lease, %identity, "releasing the lease timed out"),
            }
        }
        sender.send_replace(false);
    }

    /// One attempt; while leading it is cut off at the renew deadline.
    async fn bounded_attempt(&self, renewed: Option<Instant>) -> Result<Attempt, LeaderError> {
        let Some(last) = renewed else {
            return self.attempt().await;
        };
        let remaining =
            (last + self.config.renew_deadline).saturating_duration_since(Instant::now());
        tokio::time::timeout(remaining, self.attempt())
            .await
            .unwrap_or_else(|_| {
                Err(LeaderError::Timeout {
                    namespace: self.config.namespace.clone(),
                    name: self.config.name.clone(),
                })
            })
    }

    fn stop_leading(&self, sender: &watch::Sender<bool>) {
        self.leader.store(false, Ordering::SeqCst);
        sender.send_replace(false);
    }

    async fn attempt(&self) -> Result<Attempt, LeaderError> {
        let identity = self.config.identity.as_str();
        let Some(mut lease) = self.get().await? else {
            return self.create().await;
        };
        let record = Record::of(&lease);
        let observed_at = self.observe(&record);
        let we_hold = record.holder.as_deref() == Some(identity);
        if let Some(holder) = record.holder.as_ref().filter(|_| !we_hold) {
            let duration = record
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.lease_duration, Duration::from_secs);
            if observed_at + duration > Instant::now() {
                self.leader.store(false, Ordering::SeqCst);
                return Ok(Attempt::OtherHolder(holder.clone()));
            }
        }
        let now = later_than(now(), record.renew_time.as_ref());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(identity.to_string());
        spec.lease_duration_seconds = Some(self.config.lease_duration_seconds());
        spec.renew_time = Some(now.clone());
        if !we_hold {
            spec.acquire_time = Some(now);
            spec.lease_transitions = Some(record.transitions.unwrap_or(0).saturating_add(1));
        }
        match self.replace(&lease).await {
            Ok(written) => {
                self.observe(&Record::of(&written));
                if !we_hold {
                    tracing::info!(
                        lease = %self.lease_key(),
                        %identity,
                        previous = record.holder.as_deref().unwrap_or(""),
                        "acquired the lease"
                    );
                }
                self.leader.store(true, Ordering::SeqCst);
                Ok(Attempt::Held)
            }
            Err(e) if status_code(&e) == Some(409) => {
                tracing::debug!(lease = %self.lease_key(), %identity, "lost a race for the lease");
                Ok(Attempt::Conflict)
            }
            Err(e) => Err(self.kube_error(e)),
        }
    }

    async fn create(&self) -> Result<Attempt, LeaderError> {
        let now = now();
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.config.lease_duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                self.observe(&Record::of(&created));
                tracing::info!(
                    lease = %self.lease_key(),
                    identity = %self.config.identity,
                    "created and acquired the lease"
                );
                self.leader.store(true, Ordering::SeqCst);
                Ok(Attempt::Held)
            }
            Err(e) if status_code(&e) == Some(409) => Ok(Attempt::Conflict),
            Err(e) => Err(self.kube_error(e)),
        }
    }

    /// Records `record` as observed now unless it is the one already observed; returns the
    /// local time at which the current record was first observed.
    fn observe(&self, record: &Record) -> Instant {
        let now = Instant::now();
        let mut observed = self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match observed.as_ref() {
            Some(o) if o.record == *record => o.at,
            _ => {
                *observed = Some(Observed {
                    record: record.clone(),
                    at: now,
                });
                now
            }
        }
    }

    async fn get(&self) -> Result<Option<Lease>, LeaderError> {
        self.api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.kube_error(e))
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        self.api
            .replace(&self.config.name, &PostParams::default(), lease)
            .await
    }

    fn lease_key(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    fn kube_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Kube {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source: Box::new(source),
        }
    }
}

/// The running election loop of [`LeaderElector::spawn`].
#[derive(Debug)]
pub struct LeaderHandle {
    elector: Arc<LeaderElector>,
    receiver: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl LeaderHandle {
    /// A receiver of the leadership: `true` while we lead.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.receiver.clone()
    }

    /// Whether the loop currently publishes leadership.
    pub fn is_leader(&self) -> bool {
        *self.receiver.borrow()
    }

    /// The elector driven by the loop.
    pub fn elector(&self) -> &Arc<LeaderElector> {
        &self.elector
    }

    /// Waits for the loop to end (after its shutdown token is cancelled and the lease is
    /// released).
    pub async fn join(self) -> Result<(), tokio::task::JoinError> {
        self.task.await
    }
}

/// The wall-clock time, at microsecond precision (that of `MicroTime`).
fn now() -> MicroTime {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// `now`, or one microsecond after `previous` when the clock has not moved past it: every
/// write of the lease is then a visible change of its record, which is what other candidates
/// watch.
fn later_than(now: MicroTime, previous: Option<&MicroTime>) -> MicroTime {
    match previous {
        Some(previous) if now <= *previous => previous
            .0
            .checked_add(Duration::from_micros(1))
            .map(MicroTime)
            .unwrap_or(now),
        _ => now,
    }
}
