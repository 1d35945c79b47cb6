//! C. Host ports, from the ConfigMap `polardb4mpd-controller` (shared with the ids).
//!
//! - The CM's ports (HTTP and consensus) come from the range in annotation
//!   `polarbox.mpd.external.port.range` ([`KubePortsConfig::external_port_range`] when the
//!   annotation or the ConfigMap is missing), minus `polarbox.mpd.reserved.port.ranges`.
//!   The scan starts after the stored `Pbx.Next.External.Port`, skips reserved ports and
//!   ports used on any node, wraps from the end of the range to just after its start (the
//!   start itself is never handed out, as in the original), and stores what it hands out.
//!   The write carries the read `resourceVersion`; a lost race allocates again.
//! - The engine port must lie in `polarbox.novip.engine.port.range`
//!   ([`KubePortsConfig::engine_port_range`] by default), outside the reserved ranges, and
//!   be used on no node.
//!
//! Ports used on a node are the data keys of ConfigMap `cloud-provider-port-usage-<node>`
//! in the system namespace (keys that are not ports in 1-65535 are skipped). A node without
//! that ConfigMap is logged and counts as using none: the original asked the node over SSH,
//! which this operator does not do.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::ListParams;
use kube::{Api, Client};

use super::api_error::port_error;
use super::controller_map::{annotation, data, ControllerMap, Writes};
use super::port_range::PortRanges;
use super::KubePortsConfig;
use crate::ports::sim::port::PORTS;
use crate::ports::{PortAllocator, PortCheck, PortError, PortPurpose};

/// The data key of the next CM port.
pub const NEXT_PORT_KEY: &str = "Pbx.Next.External.Port";
/// The annotation with the CM port range.
pub const EXTERNAL_RANGE_ANNOTATION: &str = "polarbox.mpd.external.port.range";
/// The annotation with the engine port range.
pub const ENGINE_RANGE_ANNOTATION: &str = "polarbox.novip.engine.port.range";
/// The annotation with the reserved ranges (a comma list).
pub const RESERVED_RANGES_ANNOTATION: &str = "polarbox.mpd.reserved.port.ranges";
/// The prefix of the per-node port usage ConfigMaps.
pub const PORT_USAGE_PREFIX: &str = "cloud-provider-port-usage-";

/// The production [`PortAllocator`].
#[derive(Clone)]
pub struct KubePortAllocator {
    client: Client,
    config: Arc<KubePortsConfig>,
    map: ControllerMap,
}

impl std::fmt::Debug for KubePortAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePortAllocator")
            .field("configmap", &self.map.describe())
            .finish()
    }
}

impl KubePortAllocator {
    /// The allocator on `client`, with its ConfigMaps in `config.system_namespace`, the
    /// default ranges of `config` and lost races retried as `config` says.
    pub fn new(client: Client, config: Arc<KubePortsConfig>) -> Self {
        KubePortAllocator {
            map: ControllerMap::new(client.clone(), &config),
            client,
            config,
        }
    }

    /// The ranges of `cm` for `range_annotation`, or the configured `default`.
    fn ranges(
        &self,
        cm: &ConfigMap,
        range_annotation: &str,
        default: &str,
    ) -> Result<PortRanges, PortError> {
        let range = annotation(cm, range_annotation).unwrap_or(default);
        let reserved = annotation(cm, RESERVED_RANGES_ANNOTATION).unwrap_or_default();
        PortRanges::parse(range, reserved).map_err(|e| PortError::Rejected {
            port: PORTS,
            message: format!(
                "{} annotations {range_annotation}/{RESERVED_RANGES_ANNOTATION}: {e}",
                self.map.describe()
            ),
        })
    }

    /// Every port used on some node.
    async fn used_ports(&self) -> Result<BTreeSet<i32>, PortError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let names: Vec<String> = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| port_error(PORTS, "nodes", e))?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        let usage: Api<ConfigMap> =
            Api::namespaced(self.client.clone(), &self.config.system_namespace);
        let maps = futures::future::try_join_all(names.iter().map(|node| {
            let usage = usage.clone();
            async move {
                let name = format!("{PORT_USAGE_PREFIX}{node}");
                usage.get_opt(&name).await.map_err(|e| {
                    port_error(
                        PORTS,
                        &format!("configmap {}/{name}", self.config.system_namespace),
                        e,
                    )
                })
            }
        }))
        .await?;
        let mut used = BTreeSet::new();
        for (node, cm) in names.iter().zip(maps) {
            match cm {
                Some(cm) => used.extend(
                    cm.data
                        .unwrap_or_default()
                        .keys()
                        .filter_map(|k| k.trim().parse::<i32>().ok())
                        .filter(|p| (1..=65535).contains(p)),
                ),
                None => tracing::warn!(
                    node,
                    "no {PORT_USAGE_PREFIX}{node} ConfigMap: the node's used ports are unknown"
                ),
            }
        }
        Ok(used)
    }
}

