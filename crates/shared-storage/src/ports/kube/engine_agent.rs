//! G. The engine agent in each instance pod's `manager` container, through the Kubernetes
//! exec API ([`PodExec`]).
//!
//! Every action runs the same command line, [`AGENT_ARGV`]; its environment (the per-pod
//! keys, the topology with the account passwords, the action's keys) goes on the exec's
//! stdin ([`agent_env`](super::agent_env)). So no password or parameter value is ever in an
//! argv, a process listing or a log line. The environment is not read from a mounted
//! Secret: a Secret or ConfigMap reaches a running container only on the kubelet's next
//! sync (a minute or more), so an action right after a change would read stale
//! credentials, while stdin travels on the exec's own authenticated stream and is never
//! stored. The per-pod ConfigMap (named after the pod) is still written before `install`
//! and `grow`, as the record of what the agent got, without the topology.
//!
//! | the exec | the port answers |
//! |---|---|
//! | exit 0 | done |
//! | the container is not ready (`container not found`, `pod does not exist`, `starting container process caused`), a timeout, a lost connection | `Unavailable` (the engine retries the step) |
//! | the pod does not exist | `NotFound` |
//! | any other non-zero exit | `Rejected`, with the action, the exit code and the end of stderr |

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use super::agent_env::{encode, env, pod_keys, ports_json, topology, TOPOLOGY_KEY};
use super::api_error::{is_already_exists, port_error};
use super::exec::{ExecError, ExecOutput, PodExec};
use super::owner::cluster_owner;
use super::KubePortsConfig;
use crate::domain::mapping::load;
use crate::domain::{DbIns, LoadMode, SharedStorageCluster};
use crate::ports::sim::port::ENGINE;
use crate::ports::{
    Account, AccountStore, ClusterRef, ClusterStore, EngineAgent, EngineTarget, Health, ParamStore,
    PortError,
};

/// The command line of every agent action: the environment comes on stdin.
pub const AGENT_ARGV: [&str; 3] = [
    "bash",
    "-c",
    "set -a && . /dev/stdin && set +a && exec python /docker_script/entry_point.py",
];

/// The container the agent runs in.
pub const AGENT_CONTAINER: &str = "manager";

/// What an exec error or output says when the container is not (yet) there.
pub const NOT_READY_MARKERS: [&str; 3] = [
    "starting container process caused",
    "container not found",
    "pod does not exist",
];

/// The most characters of stderr an error message keeps.
const STDERR_TAIL: usize = 300;

fn not_ready(text: &str) -> bool {
    NOT_READY_MARKERS.iter().any(|m| text.contains(m))
}

fn tail(text: &str) -> String {
    let text = text.trim();
    let start = text
        .char_indices()
        .rev()
        .nth(STDERR_TAIL.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    text[start..].to_owned()
}

/// The production [`EngineAgent`].
#[derive(Clone)]
pub struct ExecEngineAgent {
    client: Client,
    config: Arc<KubePortsConfig>,
    exec: Arc<dyn PodExec>,
    clusters: Arc<dyn ClusterStore>,
    accounts: Arc<dyn AccountStore>,
    params: Arc<dyn ParamStore>,
}

impl std::fmt::Debug for ExecEngineAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecEngineAgent").finish_non_exhaustive()
    }
}

/// The cluster an instance pod belongs to: `<cluster>-<physId>-<insId>`.
fn cluster_of(target: &EngineTarget) -> Result<ClusterRef, PortError> {
    let mut parts = target.pod_name.rsplitn(3, '-');
    let (_, _, cluster) = (parts.next(), parts.next(), parts.next());
    match cluster {
        Some(name) if !name.is_empty() => Ok(ClusterRef::new(&target.namespace, name)),
        _ => Err(PortError::Rejected {
            port: ENGINE,
            message: format!(
                "pod {} is not named <cluster>-<physId>-<insId>",
                target.pod_name
            ),
        }),
    }
}

