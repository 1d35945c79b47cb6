//! [`StatusMonitor`]: folds what the cluster manager (CM) reports into the MPDClusters.
//!
//! Three feeds, one path:
//!
//! - the periodic resync ([`StatusMonitor::resync_all`], every
//!   [`MonitorConfig::resync_interval`] from [`StatusMonitor::run_until`]) asks each
//!   cluster's CM for its status and folds it in ([`crate::domain::sync_from_cm`]);
//! - a trigger for one cluster ([`StatusMonitor::trigger`], e.g. from a watch event) does
//!   the same for that cluster soon, without waiting for the next resync;
//! - the CM's callbacks ([`crate::callbacks`]) report a new RW
//!   ([`StatusMonitor::record_rw`]) or one engine's state
//!   ([`StatusMonitor::record_engine_status`]).
//!
//! Each fold, for one cluster:
//!
//! 1. returns [`StatusError::NotLeader`] on a follower, which applies nothing;
//! 2. takes the cluster's lock in the flows' [`ResourceLocks`] (the state machine's, see
//!    [`wf_engine::StateMachine::locks`]), waiting at most [`MonitorConfig::lock_timeout`]:
//!    it never writes in the middle of a step, and a step's save never overwrites what it
//!    wrote (weakness 21);
//! 3. reads the cluster fresh and skips what it does not manage ([`Skip`]);
//! 4. applies the report to the aggregate, and when something changed writes only the
//!    roles, the engine states and the leader
//!    ([`mapping::apply_reported`](crate::domain::mapping::apply_reported)) through the
//!    conflict-retried repository ([`SharedStorageService::modify`]);
//! 5. after a change of RW, relabels the old and the new RW's pods
//!    ([`PodManager::label_ins_type`](crate::ports::PodManager::label_ins_type)). A
//!    relabel that fails is logged and retried, for every pod of the cluster, at the
//!    cluster's next fold.
//!
//! The monitor uses only the port traits (through the service), so it runs on the
//! simulators and on the production adapters alike.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use shared_storage::ports::sim::Simulation;
//! use shared_storage::ports::ClusterRef;
//! use shared_storage::service::{ServiceConfig, SharedStorageService};
//! use shared_storage::status::{Leadership, MonitorConfig, StatusMonitor, StatusError};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let sim = Simulation::default();
//! let service = Arc::new(SharedStorageService::new(sim.ports(), ServiceConfig::default()));
//! // In the operator: the state machine's locks, `operator.machine.locks().clone()`.
//! let locks = wf_engine::ResourceLocks::new();
//! let (leading, leadership) = tokio::sync::watch::channel(false);
//! let monitor = StatusMonitor::new(
//!     service,
//!     locks,
//!     Leadership::from_watch(leadership),
//!     MonitorConfig::default(),
//! );
//! let cluster = ClusterRef::new("default", "c1");
//! // A follower applies nothing.
//! assert!(matches!(monitor.sync(&cluster).await, Err(StatusError::NotLeader)));
//! leading.send(true).unwrap();
//! // The leader looks the cluster up (none here).
//! assert!(matches!(monitor.sync(&cluster).await, Err(StatusError::NotFound { .. })));
//! // Run it beside the controller: `tokio::spawn(monitor.clone().run_until(stop))`.
//! # }
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::Notify;
use tracing::Instrument;
use wf_engine::{ResourceKey, ResourceLocks};

use super::{Leadership, StatusError};
use crate::crd::{MPDCluster, SHARED_CLUSTER_TYPE};
use crate::domain::{self, mapping, DomainError, InsType, LoadMode};
use crate::ports::{ClusterRef, CmStatus, PortError};
use crate::service::{ServiceError, SharedStorageService};

/// Tunables of the [`StatusMonitor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// How often every cluster's CM is asked for its status. Default 60 s, as the original.
    pub resync_interval: Duration,
    /// How long a fold waits for a cluster a flow holds before it gives up
    /// ([`StatusError::Busy`]); the next resync tries again. Default 30 s.
    pub lock_timeout: Duration,
    /// How many clusters a resync folds at once. Default 4.
    pub concurrency: usize,
    /// Only clusters whose `spec.operatorName` equals this are folded; empty folds every
    /// shared cluster. Default `polar-mpd` (the `--filter-operator-name` default).
    pub operator_name: String,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            resync_interval: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(30),
            concurrency: 4,
            operator_name: "polar-mpd".to_owned(),
        }
    }
}