#[async_trait]
impl PortAllocator for KubePortAllocator {
    async fn allocate_port(&self, purpose: PortPurpose) -> Result<i32, PortError> {
        let used = self.used_ports().await?;
        let port = self
            .map
            .update(PORTS, |cm| {
                let ranges = self.ranges(
                    cm,
                    EXTERNAL_RANGE_ANNOTATION,
                    &self.config.external_port_range,
                )?;
                let stored = match data(cm, NEXT_PORT_KEY) {
                    None => None,
                    Some(v) => Some(v.trim().parse::<i32>().map_err(|_| PortError::Rejected {
                        port: PORTS,
                        message: format!(
                            "{} key {NEXT_PORT_KEY}: {v:?} is not a port",
                            self.map.describe()
                        ),
                    })?),
                };
                let port = ranges
                    .next_free(stored, |p| used.contains(&p))
                    .ok_or_else(|| PortError::Unavailable {
                        port: PORTS,
                        message: format!(
                            "no free port left in {} (annotation {EXTERNAL_RANGE_ANNOTATION})",
                            annotation(cm, EXTERNAL_RANGE_ANNOTATION)
                                .unwrap_or(&self.config.external_port_range)
                        ),
                    })?;
                Ok((
                    port,
                    Writes::from([(NEXT_PORT_KEY.to_owned(), port.to_string())]),
                ))
            })
            .await?;
        tracing::debug!(port, ?purpose, "allocated a host port");
        Ok(port)
    }

