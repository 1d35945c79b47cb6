//! Cluster-manager operations: HA, image.

use super::{cluster_ref, Outcome, SharedStorageService};
use crate::domain::SharedStorageCluster;
use crate::ports::Progress;

impl SharedStorageService {
    /// Turns automatic failover on or off; reads the CM first so a repeated call writes
    /// nothing.
    pub async fn set_ha(&self, model: &SharedStorageCluster, enabled: bool) -> Outcome {
        let cluster = cluster_ref(model);
        let cm = &self.ports.cluster_manager;
        if cm.status(&cluster).await?.ha_enabled != enabled {
            cm.set_ha(&cluster, enabled).await?;
        }
        Ok(Progress::Done(()))
    }

    /// Sets the CM image (a no-op for the CM when it already runs it).
    pub async fn upgrade_cm(&self, model: &SharedStorageCluster, image: &str) -> Outcome {
        self.ports
            .cluster_manager
            .upgrade(&cluster_ref(model), image)
            .await?;
        Ok(Progress::Done(()))
    }
}