/// Why a cluster was left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// `spec.dbClusterType` is not `share` (weakness 15: a local cluster is never loaded as
    /// shared).
    NotShared,
    /// `spec.operatorName` names another operator.
    OtherOperator,
    /// The cluster is being deleted.
    Deleting,
    /// The cluster is not created yet (`clusterStatus` empty, `Init` or `Creating`): its CM
    /// may not run, and the Create flow reads the CM itself.
    NotCreated,
}

impl Skip {
    /// A short explanation, for logs and replies.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NotShared => "not a shared-storage cluster",
            Skip::OtherOperator => "managed by another operator",
            Skip::Deleting => "being deleted",
            Skip::NotCreated => "not created yet",
        }
    }
}

/// What one fold did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The report held no news: nothing was written.
    Unchanged,
    /// The status was written.
    Updated {
        /// Whether the RW changed (its pods were then relabelled).
        rw_changed: bool,
    },
    /// The cluster was left alone.
    Skipped(Skip),
}

/// What a resync of every cluster did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResyncReport {
    /// The clusters whose status was written.
    pub updated: Vec<ClusterRef>,
    /// How many clusters had no news.
    pub unchanged: usize,
    /// How many clusters were left alone ([`Skip`]).
    pub skipped: usize,
    /// The clusters that could not be folded, with the error.
    pub failed: Vec<(ClusterRef, String)>,
}

/// The status monitor; see the [module](self) docs. Cheap to clone: clones share the
/// queue of triggered clusters.
#[derive(Clone)]
pub struct StatusMonitor {
    inner: Arc<Inner>,
}

struct Inner {
    service: Arc<SharedStorageService>,
    locks: ResourceLocks,
    leadership: Leadership,
    config: MonitorConfig,
    /// Clusters triggered and not folded yet (a set: a burst of triggers folds once).
    triggered: Mutex<BTreeSet<ClusterRef>>,
    wake: Notify,
    /// Clusters whose pod labels could not all be written; relabelled at the next fold.
    relabel: Mutex<BTreeSet<ClusterRef>>,
}

impl std::fmt::Debug for StatusMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusMonitor")
            .field("config", &self.inner.config)
            .field("leadership", &self.inner.leadership)
            .finish_non_exhaustive()
    }
}

/// One report to fold.
enum Report<'a> {
    /// A CM status document.
    Cm(&'a CmStatus),
    /// The CM moved the RW to this endpoint.
    Rw(&'a str),
    /// One engine's state, as of `at`.
    Engine {
        endpoint: &'a str,
        state: &'a str,
        reason: &'a str,
        at: DateTime<Utc>,
    },
}

impl Report<'_> {
    fn apply(&self, model: &mut domain::SharedStorageCluster) -> Result<bool, DomainError> {
        match self {
            Report::Cm(status) => domain::sync_from_cm(model, status),
            Report::Rw(endpoint) => domain::set_rw(model, endpoint),
            Report::Engine {
                endpoint,
                state,
                reason,
                at,
            } => domain::set_ins_state(model, endpoint, state, reason, Some(*at)),
        }
    }

    fn source(&self) -> &'static str {
        match self {
            Report::Cm(_) => "cm-status",
            Report::Rw(_) => "rw_ins",
            Report::Engine { .. } => "engine_status",
        }
    }
}

/// What the caller of a fold asked for.
enum Ask<'a> {
    /// Poll the CM.
    Poll,
    /// Apply this report.
    Given(Report<'a>),
}