impl ExecEngineAgent {
    /// The agent over `exec`, reading the cluster, its accounts and parameters through the
    /// other ports.
    pub fn new(
        client: Client,
        config: Arc<KubePortsConfig>,
        exec: Arc<dyn PodExec>,
        clusters: Arc<dyn ClusterStore>,
        accounts: Arc<dyn AccountStore>,
        params: Arc<dyn ParamStore>,
    ) -> Self {
        ExecEngineAgent {
            client,
            config,
            exec,
            clusters,
            accounts,
            params,
        }
    }

    /// The cluster model and the target instance.
    async fn model(
        &self,
        target: &EngineTarget,
    ) -> Result<(ClusterRef, SharedStorageCluster, DbIns), PortError> {
        let cluster = cluster_of(target)?;
        let cr = self.clusters.get(&cluster.namespace, &cluster.name).await?;
        let model = load(&cr, LoadMode::default()).map_err(|e| PortError::Rejected {
            port: ENGINE,
            message: format!("mpdcluster {cluster}: {e}"),
        })?;
        let ins = model
            .all_instances()
            .find(|i| i.ins_id == target.ins_id)
            .cloned()
            .ok_or_else(|| PortError::NotFound {
                port: ENGINE,
                what: format!("instance {} of mpdcluster {cluster}", target.ins_id),
            })?;
        Ok((cluster, model, ins))
    }

    /// The parameters the engine runs with: the template's defaults under the running set.
    async fn mycnf(&self, cluster: &ClusterRef) -> Result<BTreeMap<String, String>, PortError> {
        let mut out: BTreeMap<String, String> = self
            .params
            .template()
            .await?
            .entries
            .into_iter()
            .map(|(name, e)| (name, e.default_value))
            .collect();
        if let Some(running) = self.params.running_params(cluster).await? {
            out.extend(running.params.into_iter().map(|(name, p)| (name, p.value)));
        }
        Ok(out)
    }

    /// The per-pod keys and the topology; the per-pod ConfigMap rewritten in full.
    async fn pod_env(&self, target: &EngineTarget) -> Result<BTreeMap<String, String>, PortError> {
        let (cluster, model, ins) = self.model(target).await?;
        let accounts = self.accounts.accounts(&cluster).await?;
        let mycnf = self.mycnf(&cluster).await?;
        let keys = pod_keys(&model, &ins, &mycnf);
        self.write_record(&cluster, &target.pod_name, &keys).await?;
        let mut env = keys;
        env.insert(TOPOLOGY_KEY.into(), topology(&model, &accounts));
        env.insert("srv_opr_host_ip".into(), ports_json(&ins));
        Ok(env)
    }

    async fn write_record(
        &self,
        cluster: &ClusterRef,
        name: &str,
        keys: &BTreeMap<String, String>,
    ) -> Result<(), PortError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &cluster.namespace);
        let what = format!("configmap {}/{name}", cluster.namespace);
        match api
            .get_opt(name)
            .await
            .map_err(|e| port_error(ENGINE, &what, e))?
        {
            Some(mut cm) => {
                if cm.data.as_ref() != Some(keys) {
                    cm.data = Some(keys.clone());
                    api.replace(name, &PostParams::default(), &cm)
                        .await
                        .map_err(|e| port_error(ENGINE, &what, e))?;
                }
            }
            None => {
                let owner = cluster_owner(&self.client, ENGINE, cluster).await?;
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(cluster.namespace.clone()),
                        owner_references: Some(vec![owner]),
                        ..ObjectMeta::default()
                    },
                    data: Some(keys.clone()),
                    ..ConfigMap::default()
                };
                match api.create(&PostParams::default(), &cm).await {
                    Ok(_) => {}
                    Err(e) if is_already_exists(&e) => {}
                    Err(e) => return Err(port_error(ENGINE, &what, e)),
                }
            }
        }
        Ok(())
    }

    /// Runs `argv` in the agent's container with `stdin`; the raw result.
    async fn exec(
        &self,
        target: &EngineTarget,
        argv: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, ExecError> {
        let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
        self.exec
            .exec(
                &target.namespace,
                &target.pod_name,
                AGENT_CONTAINER,
                &argv,
                stdin,
            )
            .await
    }

    /// Runs the agent action `kind/action` with `env` and interprets the result.
    async fn action(
        &self,
        target: &EngineTarget,
        kind: &str,
        action: &str,
        mut env: BTreeMap<String, String>,
    ) -> Result<ExecOutput, PortError> {
        env.insert("srv_opr_type".into(), kind.into());
        env.insert("srv_opr_action".into(), action.into());
        let result = self.exec(target, &AGENT_ARGV, Some(encode(&env))).await;
        let name = format!("{kind}/{action}");
        tracing::debug!(pod = %target.pod_name, action = %name, ok = ?result.as_ref().map(|o| o.exit_code), "engine agent action");
        outcome(&name, target, result)
    }
}

