//! Per-call retries of transient port failures ([`PortError::Unavailable`]), as the
//! original's HTTP clients did (3 tries). A decorator over every port, so the service and
//! the steps stay free of retry loops; anything else (conflicts, rejections, not found)
//! is returned at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::crd::MPDCluster;
use crate::domain::InsType;

/// How transient failures are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRetry {
    /// Tries per call, the first included (at least 1).
    pub attempts: u32,
    /// Pause between tries.
    pub delay: Duration,
}

impl Default for CallRetry {
    fn default() -> Self {
        CallRetry {
            attempts: 3,
            delay: Duration::from_millis(200),
        }
    }
}

/// A port whose transient failures are retried.
pub struct Retrying<T: ?Sized> {
    inner: Arc<T>,
    policy: CallRetry,
}

async fn retry_call<T, F, Fut>(policy: CallRetry, call: F) -> Result<T, PortError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, PortError>>,
{
    let mut tries = 1;
    loop {
        match call().await {
            Err(PortError::Unavailable { port, message }) if tries < policy.attempts.max(1) => {
                tracing::debug!(port, %message, tries, "transient port failure; retrying");
                tries += 1;
                if !policy.delay.is_zero() {
                    tokio::time::sleep(policy.delay).await;
                }
            }
            other => return other,
        }
    }
}

macro_rules! retrying {
    ($trait:ident { $(fn $method:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty;)* }) => {
        #[async_trait]
        impl $trait for Retrying<dyn $trait> {
            $(
                async fn $method(&self $(, $arg: $ty)*) -> Result<$ret, PortError> {
                    retry_call(self.policy, || self.inner.$method($($arg),*)).await
                }
            )*
        }
    };
}

retrying!(ClusterStore {
    fn get(&self, namespace: &str, name: &str) -> MPDCluster;
    fn list(&self) -> Vec<MPDCluster>;
    fn update(&self, cluster: &MPDCluster) -> MPDCluster;
    fn update_status(&self, cluster: &MPDCluster) -> MPDCluster;
});
retrying!(IdAllocator {
    fn next_ids(&self, n: usize) -> Vec<u64>;
});
retrying!(PortAllocator {
    fn allocate_port(&self, purpose: PortPurpose) -> i32;
    fn check_engine_port(&self, port: i32) -> PortCheck;
});
retrying!(StorageManager {
    fn use_storage(&self, request: &StorageRequest) -> Progress;
    fn set_write_lock(&self, pvc: &PvcRef, node: &str) -> Progress;
    fn release(&self, pvc: &PvcRef, owner: &str) -> Progress;
});
retrying!(ClusterManager {
    fn ensure_deployed(&self, spec: &CmSpec) -> Progress;
    fn remove(&self, cluster: &ClusterRef) -> Progress;
    fn upgrade(&self, cluster: &ClusterRef, image: &str) -> ();
    fn ensure_affinity(&self, cluster: &ClusterRef, rw_node: &str) -> Progress;
    fn set_ha(&self, cluster: &ClusterRef, enabled: bool) -> ();
    fn add_ins(&self, cluster: &ClusterRef, ins: &CmInstance) -> ();
    fn remove_ins(&self, cluster: &ClusterRef, ins: &CmInstance) -> ();
    fn switchover(&self, cluster: &ClusterRef, from: &str, to: &str) -> ();
    fn status(&self, cluster: &ClusterRef) -> CmStatus;
});
retrying!(PodManager {
    fn ensure_pod(&self, spec: &InsPodSpec) -> PodProgress;
    fn delete_pod(&self, namespace: &str, pod_name: &str) -> Progress;
    fn label_ins_type(&self, namespace: &str, pod_name: &str, ins_type: InsType) -> ();
});
retrying!(EngineAgent {
    fn install(&self, target: &EngineTarget) -> ();
    fn setup_log_agent(&self, target: &EngineTarget) -> ();
    fn start(&self, target: &EngineTarget) -> ();
    fn graceful_stop(&self, target: &EngineTarget) -> ();
    fn force_stop(&self, target: &EngineTarget) -> ();
    fn restart(&self, target: &EngineTarget) -> ();
    fn create_accounts(&self, target: &EngineTarget, accounts: &[Account]) -> ();
    fn update_params(&self, target: &EngineTarget, params: &BTreeMap<String, String>) -> ();
    fn grow_storage(&self, target: &EngineTarget) -> ();
    fn health(&self, target: &EngineTarget) -> Health;
});
retrying!(PfsdTool {
    fn start_pfsd(&self, target: &EngineTarget, config: &str, volume_id: &str) -> Progress;
});
retrying!(AccountStore {
    fn ensure_account(&self, cluster: &ClusterRef, logic_id: &str, name: &str, privilege: u32) -> Account;
    fn accounts(&self, cluster: &ClusterRef) -> Vec<Account>;
});
retrying!(ParamStore {
    fn user_params(&self, cluster: &ClusterRef) -> Option<ParamSet>;
    fn running_params(&self, cluster: &ClusterRef) -> Option<ParamSet>;
    fn save_user_params(&self, cluster: &ClusterRef, params: &ParamSet) -> ();
    fn save_running_params(&self, cluster: &ClusterRef, params: &ParamSet) -> ();
    fn template(&self) -> ParamTemplate;
    fn class_params(&self, class_name: &str) -> BTreeMap<String, String>;
});
retrying!(ClassCatalog {
    fn class(&self, name: &str) -> ClassDef;
});
retrying!(VersionCatalog {
    fn version(&self, name: &str) -> VersionDef;
});
retrying!(NodeInventory {
    fn nodes(&self) -> Vec<NodeInfo>;
});

fn wrap<T: ?Sized>(inner: Arc<T>, policy: CallRetry) -> Arc<Retrying<T>> {
    Arc::new(Retrying { inner, policy })
}

impl Ports {
    /// The same ports with transient failures retried per call.
    pub fn with_call_retries(self, policy: CallRetry) -> Ports {
        Ports {
            clusters: wrap(self.clusters, policy),
            ids: wrap(self.ids, policy),
            ports: wrap(self.ports, policy),
            storage: wrap(self.storage, policy),
            cluster_manager: wrap(self.cluster_manager, policy),
            pods: wrap(self.pods, policy),
            engine: wrap(self.engine, policy),
            pfsd: wrap(self.pfsd, policy),
            accounts: wrap(self.accounts, policy),
            params: wrap(self.params, policy),
            classes: wrap(self.classes, policy),
            versions: wrap(self.versions, policy),
            nodes: wrap(self.nodes, policy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn transient_failures_are_retried_and_others_returned_at_once() {
        let mut ids = MockIdAllocator::new();
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        ids.expect_next_ids().returning(move |n| {
            if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(PortError::Unavailable {
                    port: "ids",
                    message: "busy".into(),
                })
            } else {
                Ok(vec![7; n])
            }
        });
        let policy = CallRetry {
            attempts: 3,
            delay: Duration::ZERO,
        };
        let retrying = wrap(Arc::new(ids) as Arc<dyn IdAllocator>, policy);
        assert_eq!(retrying.next_ids(2).await, Ok(vec![7, 7]));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let mut rejecting = MockIdAllocator::new();
        rejecting.expect_next_ids().times(1).returning(|_| {
            Err(PortError::Rejected {
                port: "ids",
                message: "no".into(),
            })
        });
        let retrying = wrap(Arc::new(rejecting) as Arc<dyn IdAllocator>, policy);
        assert!(retrying.next_ids(1).await.is_err());
    }
}