impl StatusMonitor {
    /// A monitor writing through `service` (its ports: the cluster store, the cluster
    /// manager and the pods), serialised with the flows by `locks` (pass the state
    /// machine's, [`wf_engine::StateMachine::locks`]), applying only while `leadership`
    /// says this replica leads.
    pub fn new(
        service: Arc<SharedStorageService>,
        locks: ResourceLocks,
        leadership: Leadership,
        config: MonitorConfig,
    ) -> Self {
        StatusMonitor {
            inner: Arc::new(Inner {
                service,
                locks,
                leadership,
                config,
                triggered: Mutex::new(BTreeSet::new()),
                wake: Notify::new(),
                relabel: Mutex::new(BTreeSet::new()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.inner.config
    }

    /// The leadership the monitor obeys.
    pub fn leadership(&self) -> &Leadership {
        &self.inner.leadership
    }

    /// Asks the cluster's CM for its status now and folds it in.
    ///
    /// # Errors
    /// [`StatusError::NotLeader`] on a follower, [`StatusError::Busy`] when a flow held the
    /// cluster for longer than [`MonitorConfig::lock_timeout`],
    /// [`StatusError::NotFound`], [`StatusError::Port`] when the CM cannot be asked,
    /// [`StatusError::Domain`] when it reports an endpoint no instance has (nothing is
    /// written then), [`StatusError::Write`] when the write fails.
    pub async fn sync(&self, cluster: &ClusterRef) -> Result<SyncOutcome, StatusError> {
        self.fold(cluster, Ask::Poll).await
    }

    /// Records that the CM moved the RW to `endpoint` (`clientIP:port`): the callback
    /// `rw_ins`. Errors as [`StatusMonitor::sync`].
    pub async fn record_rw(
        &self,
        cluster: &ClusterRef,
        endpoint: &str,
    ) -> Result<SyncOutcome, StatusError> {
        self.fold(cluster, Ask::Given(Report::Rw(endpoint))).await
    }

    /// Records the engine state `state` (with `reason`, since now) of the instance at
    /// `endpoint`: the callback `meta/engine_status`. Errors as [`StatusMonitor::sync`].
    pub async fn record_engine_status(
        &self,
        cluster: &ClusterRef,
        endpoint: &str,
        state: &str,
        reason: &str,
    ) -> Result<SyncOutcome, StatusError> {
        let report = Report::Engine {
            endpoint,
            state,
            reason,
            at: Utc::now(),
        };
        self.fold(cluster, Ask::Given(report)).await
    }

    /// Queues `cluster` for a fold by the running [`StatusMonitor::run_until`] (a watch
    /// event, a callback that wants a full resync). Triggers of one cluster made before it
    /// is folded count once.
    pub fn trigger(&self, cluster: ClusterRef) {
        self.inner
            .triggered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cluster);
        self.inner.wake.notify_one();
    }

    /// Folds the CM status of every cluster it manages, at most
    /// [`MonitorConfig::concurrency`] at once. A follower does nothing. Per-cluster errors
    /// are logged and reported, never fatal.
    ///
    /// # Errors
    /// [`StatusError::Port`] when the clusters cannot be listed.
    pub async fn resync_all(&self) -> Result<ResyncReport, StatusError> {
        let mut report = ResyncReport::default();
        if !self.inner.leadership.is_leader() {
            return Ok(report);
        }
        let clusters = self.inner.service.ports().clusters.list().await?;
        let mut keys = Vec::new();
        for cr in &clusters {
            match self.skip(cr) {
                Some(_) => report.skipped += 1,
                None => keys.push(cluster_ref(cr)),
            }
        }
        let results: Vec<_> = futures::stream::iter(keys)
            .map(|cluster| async move {
                let outcome = self.sync(&cluster).await;
                (cluster, outcome)
            })
            .buffer_unordered(self.inner.config.concurrency.max(1))
            .collect()
            .await;
        for (cluster, outcome) in results {
            match outcome {
                Ok(SyncOutcome::Updated { .. }) => report.updated.push(cluster),
                Ok(SyncOutcome::Unchanged) => report.unchanged += 1,
                Ok(SyncOutcome::Skipped(_)) => report.skipped += 1,
                Err(StatusError::NotLeader) => return Ok(report),
                Err(error) => report.failed.push((cluster, error.to_string())),
            }
        }
        report.updated.sort();
        report.failed.sort();
        Ok(report)
    }

    /// Runs the monitor until `shutdown` resolves: a resync at once and then every
    /// [`MonitorConfig::resync_interval`] (skipped while not leading), and the folds of
    /// [triggered](StatusMonitor::trigger) clusters as they come. Work in progress at the
    /// shutdown is dropped (every write is one atomic request).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.inner.config.resync_interval.max(ONE_MS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(
            interval = ?self.inner.config.resync_interval,
            "status monitor started"
        );
        loop {
            let work = async {
                tokio::select! {
                    _ = ticker.tick() => self.log_resync().await,
                    () = self.inner.wake.notified() => self.fold_triggered().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = work => {}
            }
        }
        tracing::info!("status monitor stopped");
    }

    async fn log_resync(&self) {
        if !self.inner.leadership.is_leader() {
            tracing::debug!("not leading: resync skipped");
            return;
        }
        match self.resync_all().await {
            Ok(report) => {
                for (cluster, error) in &report.failed {
                    tracing::warn!(resource = %cluster, %error, "status resync failed");
                }
                tracing::debug!(
                    updated = report.updated.len(),
                    unchanged = report.unchanged,
                    skipped = report.skipped,
                    failed = report.failed.len(),
                    "status resync done"
                );
            }
            Err(error) => tracing::warn!(%error, "status resync: cannot list the clusters"),
        }
    }

    async fn fold_triggered(&self) {
        let clusters = std::mem::take(
            &mut *self
                .inner
                .triggered
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        futures::stream::iter(clusters)
            .for_each_concurrent(self.inner.config.concurrency.max(1), |cluster| async move {
                match self.sync(&cluster).await {
                    Ok(_) | Err(StatusError::NotLeader) => {}
                    Err(error) => {
                        tracing::warn!(resource = %cluster, %error, "triggered status sync failed");
                    }
                }
            })
            .await;
    }

    /// Why `cr` is not folded, if it is not.
    fn skip(&self, cr: &MPDCluster) -> Option<Skip> {
        let wanted = &self.inner.config.operator_name;
        if cr.spec.db_cluster_type != SHARED_CLUSTER_TYPE {
            Some(Skip::NotShared)
        } else if !wanted.is_empty() && cr.spec.operator_name != *wanted {
            Some(Skip::OtherOperator)
        } else if cr.metadata.deletion_timestamp.is_some() {
            Some(Skip::Deleting)
        } else if matches!(
            cr.status.as_ref().map_or("", |s| s.cluster_status.as_str()),
            "" | "Init" | "Creating"
        ) {
            Some(Skip::NotCreated)
        } else {
            None
        }
    }

    fn ensure_leader(&self) -> Result<(), StatusError> {
        if self.inner.leadership.is_leader() {
            Ok(())
        } else {
            Err(StatusError::NotLeader)
        }
    }

    async fn fold(&self, cluster: &ClusterRef, ask: Ask<'_>) -> Result<SyncOutcome, StatusError> {
        let source = match &ask {
            Ask::Poll => "cm-status",
            Ask::Given(report) => report.source(),
        };
        let span = tracing::info_span!("status", resource = %cluster, source);
        async {
            let outcome = self.fold_locked(cluster, ask).await;
            match &outcome {
                Ok(SyncOutcome::Updated { rw_changed }) => {
                    tracing::info!(rw_changed, "status updated from the cluster manager");
                }
                Ok(other) => tracing::debug!(outcome = ?other, "status fold"),
                Err(error) => tracing::debug!(%error, "status fold failed"),
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn fold_locked(
        &self,
        cluster: &ClusterRef,
        ask: Ask<'_>,
    ) -> Result<SyncOutcome, StatusError> {
        self.ensure_leader()?;
        let key = ResourceKey::new(&cluster.namespace, &cluster.name);
        let waited = self.inner.config.lock_timeout;
        let _guard = self
            .inner
            .locks
            .lock_timeout(&key, waited)
            .await
            .ok_or_else(|| StatusError::Busy {
                cluster: cluster.clone(),
                waited,
            })?;
        // Leadership may have been lost while waiting.
        self.ensure_leader()?;
        let ports = self.inner.service.ports();
        let cr = ports
            .clusters
            .get(&cluster.namespace, &cluster.name)
            .await
            .map_err(|e| not_found(cluster, e.into()))?;
        if let Some(skip) = self.skip(&cr) {
            return Ok(SyncOutcome::Skipped(skip));
        }
        let polled;
        let report = match ask {
            Ask::Poll => {
                polled = ports.cluster_manager.status(cluster).await?;
                Report::Cm(&polled)
            }
            Ask::Given(report) => report,
        };
        if fold_onto(&cr, &report)?.is_none() {
            if self.relabel_pending(cluster) {
                self.relabel(cluster, &cr, None).await;
            }
            return Ok(SyncOutcome::Unchanged);
        }
        let stored = self
            .inner
            .service
            .modify(cluster, |fresh| {
                // Re-applied to the copy a conflicting writer left; a report that no
                // longer fits it changes nothing.
                fold_onto(fresh, &report)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| fresh.clone())
            })
            .await
            .map_err(|e| not_found(cluster, e))?;
        let (before, after) = (leader(&cr), leader(&stored));
        let rw_changed = before != after;
        if self.relabel_pending(cluster) {
            self.relabel(cluster, &stored, None).await;
        } else if rw_changed {
            self.relabel(cluster, &stored, Some([before, after])).await;
        }
        Ok(SyncOutcome::Updated { rw_changed })
    }

    fn relabel_pending(&self, cluster: &ClusterRef) -> bool {
        self.inner
            .relabel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(cluster)
    }

    /// Sets the `db_ins_type` label of the pods of `only` (insIds), or of every instance,
    /// from their type in `cr`. A failure marks the cluster for a full relabel at its next
    /// fold.
    async fn relabel(&self, cluster: &ClusterRef, cr: &MPDCluster, only: Option<[&str; 2]>) {
        let pods = &self.inner.service.ports().pods;
        let mut all_ok = true;
        let entries = cr.status.iter().flat_map(|s| s.db_instance_status.iter());
        for (ins_id, entry) in entries {
            if only.is_some_and(|ids| !ids.contains(&ins_id.as_str())) || entry.pod_name.is_empty()
            {
                continue;
            }
            let Some(ins_type) = InsType::parse(&entry.ins_type) else {
                continue;
            };
            let namespace = if entry.pod_name_space.is_empty() {
                cluster.namespace.as_str()
            } else {
                entry.pod_name_space.as_str()
            };
            if let Err(error) = pods
                .label_ins_type(namespace, &entry.pod_name, ins_type)
                .await
            {
                tracing::warn!(pod = %entry.pod_name, %error, "cannot relabel the pod; retried at the next sync");
                all_ok = false;
            }
        }
        let mut pending = self
            .inner
            .relabel
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if all_ok {
            pending.remove(cluster);
        } else {
            pending.insert(cluster.clone());
        }
    }
}

const ONE_MS: Duration = Duration::from_millis(1);

/// The object with `report` folded in, or `None` when it changes nothing.
fn fold_onto(cr: &MPDCluster, report: &Report<'_>) -> Result<Option<MPDCluster>, DomainError> {
    let mut model = mapping::load(cr, LoadMode::default())?;
    if !report.apply(&mut model)? {
        return Ok(None);
    }
    Ok(Some(mapping::apply_reported(&model, cr)))
}

fn leader(cr: &MPDCluster) -> &str {
    cr.status
        .as_ref()
        .map_or("", |s| s.leader_instance_id.as_str())
}

fn cluster_ref(cr: &MPDCluster) -> ClusterRef {
    ClusterRef::new(
        cr.metadata.namespace.clone().unwrap_or_default(),
        cr.metadata.name.clone().unwrap_or_default(),
    )
}

/// A missing cluster as [`StatusError::NotFound`]; any other error as it is.
fn not_found(cluster: &ClusterRef, error: ServiceError) -> StatusError {
    match error {
        ServiceError::Port(PortError::NotFound { .. }) => StatusError::NotFound {
            cluster: cluster.clone(),
        },
        ServiceError::Port(other) => StatusError::Port(other),
        other => StatusError::Write(other),
    }
}