    async fn check_engine_port(&self, port: i32) -> Result<PortCheck, PortError> {
        let cm = self.map.read(PORTS).await?.unwrap_or_default();
        let ranges = self.ranges(&cm, ENGINE_RANGE_ANNOTATION, &self.config.engine_port_range)?;
        if !ranges.allows(port) {
            return Ok(PortCheck::OutOfRange);
        }
        Ok(if self.used_ports().await?.contains(&port) {
            PortCheck::InUse
        } else {
            PortCheck::Free
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::ports::kube::controller_map::CONTROLLER_CONFIG_MAP;
    use crate::ports::kube::fake_api::{config_map, fake_api, json, node, Calls};

    fn controller(next: Option<&str>, annotations: &[(&str, &str)]) -> serde_json::Value {
        let data: Vec<(&str, &str)> = next.map(|n| (NEXT_PORT_KEY, n)).into_iter().collect();
        let mut cm = config_map("kube-system", CONTROLLER_CONFIG_MAP, &data);
        cm.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        json(&cm)
    }

    fn usage(node: &str, ports: &[&str]) -> serde_json::Value {
        let data: Vec<(&str, &str)> = ports.iter().map(|p| (*p, "")).collect();
        json(&config_map(
            "kube-system",
            &format!("{PORT_USAGE_PREFIX}{node}"),
            &data,
        ))
    }

    fn nodes() -> Vec<serde_json::Value> {
        vec![
            json(&node("node-1", "10.0.0.1", &[])),
            json(&node("node-2", "10.0.0.2", &[])),
        ]
    }

    async fn allocator(objects: Vec<serde_json::Value>) -> (KubePortAllocator, Client, Arc<Calls>) {
        let (client, calls) = fake_api(objects).await;
        let config = KubePortsConfig {
            conflict_attempts: 50,
            conflict_backoff: Duration::from_micros(200),
            ..KubePortsConfig::default()
        };
        let ports = KubePortAllocator::new(client.clone(), Arc::new(config));
        (ports, client, calls)
    }

    async fn stored_next(client: &Client) -> Option<String> {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
            .get(CONTROLLER_CONFIG_MAP)
            .await
            .unwrap();
        data(&cm, NEXT_PORT_KEY).map(str::to_owned)
    }

    #[tokio::test]
    async fn ports_skip_reserved_ports_and_ports_used_on_any_node() {
        let mut objects = nodes();
        objects.push(controller(
            Some("100"),
            &[
                (EXTERNAL_RANGE_ANNOTATION, "100-120"),
                (RESERVED_RANGES_ANNOTATION, "101-102"),
            ],
        ));
        objects.push(usage("node-1", &["103", "not-a-port", "70000"]));
        objects.push(usage("node-2", &["104"]));
        let (ports, client, _) = allocator(objects).await;
        let got = ports
            .allocate_port(PortPurpose::ClusterManager)
            .await
            .unwrap();
        assert_eq!(
            got, 105,
            "101-102 reserved, 103 used on node-1, 104 on node-2"
        );
        assert_eq!(stored_next(&client).await.as_deref(), Some("105"));
        let got = ports.allocate_port(PortPurpose::Consensus).await.unwrap();
        assert_eq!(got, 106);
    }

    #[tokio::test]
    async fn ports_wrap_within_the_range_and_never_hand_out_its_start() {
        let mut objects = nodes();
        objects.push(controller(
            Some("119"),
            &[(EXTERNAL_RANGE_ANNOTATION, "100-120")],
        ));
        objects.push(usage("node-1", &["101"]));
        let (ports, _, _) = allocator(objects).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(ports.allocate_port(PortPurpose::Consensus).await.unwrap());
        }
        assert_eq!(
            got,
            [120, 102, 103],
            "120 is the end; 100 the start; 101 used"
        );
    }

    #[tokio::test]
    async fn a_full_range_is_unavailable_and_stores_nothing() {
        let mut objects = nodes();
        objects.push(controller(
            Some("100"),
            &[(EXTERNAL_RANGE_ANNOTATION, "100-102")],
        ));
        objects.push(usage("node-2", &["101", "102"]));
        let (ports, client, _) = allocator(objects).await;
        let err = ports
            .allocate_port(PortPurpose::Consensus)
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
        assert!(err.to_string().contains("100-102"), "{err}");
        assert_eq!(stored_next(&client).await.as_deref(), Some("100"));
    }

    #[tokio::test]
    async fn without_the_configmap_the_default_range_is_used_and_the_configmap_created() {
        let (ports, client, _) = allocator(nodes()).await;
        let got = ports
            .allocate_port(PortPurpose::ClusterManager)
            .await
            .unwrap();
        assert_eq!(
            got, 36001,
            "just after the start of the default 36000-39999"
        );
        assert_eq!(stored_next(&client).await.as_deref(), Some("36001"));
    }

    #[tokio::test]
    async fn a_malformed_range_annotation_is_rejected_naming_it() {
        let mut objects = nodes();
        objects.push(controller(None, &[(EXTERNAL_RANGE_ANNOTATION, "36000-x")]));
        let (ports, _, calls) = allocator(objects).await;
        let err = ports
            .allocate_port(PortPurpose::Consensus)
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }), "{err}");
        assert!(err.to_string().contains(EXTERNAL_RANGE_ANNOTATION), "{err}");
        assert_eq!(calls.writes(), 0);
    }

    #[tokio::test]
    async fn the_engine_port_check_answers_out_of_range_in_use_or_free() {
        let mut objects = nodes();
        objects.push(controller(
            None,
            &[
                (ENGINE_RANGE_ANNOTATION, "5400-5800"),
                (RESERVED_RANGES_ANNOTATION, "5500-5510"),
            ],
        ));
        objects.push(usage("node-2", &["5433"]));
        let (ports, _, calls) = allocator(objects).await;
        assert_eq!(
            ports.check_engine_port(5432).await.unwrap(),
            PortCheck::Free
        );
        assert_eq!(
            ports.check_engine_port(5433).await.unwrap(),
            PortCheck::InUse
        );
        for out in [5399, 5801, 5505, 30000] {
            assert_eq!(
                ports.check_engine_port(out).await.unwrap(),
                PortCheck::OutOfRange,
                "{out}"
            );
        }
        assert_eq!(calls.writes(), 0, "a check writes nothing");
    }

    #[tokio::test]
    async fn the_engine_port_check_uses_the_default_range_without_the_configmap() {
        let (ports, _, calls) = allocator(nodes()).await;
        assert_eq!(
            ports.check_engine_port(5432).await.unwrap(),
            PortCheck::Free
        );
        assert_eq!(
            ports.check_engine_port(80).await.unwrap(),
            PortCheck::OutOfRange
        );
        assert_eq!(calls.writes(), 0, "the ConfigMap is not created by a check");
    }

    #[tokio::test]
    async fn two_racing_allocators_never_hand_out_a_port_twice() {
        let mut objects = nodes();
        objects.push(controller(
            None,
            &[(EXTERNAL_RANGE_ANNOTATION, "36000-36999")],
        ));
        objects.push(usage("node-1", &["36005", "36006"]));
        let (a, client, calls) = allocator(objects).await;
        calls.inject_conflicts(CONTROLLER_CONFIG_MAP, 5, 10);
        let b = KubePortAllocator::new(client.clone(), a.config.clone());
        let run = |ports: KubePortAllocator| async move {
            let mut got = Vec::new();
            for _ in 0..40 {
                got.push(ports.allocate_port(PortPurpose::Consensus).await.unwrap());
            }
            got
        };
        let (got_a, got_b) = tokio::join!(run(a), run(b));
        let all: BTreeSet<i32> = got_a.iter().chain(&got_b).copied().collect();
        assert_eq!(all.len(), 80, "a port was handed out twice");
        assert!(!all.contains(&36000) && !all.contains(&36005) && !all.contains(&36006));
        assert_eq!(Calls::count(&calls.injected), 10);
        assert_eq!(
            all.last().copied(),
            Some(36082),
            "80 ports after the start, 2 skipped"
        );
    }
}