/// What an exec's result means for the port (see the module table).
fn outcome(
    action: &str,
    target: &EngineTarget,
    result: Result<ExecOutput, ExecError>,
) -> Result<ExecOutput, PortError> {
    match result {
        Err(ExecError::PodNotFound { namespace, pod }) => Err(PortError::NotFound {
            port: ENGINE,
            what: format!("pod {namespace}/{pod}"),
        }),
        Err(e) => Err(PortError::Unavailable {
            port: ENGINE,
            message: format!("{action}: {e}"),
        }),
        Ok(out) if out.success() => Ok(out),
        Ok(out) if not_ready(&out.stderr) || not_ready(&out.stdout) => {
            Err(PortError::Unavailable {
                port: ENGINE,
                message: format!(
                    "{action} in pod {}: the container is not ready: {}",
                    target.pod_name,
                    tail(&out.stderr)
                ),
            })
        }
        Ok(out) => Err(PortError::Rejected {
            port: ENGINE,
            message: format!(
                "{action} in pod {} exited with {}: {}",
                target.pod_name,
                out.exit_code,
                tail(&out.stderr)
            ),
        }),
    }
}

#[async_trait]
impl EngineAgent for ExecEngineAgent {
    async fn install(&self, target: &EngineTarget) -> Result<(), PortError> {
        let mut env = self.pod_env(target).await?;
        env.insert(
            "create_tablespace_env".into(),
            r#"{"tablespace_name":"polar_tmp","tablespace_path":"/log/pg_tmp"}"#.into(),
        );
        if !target.is_rw {
            env.insert("lock_install_ins".into(), "True".into());
        }
        self.action(target, "hostins_ops", "setup_install_instance", env)
            .await
            .map(drop)
    }

