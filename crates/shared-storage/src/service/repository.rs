//! The repository (port A and the mapping of §2.3): load a cluster, save the aggregate with
//! conflict retries, and small targeted writes (state, annotations).

use std::collections::BTreeMap;

use super::{ServiceError, SharedStorageService};
use crate::crd::MPDCluster;
use crate::domain::mapping::{self, EngineStates};
use crate::domain::{LoadMode, SharedStorageCluster};
use crate::ports::ClusterRef;

/// A cluster as a step sees it: the object read at `init` and the aggregate loaded from it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The MPDCluster as read.
    pub cr: MPDCluster,
    /// The aggregate.
    pub model: SharedStorageCluster,
    /// The markers of the run the step belongs to.
    pub markers: super::RunMarkers,
    /// The flow the step runs in (empty outside a flow).
    pub flow: String,
}

impl Loaded {
    /// Records the flow the step runs in.
    pub fn in_flow(mut self, flow: &str) -> Self {
        self.flow = flow.to_owned();
        self
    }

    /// Scopes the progress markers to run `seq`.
    pub fn for_run(mut self, seq: u64) -> Self {
        self.markers = super::RunMarkers::load(&self.cr, seq);
        self
    }

    /// An annotation of the object as read.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.cr
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }
}

impl SharedStorageService {
    /// Reads the cluster and loads the aggregate in `mode`.
    pub async fn load(&self, cluster: &ClusterRef, mode: LoadMode) -> Result<Loaded, ServiceError> {
        let cr = self
            .ports
            .clusters
            .get(&cluster.namespace, &cluster.name)
            .await?;
        let model = mapping::load(&cr, mode)?;
        let markers = super::RunMarkers::load(&cr, 0);
        Ok(Loaded {
            cr,
            model,
            markers,
            flow: String::new(),
        })
    }

    /// Applies `change` to a fresh copy of the object and writes it (spec and metadata, then
    /// status, each only when changed), re-reading and re-applying on conflict. Returns the
    /// stored object.
    pub async fn modify(
        &self,
        cluster: &ClusterRef,
        change: impl Fn(&MPDCluster) -> MPDCluster + Send + Sync,
    ) -> Result<MPDCluster, ServiceError> {
        let clusters = &self.ports.clusters;
        let attempts = self.config.save_attempts.max(1);
        for _ in 0..attempts {
            let fresh = clusters.get(&cluster.namespace, &cluster.name).await?;
            let wanted = change(&fresh);
            let mut stored = fresh.clone();
            if wanted.spec != fresh.spec || wanted.metadata != fresh.metadata {
                let mut write = wanted.clone();
                write.status = fresh.status.clone();
                match clusters.update(&write).await {
                    Ok(written) => stored = written,
                    Err(e) if e.is_conflict() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if wanted.status != stored.status {
                let mut write = stored.clone();
                write.status = wanted.status.clone();
                match clusters.update_status(&write).await {
                    Ok(written) => stored = written,
                    Err(e) if e.is_conflict() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(stored);
        }
        Err(ServiceError::Conflict {
            cluster: cluster.to_string(),
            attempts,
        })
    }

    /// Saves the aggregate (§2.3 "Save"); engine states of stored entries are kept.
    pub async fn save(&self, model: &SharedStorageCluster) -> Result<MPDCluster, ServiceError> {
        self.save_with(model, EngineStates::Keep).await
    }

    /// Saves the aggregate, choosing how engine states are written.
    pub async fn save_with(
        &self,
        model: &SharedStorageCluster,
        states: EngineStates,
    ) -> Result<MPDCluster, ServiceError> {
        let cluster = super::cluster_ref(model);
        self.modify(&cluster, |cr| {
            mapping::apply_status(model, &mapping::apply_spec(model, cr), states)
        })
        .await
    }

    /// Sets `status.clusterStatus`, and surfaces it for `kubectl` (weakness 30): the
    /// `Ready` condition (true in `Running`, false with the state as reason otherwise) and
    /// `observedGeneration`. No write when nothing changes.
    pub async fn set_cluster_status(
        &self,
        cluster: &ClusterRef,
        state: &str,
    ) -> Result<MPDCluster, ServiceError> {
        self.modify(cluster, |cr| {
            let mut out = cr.clone();
            out.status
                .get_or_insert_with(Default::default)
                .set_state(state, cr.metadata.generation);
            out
        })
        .await
    }

    /// Sets (`Some`) or removes (`None`) annotations in one write.
    pub async fn patch_annotations(
        &self,
        cluster: &ClusterRef,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<MPDCluster, ServiceError> {
        self.modify(cluster, |cr| {
            let mut out = cr.clone();
            let annotations = out.metadata.annotations.get_or_insert_with(BTreeMap::new);
            for (key, value) in changes {
                match value {
                    Some(v) => annotations.insert(key.clone(), v.clone()),
                    None => annotations.remove(key),
                };
            }
            out
        })
        .await
    }
}
