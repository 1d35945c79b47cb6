//! B. Cluster-scope numeric ids, from the counter `NextClusterScopeCustInsId` of the
//! ConfigMap `polardb4mpd-controller` (default 1000 when the key or the ConfigMap is
//! missing; a missing ConfigMap is created).
//!
//! `n` ids are `v..v+n-1` where `v` is the stored value, and `v+n` is stored. The write
//! carries the read `resourceVersion`, so two allocators (two operator replicas, or two
//! workers) that read the same value cannot both store it: the loser's write is refused
//! with 409 and it allocates again from a fresh read. No id is handed out twice; an id is
//! lost only when a write succeeds but its reply does not arrive.

use std::sync::Arc;

use async_trait::async_trait;
use kube::Client;

use super::controller_map::{data, ControllerMap, Writes};
use super::KubePortsConfig;
use crate::ports::sim::port::IDS;
use crate::ports::{IdAllocator, PortError};

/// The data key of the counter.
pub const NEXT_ID_KEY: &str = "NextClusterScopeCustInsId";
/// The first id of a fresh counter.
pub const FIRST_ID: u64 = 1000;

/// The production [`IdAllocator`], on the ConfigMap `polardb4mpd-controller`.
#[derive(Clone)]
pub struct KubeIdAllocator {
    map: ControllerMap,
}

impl std::fmt::Debug for KubeIdAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeIdAllocator")
            .field("configmap", &self.map.describe())
            .finish()
    }
}

impl KubeIdAllocator {
    /// The allocator on `client`, with the ConfigMap in `config.system_namespace` and lost
    /// races retried as `config.conflict_attempts` / `conflict_backoff` say.
    pub fn new(client: Client, config: Arc<KubePortsConfig>) -> Self {
        KubeIdAllocator {
            map: ControllerMap::new(client, &config),
        }
    }
}

#[async_trait]
impl IdAllocator for KubeIdAllocator {
    async fn next_ids(&self, n: usize) -> Result<Vec<u64>, PortError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let ids = self
            .map
            .update(IDS, |cm| {
                let next = match data(cm, NEXT_ID_KEY) {
                    None => FIRST_ID,
                    Some(value) => {
                        value
                            .trim()
                            .parse::<u64>()
                            .map_err(|e| PortError::Rejected {
                                port: IDS,
                                message: format!(
                                    "{} key {NEXT_ID_KEY}: {value:?} is not a number: {e}",
                                    self.map.describe()
                                ),
                            })?
                    }
                };
                let end = u64::try_from(n)
                    .ok()
                    .and_then(|n| next.checked_add(n))
                    .ok_or_else(|| PortError::Rejected {
                        port: IDS,
                        message: format!("{NEXT_ID_KEY} {next} + {n} overflows"),
                    })?;
                let writes = Writes::from([(NEXT_ID_KEY.to_owned(), end.to_string())]);
                Ok(((next..end).collect::<Vec<u64>>(), writes))
            })
            .await?;
        tracing::debug!(first = ids.first(), n, "allocated ids");
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;

    use super::*;
    use crate::ports::kube::controller_map::CONTROLLER_CONFIG_MAP;
    use crate::ports::kube::fake_api::{config_map, fake_api, json, Calls};

    fn racing_config() -> Arc<KubePortsConfig> {
        Arc::new(KubePortsConfig {
            conflict_attempts: 50,
            conflict_backoff: Duration::from_micros(200),
            ..KubePortsConfig::default()
        })
    }

    async fn stored(client: &Client) -> ConfigMap {
        Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
            .get(CONTROLLER_CONFIG_MAP)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn ids_count_up_from_1000_and_the_configmap_is_created_when_missing() {
        let (client, _) = fake_api(vec![]).await;
        let ids = KubeIdAllocator::new(client.clone(), Arc::default());
        assert_eq!(ids.next_ids(3).await.unwrap(), vec![1000, 1001, 1002]);
        assert_eq!(ids.next_ids(0).await.unwrap(), Vec::<u64>::new());
        assert_eq!(ids.next_ids(1).await.unwrap(), vec![1003]);
        let cm = stored(&client).await;
        assert_eq!(data(&cm, NEXT_ID_KEY), Some("1004"));
    }

    #[tokio::test]
    async fn ids_continue_from_the_stored_value_and_other_keys_survive() {
        let mut cm = config_map(
            "kube-system",
            CONTROLLER_CONFIG_MAP,
            &[(NEXT_ID_KEY, "5000"), ("Pbx.Next.External.Port", "37507")],
        );
        cm.metadata.annotations = Some(
            [(
                "polarbox.mpd.external.port.range".to_owned(),
                "36000-39999".to_owned(),
            )]
            .into(),
        );
        let (client, _) = fake_api(vec![json(&cm)]).await;
        let ids = KubeIdAllocator::new(client.clone(), Arc::default());
        assert_eq!(ids.next_ids(2).await.unwrap(), vec![5000, 5001]);
        let cm = stored(&client).await;
        assert_eq!(data(&cm, NEXT_ID_KEY), Some("5002"));
        assert_eq!(data(&cm, "Pbx.Next.External.Port"), Some("37507"));
        assert!(cm
            .metadata
            .annotations
            .unwrap()
            .contains_key("polarbox.mpd.external.port.range"));
    }

    #[tokio::test]
    async fn a_counter_that_is_not_a_number_is_rejected_naming_the_key_and_kept() {
        let cm = config_map(
            "kube-system",
            CONTROLLER_CONFIG_MAP,
            &[(NEXT_ID_KEY, "12x")],
        );
        let (client, calls) = fake_api(vec![json(&cm)]).await;
        let ids = KubeIdAllocator::new(client.clone(), Arc::default());
        let err = ids.next_ids(1).await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(NEXT_ID_KEY) && message.contains(CONTROLLER_CONFIG_MAP));
        assert_eq!(calls.writes(), 0);
        assert_eq!(data(&stored(&client).await, NEXT_ID_KEY), Some("12x"));
    }