    async fn setup_log_agent(&self, target: &EngineTarget) -> Result<(), PortError> {
        let (_, _, ins) = self.model(target).await?;
        let what = format!("pod {}/{}", target.namespace, target.pod_name);
        let pod = Api::<Pod>::namespaced(self.client.clone(), &target.namespace)
            .get(&target.pod_name)
            .await
            .map_err(|e| port_error(ENGINE, &what, e))?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let container_id = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.iter().find(|c| c.name == "engine"))
            .and_then(|c| c.container_id.clone())
            .unwrap_or_default();
        let container_id = container_id
            .split_once("://")
            .map_or(container_id.as_str(), |(_, id)| id)
            .to_owned();
        let env = env([
            ("base_collect_path", "/sys/fs/cgroup/".to_owned()),
            ("ins_name", ins.ins_name.clone()),
            (
                "pod_collect_path",
                format!("/kubepods/burstable/pod{uid}/{container_id}"),
            ),
            ("access_port", ins.port.to_string()),
            ("phy_ins_id", ins.physical_ins_id.clone()),
        ]);
        self.action(target, "hostins_ops", "setup_logagent_config", env)
            .await
            .map(drop)
    }

    async fn start(&self, target: &EngineTarget) -> Result<(), PortError> {
        self.action(target, "hostins_ops", "start_instance", BTreeMap::new())
            .await
            .map(drop)
    }

    async fn graceful_stop(&self, target: &EngineTarget) -> Result<(), PortError> {
        let limit = self.config.graceful_stop_timeout;
        match tokio::time::timeout(
            limit,
            self.action(target, "hostins_ops", "stop_instance", BTreeMap::new()),
        )
        .await
        {
            Ok(result) => result.map(drop),
            Err(_) => Err(PortError::Unavailable {
                port: ENGINE,
                message: format!(
                    "hostins_ops/stop_instance in pod {}: no result within {limit:?}",
                    target.pod_name
                ),
            }),
        }
    }

    async fn force_stop(&self, target: &EngineTarget) -> Result<(), PortError> {
        let result = self.exec(target, &["bash", "-c", "kill 1"], None).await;
        outcome("force stop", target, result).map(drop)
    }

    async fn restart(&self, target: &EngineTarget) -> Result<(), PortError> {
        if let Err(err) = self.graceful_stop(target).await {
            tracing::info!(pod = %target.pod_name, %err, "graceful stop failed; stopping at once");
            self.force_stop(target).await?;
        }
        self.start(target).await
    }

    async fn create_accounts(
        &self,
        target: &EngineTarget,
        accounts: &[Account],
    ) -> Result<(), PortError> {
        let (_, _, ins) = self.model(target).await?;
        for account in accounts {
            let env = env([
                ("srv_opr_host_ip", ports_json(&ins)),
                ("srv_opr_user_name", account.name.clone()),
                ("srv_opr_password", account.password.clone()),
                ("srv_opr_privilege", account.privilege.to_string()),
            ]);
            self.action(target, "account", "create", env).await?;
        }
        Ok(())
    }

    async fn update_params(
        &self,
        target: &EngineTarget,
        params: &BTreeMap<String, String>,
    ) -> Result<(), PortError> {
        let (cluster, model, ins) = self.model(target).await?;
        let accounts = self.accounts.accounts(&cluster).await?;
        let env = env([
            ("srv_opr_host_ip", ports_json(&ins)),
            (TOPOLOGY_KEY, topology(&model, &accounts)),
            ("cust_ins_id", ins.physical_ins_id.clone()),
            ("ins_id", ins.ins_id.clone()),
            (
                "params",
                serde_json::to_string(params).unwrap_or_else(|_| "{}".into()),
            ),
        ]);
        self.action(target, "update_conf", "update", env)
            .await
            .map(drop)
    }

    async fn grow_storage(&self, target: &EngineTarget) -> Result<(), PortError> {
        let env = self.pod_env(target).await?;
        self.action(target, "hostins_ops", "grow_pfs", env)
            .await
            .map(drop)
    }

    async fn health(&self, target: &EngineTarget) -> Result<Health, PortError> {
        let (_, _, ins) = self.model(target).await?;
        let mut env = BTreeMap::from([("srv_opr_host_ip".to_owned(), ports_json(&ins))]);
        env.insert("srv_opr_type".into(), "health_check".into());
        env.insert("srv_opr_action".into(), "hostins_check".into());
        let result = self.exec(target, &AGENT_ARGV, Some(encode(&env))).await;
        Ok(match result {
            Err(ExecError::PodNotFound { .. }) => Health::ContainerNotFound,
            Err(e) if not_ready(&e.to_string()) => Health::ContainerNotFound,
            Err(_) => Health::Unknown,
            Ok(out) if out.success() => {
                if out.stderr.contains("the database system is starting up") {
                    Health::StartingUp
                } else {
                    Health::Ok
                }
            }
            Ok(_) => Health::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The agent's execs as they reach the API server: through [`KubePodExec`] and a real
    //! websocket upgrade to the exec emulator, which records each request's argv (its
    //! `command` parameters) and what came on stdin.

    use std::time::Duration;

    use super::super::exec_emulator::{bridged, emulator};
    use super::super::fake_api::{fake_api, json};
    use super::*;
    use crate::ports::{
        MockAccountStore, MockClusterStore, MockParamStore, ParamSet, ParamTemplate, ParamValue,
        TemplateEntry,
    };
    use crate::steps::testing::running_cluster;

    const PASSWORD: &str = "pw-Zq8!x'y";
    const PARAM_VALUE: &str = "value-of-shared_buffers-7781";
    const TEMPLATE_DEFAULT: &str = "default-of-work_mem-4410";
    const RUNNING_VALUE: &str = "running-max_connections-9902";

    async fn agent(exec: Arc<dyn PodExec>) -> ExecEngineAgent {
        let mut cr = running_cluster();
        cr.metadata.uid = Some("uid-c1".into());
        let (client, _) = fake_api(vec![json(&cr)]).await;
        let mut clusters = MockClusterStore::new();
        clusters.expect_get().returning(move |_, _| Ok(cr.clone()));
        let mut accounts = MockAccountStore::new();
        accounts.expect_accounts().returning(|_| {
            Ok(vec![Account {
                name: "aurora".into(),
                password: PASSWORD.into(),
                privilege: 7,
            }])
        });
        let mut params = MockParamStore::new();
        params.expect_template().returning(|| {
            Ok(ParamTemplate {
                entries: BTreeMap::from([(
                    "work_mem".to_owned(),
                    TemplateEntry {
                        default_value: TEMPLATE_DEFAULT.into(),
                        ..TemplateEntry::default()
                    },
                )]),
            })
        });
        params.expect_running_params().returning(|_| {
            Ok(Some(ParamSet {
                params: BTreeMap::from([(
                    "max_connections".to_owned(),
                    ParamValue {
                        name: "max_connections".into(),
                        value: RUNNING_VALUE.into(),
                        ..ParamValue::default()
                    },
                )]),
                latest_flush_time: None,
            }))
        });
        ExecEngineAgent::new(
            client,
            Arc::new(KubePortsConfig::default()),
            exec,
            Arc::new(clusters),
            Arc::new(accounts),
            Arc::new(params),
        )
    }

    fn rw() -> EngineTarget {
        EngineTarget {
            namespace: "ns".into(),
            pod_name: "c1-1001-1002".into(),
            ins_id: "1002".into(),
            is_rw: true,
        }
    }

    #[tokio::test]
    async fn no_password_or_parameter_value_is_in_an_exec_requests_argv_only_on_its_stdin() {
        let emulator = emulator().await;
        let exec = Arc::new(bridged(&emulator, Duration::from_secs(10)));
        let agent = agent(exec).await;
        let target = rw();
        agent.install(&target).await.unwrap();
        agent
            .create_accounts(
                &target,
                &[Account {
                    name: "replicator".into(),
                    password: PASSWORD.into(),
                    privilege: 15,
                }],
            )
            .await
            .unwrap();
        agent
            .update_params(
                &target,
                &BTreeMap::from([("shared_buffers".to_owned(), PARAM_VALUE.to_owned())]),
            )
            .await
            .unwrap();
        agent.grow_storage(&target).await.unwrap();
        agent.restart(&target).await.unwrap();

        let argvs = emulator.seen.lock().unwrap().clone();
        let stdins: Vec<String> = emulator
            .stdins
            .lock()
            .unwrap()
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        // install, create (1 account), update, grow, stop, start: six agent actions.
        assert_eq!(argvs.len(), 6, "{argvs:?}");
        for argv in &argvs {
            assert_eq!(
                argv,
                &AGENT_ARGV.map(str::to_owned),
                "every action runs one argv"
            );
            let line = argv.join(" ");
            for secret in [PASSWORD, PARAM_VALUE, TEMPLATE_DEFAULT, RUNNING_VALUE] {
                assert!(!line.contains(secret), "{secret} in argv {line}");
            }
        }
        // The values did travel, on stdin: the test would see them if they leaked.
        let all = stdins.join("\n");
        assert_eq!(stdins.len(), 6);
        assert!(
            all.contains("pw-Zq8!x'\\''y"),
            "the password, shell-quoted, on stdin"
        );
        for value in [PARAM_VALUE, TEMPLATE_DEFAULT, RUNNING_VALUE] {
            assert!(all.contains(value), "{value} on stdin");
        }
    }

    #[tokio::test]
    async fn the_per_pod_record_holds_the_keys_but_never_the_topology_with_its_passwords() {
        let emulator = emulator().await;
        let exec = Arc::new(bridged(&emulator, Duration::from_secs(10)));
        let agent = agent(exec).await;
        agent.install(&rw()).await.unwrap();
        let record = Api::<ConfigMap>::namespaced(agent.client.clone(), "ns")
            .get("c1-1001-1002")
            .await
            .unwrap();
        let data = record.data.unwrap_or_default();
        assert!(!data.contains_key(TOPOLOGY_KEY));
        assert!(data.values().all(|v| !v.contains(PASSWORD)));
        assert_eq!(
            record.metadata.owner_references.unwrap()[0].uid,
            "uid-c1",
            "owned by the MPDCluster"
        );
    }
}
