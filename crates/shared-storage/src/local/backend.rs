//! The local backend: the state directory, the cluster files and the persistent simulation.

use std::path::PathBuf;
use std::sync::Arc;

use super::{FileClusterStore, LocalError, StateDir};
use crate::ports::sim::{SimConfig, Simulation};
use crate::ports::Ports;

/// Everything the operator needs in local mode, under one locked state directory.
#[derive(Debug)]
pub struct LocalBackend {
    /// The state directory, locked for the life of the backend.
    pub state: StateDir,
    /// The MPDCluster objects, under [`StateDir::clusters_dir`].
    pub clusters: Arc<FileClusterStore>,
    /// The other systems, simulated and saved in [`StateDir::sim_file`].
    pub sim: Simulation,
}

impl LocalBackend {
    /// Locks the state directory `root` (creating it), then opens the cluster files and the
    /// persistent simulation (`sim` replaces its saved configuration, see
    /// [`Simulation::persistent`]).
    pub fn open(root: impl Into<PathBuf>, sim: SimConfig) -> Result<LocalBackend, LocalError> {
        let state = StateDir::open(root)?;
        let clusters = Arc::new(FileClusterStore::new(state.clusters_dir()));
        let sim = Simulation::persistent(sim, state.sim_file())?;
        Ok(LocalBackend {
            state,
            clusters,
            sim,
        })
    }

    /// The simulation's ports, with `clusters` replaced by the file store.
    pub fn ports(&self) -> Ports {
        Ports {
            clusters: self.clusters.clone(),
            ..self.sim.ports()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MPDCluster, MPDClusterSpec};
    use crate::local::ApplyOutcome;
    use crate::ports::PortPurpose;

    #[tokio::test]
    async fn the_backend_locks_and_resumes_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        {
            let backend = LocalBackend::open(&root, SimConfig::default()).unwrap();
            assert!(matches!(
                LocalBackend::open(&root, SimConfig::default()).unwrap_err(),
                LocalError::Locked { .. }
            ));
            let mut doc = MPDCluster::new("c1", MPDClusterSpec::default());
            doc.metadata.namespace = Some("default".into());
            assert_eq!(backend.clusters.apply(&doc).unwrap(), ApplyOutcome::Created);
            let ports = backend.ports();
            let c = ports.clusters.get("default", "c1").await.unwrap();
            assert_eq!(c.metadata.generation, Some(1));
            assert_eq!(ports.ids.next_ids(2).await.unwrap(), vec![1000, 1001]);
            ports
                .ports
                .allocate_port(PortPurpose::ClusterManager)
                .await
                .unwrap();
            assert!(backend.sim.cluster("default", "c1").is_none());
        }
        let backend = LocalBackend::open(&root, SimConfig::default()).unwrap();
        let ports = backend.ports();
        assert_eq!(ports.ids.next_ids(1).await.unwrap(), vec![1002]);
        assert!(ports.clusters.get("default", "c1").await.is_ok());
        assert!(root.join("clusters/default/c1.json").is_file());
        assert!(root.join("sim.json").is_file());
    }
}