    #[tokio::test]
    async fn an_injected_409_is_retried_from_a_fresh_read() {
        let cm = config_map(
            "kube-system",
            CONTROLLER_CONFIG_MAP,
            &[(NEXT_ID_KEY, "1000")],
        );
        let (client, calls) = fake_api(vec![json(&cm)]).await;
        calls.inject_conflicts(CONTROLLER_CONFIG_MAP, 1, 2);
        let ids = KubeIdAllocator::new(client.clone(), racing_config());
        assert_eq!(ids.next_ids(2).await.unwrap(), vec![1000, 1001]);
        assert_eq!(Calls::count(&calls.injected), 2);
        assert_eq!(Calls::count(&calls.get), 3, "one read per try");
        assert_eq!(data(&stored(&client).await, NEXT_ID_KEY), Some("1002"));
    }

    #[tokio::test]
    async fn conflicts_past_the_configured_tries_are_surfaced() {
        let cm = config_map(
            "kube-system",
            CONTROLLER_CONFIG_MAP,
            &[(NEXT_ID_KEY, "1000")],
        );
        let (client, calls) = fake_api(vec![json(&cm)]).await;
        calls.inject_conflicts(CONTROLLER_CONFIG_MAP, 1, 100);
        let config = KubePortsConfig {
            conflict_attempts: 3,
            conflict_backoff: Duration::from_micros(100),
            ..KubePortsConfig::default()
        };
        let ids = KubeIdAllocator::new(client.clone(), Arc::new(config));
        assert!(ids.next_ids(1).await.unwrap_err().is_conflict());
        assert_eq!(Calls::count(&calls.patch), 3);
        assert_eq!(data(&stored(&client).await, NEXT_ID_KEY), Some("1000"));
    }

    /// Two allocators (two replicas) make 500 allocations each, at once, with 409s
    /// injected on top of the real ones their interleaving causes.
    async fn race(client: Client, calls: Arc<Calls>, first: u64) {
        calls.inject_conflicts(CONTROLLER_CONFIG_MAP, 7, 60);
        let a = KubeIdAllocator::new(client.clone(), racing_config());
        let b = KubeIdAllocator::new(client.clone(), racing_config());
        let run = |ids: KubeIdAllocator| async move {
            let mut got = Vec::new();
            for _ in 0..500 {
                got.extend(ids.next_ids(1).await.unwrap());
            }
            got
        };
        let (got_a, got_b) = tokio::join!(run(a), run(b));
        assert_eq!((got_a.len(), got_b.len()), (500, 500));
        let all: BTreeSet<u64> = got_a.iter().chain(&got_b).copied().collect();
        assert_eq!(all.len(), 1000, "an id was handed out twice");
        assert_eq!(all, (first..first + 1000).collect(), "no id lost either");
        assert_eq!(Calls::count(&calls.injected), 60, "409s were injected");
        let writes = Calls::count(&calls.patch) + Calls::count(&calls.create);
        assert!(
            writes > 1000 + 60,
            "the interleaving caused real conflicts as well ({writes} writes)"
        );
        let next = first + 1000;
        assert_eq!(
            data(&stored(&client).await, NEXT_ID_KEY),
            Some(next.to_string().as_str())
        );
    }

    #[tokio::test]
    async fn two_racing_allocators_never_hand_out_an_id_twice_starting_without_the_configmap() {
        let (client, calls) = fake_api(vec![]).await;
        race(client, calls, FIRST_ID).await;
    }

    #[tokio::test]
    async fn two_racing_allocators_never_hand_out_an_id_twice_starting_from_the_configmap() {
        let cm = config_map(
            "kube-system",
            CONTROLLER_CONFIG_MAP,
            &[(NEXT_ID_KEY, "20000"), ("Pbx.Next.External.Port", "36100")],
        );
        let (client, calls) = fake_api(vec![json(&cm)]).await;
        race(client.clone(), calls, 20000).await;
        assert_eq!(
            data(&stored(&client).await, "Pbx.Next.External.Port"),
            Some("36100")
        );
    }
}
