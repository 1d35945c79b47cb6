//! [`Leadership`]: whether this replica leads, as the status monitor and the callbacks ask it.

use std::sync::Arc;

use tokio::sync::watch;
use wf_kube::Health;

/// Whether this replica is the leader, read at the moment of asking. Cheap to clone.
///
/// Only the leader folds the cluster manager's reports into the MPDClusters: a follower's
/// monitor skips its resyncs and its callbacks apply nothing.
///
/// ```
/// use shared_storage::status::Leadership;
///
/// let (tx, rx) = tokio::sync::watch::channel(false);
/// let leadership = Leadership::from_watch(rx);
/// assert!(!leadership.is_leader());
/// tx.send(true).unwrap();
/// assert!(leadership.is_leader());
/// assert!(Leadership::always().is_leader());
/// ```
#[derive(Clone, Debug)]
pub struct Leadership(Source);

#[derive(Clone, Debug)]
enum Source {
    Always,
    Watch(watch::Receiver<bool>),
    Health(Arc<Health>),
}

impl Leadership {
    /// Always the leader: one replica without leader election, the local mode, tests.
    pub fn always() -> Self {
        Leadership(Source::Always)
    }

    /// Leads while the channel holds `true` (e.g. [`wf_kube::LeaderHandle::subscribe`]). A
    /// closed channel keeps its last value.
    pub fn from_watch(leading: watch::Receiver<bool>) -> Self {
        Leadership(Source::Watch(leading))
    }

    /// Leads while [`Health::is_leader`] (the flag [`wf_kube::Operator`] sets while it holds
    /// the lease and reconciles; see [`wf_kube::Operator::health`]).
    pub fn from_health(health: Arc<Health>) -> Self {
        Leadership(Source::Health(health))
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        match &self.0 {
            Source::Always => true,
            Source::Watch(leading) => *leading.borrow(),
            Source::Health(health) => health.is_leader(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_leadership_follows_the_flag() {
        let health = Arc::new(Health::new());
        let leadership = Leadership::from_health(health.clone());
        assert!(!leadership.is_leader());
        health.set_leader(true);
        assert!(leadership.is_leader());
        health.set_leader(false);
        assert!(!leadership.is_leader());
    }

    #[test]
    fn a_closed_watch_keeps_its_last_value() {
        let (tx, rx) = watch::channel(true);
        let leadership = Leadership::from_watch(rx);
        drop(tx);
        assert!(leadership.is_leader());
    }
}
