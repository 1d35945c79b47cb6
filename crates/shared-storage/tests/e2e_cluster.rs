//! The operator on a real Kubernetes cluster: the CRD installed, the operator binary started
//! on a fresh namespace, an MPDCluster created to `Running`, its objects checked, then the
//! MPDCluster deleted and everything removed.
//!
//! Every test is `#[ignore]`d (a plain `cargo test` runs none of them); run them with
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test -p shared-storage --test e2e_cluster -- --ignored --nocapture
//! ```
//!
//! Without `KUBECONFIG` (or when it names no file that exists) each test prints one line
//! saying why it did nothing and passes. What the cluster needs (the storage-management
//! service, the catalogs, the node label, the shared volume) and every setting is in
//! docs/GUIDE.md, "Testing on a real cluster". The settings, from the environment:
//!
//! | variable | default | what |
//! | --- | --- | --- |
//! | `KUBECONFIG` | (required) | the cluster; the operator gets the same |
//! | `MPD_E2E_TIMEOUT` | `10m` | how long the cluster may take to reach `Running`, and to go |
//! | `MPD_E2E_NAMESPACE` | `mpd-e2e-<random>`, created and deleted | an existing namespace to use instead (created if missing; deleted only if the suite created it) |
//! | `MPD_E2E_SYSTEM_NAMESPACE` | `kube-system` | `--system-namespace`: the id/port ConfigMap, the class and version catalogs, the storage service |
//! | `MPD_E2E_SMS_URL` | the Service `polardb-sms-manager` | `--sms-base-url`: the storage-management service |
//! | `MPD_E2E_FOLLOWERS` | `1` | `spec.followerNum` |
//! | `MPD_E2E_CLASS` | `polar.o.x4.medium` | `spec.classInfo.className` |
//! | `MPD_E2E_VERSION` | `1.1.1` | `spec.versionCfg.versionName` |
//! | `MPD_E2E_PVC` | `pvc-c1` | `spec.shareStore.sharePvcName`: the shared volume's PVC in the namespace |
//! | `MPD_E2E_VOLUME_ID` | `wwid-c1` | `spec.shareStore.volumeId` |
//! | `MPD_E2E_VOLUME_TYPE` | `lun` | `spec.shareStore.volumeType` |
//! | `MPD_E2E_PVC_MANIFEST` | none | a YAML file (one or more documents) applied in the namespace before the MPDCluster, e.g. the shared volume's PV and PVC |
//! | `MPD_E2E_OPERATOR_ARGS` | none | more `run` flags, split on whitespace, e.g. `--image-pull-policy Always` |
//! | `RUST_LOG` | `info` | the operator's log filter |
//!
//! The operator runs with `--leader-election=false --watch-namespace <ns>
//! --callbacks=false` and its metrics on a free port of 127.0.0.1; its output goes to
//! `<temp dir>/<ns>-operator.log`, whose end is printed when a test fails. It is killed when
//! the test ends, also on a panic.

mod support;

use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client, CustomResourceExt, Resource, ResourceExt};
use serde::Deserialize;
use serde_json::json;
use shared_storage::cluster::INSTANCE_POD_SELECTOR;
use shared_storage::crd::{MPDCluster, FINALIZER};

const BIN: &str = env!("CARGO_BIN_EXE_shared-storage-operator");
/// The field manager of everything the suite applies.
const MANAGER: &str = "mpd-e2e";
/// The MPDCluster the suite creates.
const NAME: &str = "e2e";
/// How long the CRD, the namespace and the operator's start may take.
const SHORT: Duration = Duration::from_secs(120);
/// Between two looks at the cluster.
const POLL: Duration = Duration::from_secs(2);

// ---- The settings ----

/// What the suite runs against, from the environment.
#[derive(Debug)]
struct Settings {
    timeout: Duration,
    namespace: Option<String>,
    system_namespace: String,
    sms_url: Option<String>,
    followers: i32,
    class: String,
    version: String,
    pvc: String,
    volume_id: String,
    volume_type: String,
    pvc_manifest: Option<PathBuf>,
    operator_args: Vec<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn var_or(name: &str, default: &str) -> String {
    var(name).unwrap_or_else(|| default.to_owned())
}

/// Why the suite does nothing here, when it does nothing.
fn skip_reason() -> Option<String> {
    const HOW: &str = "Set it to a cluster's kubeconfig to run this suite.";
    let Some(kubeconfig) = var("KUBECONFIG") else {
        return Some(format!("KUBECONFIG is not set; nothing ran. {HOW}"));
    };
    let found = std::env::split_paths(&kubeconfig).any(|p| p.is_file());
    (!found)
        .then(|| format!("KUBECONFIG ({kubeconfig}) names no file that exists; nothing ran. {HOW}"))
}

impl Settings {
    /// The settings, or `None` (after one line on stderr saying why) when there is no
    /// cluster to run against.
    fn from_env() -> Option<Settings> {
        if let Some(reason) = skip_reason() {
            // Straight to the process's stderr: the test harness captures `eprintln!` of a
            // passing test, and this line is the whole point of the skip.
            let _ = writeln!(std::io::stderr(), "e2e_cluster: {reason}");
            return None;
        }
        let timeout = var("MPD_E2E_TIMEOUT").map_or(Duration::from_secs(600), |t| {
            humantime::parse_duration(&t)
                .unwrap_or_else(|e| panic!("MPD_E2E_TIMEOUT={t:?}: {e} (write e.g. 10m)"))
        });
        let followers = var("MPD_E2E_FOLLOWERS").map_or(1, |n| {
            n.parse()
                .unwrap_or_else(|e| panic!("MPD_E2E_FOLLOWERS={n:?}: {e}"))
        });
        Some(Settings {
            timeout,
            namespace: var("MPD_E2E_NAMESPACE"),
            system_namespace: var_or("MPD_E2E_SYSTEM_NAMESPACE", "kube-system"),
            sms_url: var("MPD_E2E_SMS_URL"),
            followers,
            class: var_or("MPD_E2E_CLASS", "polar.o.x4.medium"),
            version: var_or("MPD_E2E_VERSION", "1.1.1"),
            pvc: var_or("MPD_E2E_PVC", "pvc-c1"),
            volume_id: var_or("MPD_E2E_VOLUME_ID", "wwid-c1"),
            volume_type: var_or("MPD_E2E_VOLUME_TYPE", "lun"),
            pvc_manifest: var("MPD_E2E_PVC_MANIFEST").map(PathBuf::from),
            operator_args: var("MPD_E2E_OPERATOR_ARGS")
                .map(|a| a.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    }

    /// The MPDCluster to create in `namespace`: the sample of the other suites with the
    /// settings' class, version, volume and follower count.
    fn cluster(&self, namespace: &str) -> MPDCluster {
        let mut cr = support::cluster(self.followers);
        cr.metadata.name = Some(NAME.to_owned());
        cr.metadata.namespace = Some(namespace.to_owned());
        cr.spec.class_info.class_name = self.class.clone();
        cr.spec.version_cfg.version_name = self.version.clone();
        let store = cr.spec.share_store.get_or_insert_with(Default::default);
        store.share_pvc_name = self.pvc.clone();
        store.volume_id = self.volume_id.clone();
        store.volume_type = self.volume_type.clone();
        cr
    }
}

// ---- Waiting ----

/// Calls `probe` every [`POLL`] until it answers `Some`, for at most `limit`; panics
/// naming `what` and the last `describe`d state after that.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let last = match probe().await {
            Ok(found) => return found,
            Err(last) => last,
        };
        if started.elapsed() >= limit {
            panic!("{what}: not after {limit:?}; last: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---- The CRD ----

/// Applies the CRD the crate generates (server-side) and waits until it is Established.
/// It is left installed: other MPDClusters may use it.
async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = MPDCluster::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("apply the CRD {name}: {e}"));
    wait_for("the CRD Established", SHORT, || async {
        let crd = crds.get(&name).await.map_err(|e| e.to_string())?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            Ok(())
        } else {
            Err(format!("conditions {conditions:?}"))
        }
    })
    .await;
}

// ---- The namespace ----

/// The test namespace; `created` when the suite made it (and so deletes it).
struct TestNamespace {
    name: String,
    created: bool,
}

async fn test_namespace(client: &Client, settings: &Settings) -> TestNamespace {
    let name = settings
        .namespace
        .clone()
        .unwrap_or_else(|| format!("mpd-e2e-{:08x}", fastrand::u32(..)));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces
        .get_opt(&name)
        .await
        .unwrap_or_else(|e| panic!("read namespace {name}: {e}"))
        .is_some()
    {
        return TestNamespace {
            name,
            created: false,
        };
    }
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.clone());
    namespace.metadata.labels = Some(
        [(
            "app.kubernetes.io/created-by".to_owned(),
            MANAGER.to_owned(),
        )]
        .into(),
    );
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    TestNamespace {
        name,
        created: true,
    }
}

/// Applies every document of `path` in `namespace` (server-side), e.g. the shared volume's
/// PV and PVC.
async fn apply_manifest(client: &Client, namespace: &str, path: &Path) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("MPD_E2E_PVC_MANIFEST {}: {e}", path.display()));
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if value.is_null() {
            continue;
        }
        let mut object: DynamicObject = serde_yaml::from_value(value)
            .unwrap_or_else(|e| panic!("{}: not a Kubernetes object: {e}", path.display()));
        let types = object
            .types
            .clone()
            .unwrap_or_else(|| panic!("{}: an object without apiVersion/kind", path.display()));
        let gvk = GroupVersionKind::try_from(&types)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("{}: the kind {gvk:?}: {e}", path.display()));
        let api: Api<DynamicObject> = match capabilities.scope {
            kube::discovery::Scope::Namespaced => {
                object.metadata.namespace = Some(namespace.to_owned());
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            kube::discovery::Scope::Cluster => {
                object.metadata.namespace = None;
                Api::all_with(client.clone(), &resource)
            }
        };
        let name = object.name_any();
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", resource.kind));
    }
}

// ---- The operator ----

/// The operator binary as a child process; killed (and reaped) when dropped, also when
/// the test panics.
struct OperatorProcess {
    child: Child,
    log: PathBuf,
    health: String,
}

impl OperatorProcess {
    fn start(settings: &Settings, namespace: &str) -> OperatorProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for the metrics")
            .port();
        let log = std::env::temp_dir().join(format!("{namespace}-operator.log"));
        let out =
            std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("the log file twice");
        let mut command = Command::new(BIN);
        command
            .arg("run")
            .arg("--leader-election=false")
            .args(["--watch-namespace", namespace])
            .args(["--system-namespace", &settings.system_namespace])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .arg("--callbacks=false")
            .args(["--startup-timeout", "30s"]);
        if let Some(url) = &settings.sms_url {
            command.args(["--sms-base-url", url]);
        }
        command
            .args(&settings.operator_args)
            .env("RUST_LOG", var_or("RUST_LOG", "info"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {BIN}: {e}"));
        eprintln!(
            "e2e_cluster: the operator (pid {}) logs to {}",
            child.id(),
            log.display()
        );
        OperatorProcess {
            child,
            log,
            health: format!("http://127.0.0.1:{port}/readyz"),
        }
    }

    /// Panics with the end of the log when the operator has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the operator exited ({status}); the end of its log:\n{}",
                self.log_tail()
            );
        }
    }

    /// Waits until the operator answers `/readyz`.
    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            self.assert_running();
            match http.get(&self.health).send().await {
                Ok(answer) if answer.status().is_success() => return,
                _ if started.elapsed() >= SHORT => panic!(
                    "the operator is not ready after {SHORT:?}; the end of its log:\n{}",
                    self.log_tail()
                ),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// The last 8 KiB of the operator's output.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let len = file.metadata().map_or(0, |m| m.len());
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(8192)));
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- The checks ----

fn label<'a>(pod: &'a Pod, key: &str) -> &'a str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map_or("", String::as_str)
}

fn owned_by_the_cluster<K: Resource>(object: &K, uid: &str) -> bool {
    object
        .meta()
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.kind == "MPDCluster" && r.uid == uid))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The instance pods of the cluster that are not being deleted.
async fn pods(client: &Client, namespace: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!(
            "{INSTANCE_POD_SELECTOR},apsara.metric.clusterName={NAME}"
        )))
        .await
        .expect("list the instance pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// What `Running` means on a cluster: the status, the pods, the cluster manager, the
/// accounts and the mementos, as on_kubernetes checks them on the fake cluster.
async fn check_running(client: &Client, namespace: &str, settings: &Settings) {
    let clusters: Api<MPDCluster> = Api::namespaced(client.clone(), namespace);
    let cr = clusters.get(NAME).await.expect("the MPDCluster");
    let uid = cr.metadata.uid.clone().unwrap_or_default();
    assert!(
        cr.finalizers().iter().any(|f| f == FINALIZER),
        "the finalizer is set: {:?}",
        cr.finalizers()
    );
    let status = cr.status.clone().unwrap_or_default();
    assert_eq!(status.cluster_status, "Running");
    let instances: Vec<_> = status.db_instance_status.values().collect();
    let rws: Vec<_> = instances.iter().filter(|i| i.ins_type == "rw").collect();
    assert_eq!(rws.len(), 1, "one RW: {instances:?}");
    let ros = instances.iter().filter(|i| i.ins_type == "ro").count();
    assert_eq!(ros, settings.followers as usize, "followerNum ROs");
    assert_eq!(
        status.leader_instance_id, rws[0].ins_id,
        "the leader is the RW"
    );

    // One Ready pod per instance, on its node, labelled and owned.
    let pods = pods(client, namespace).await;
    assert_eq!(pods.len(), instances.len(), "one pod per instance");
    for ins in &instances {
        assert!(ins.installed, "{} is installed", ins.ins_id);
        let pod = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(ins.pod_name.as_str()))
            .unwrap_or_else(|| panic!("the pod {} of {}", ins.pod_name, ins.ins_id));
        assert!(is_ready(pod), "{} is Ready", ins.pod_name);
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        assert_eq!(
            node.as_deref(),
            Some(ins.node_name.as_str()),
            "{}",
            ins.pod_name
        );
        assert_eq!(label(pod, "apsara.metric.clusterName"), NAME);
        assert_eq!(label(pod, "apsara.metric.ins_id"), ins.ins_id);
        let role = if ins.ins_type == "rw" {
            "polardb_mpd_rw"
        } else {
            "polardb_mpd_ro"
        };
        assert_eq!(
            label(pod, "apsara.metric.db_ins_type"),
            role,
            "{}",
            ins.pod_name
        );
        assert!(owned_by_the_cluster(pod, &uid), "{} is owned", ins.pod_name);
        let spec = pod.spec.as_ref().expect("a pod spec");
        let mut containers: Vec<_> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        containers.sort_unstable();
        assert_eq!(containers, ["engine", "manager", "pfsd", "pfsd-tool"]);
    }
    let mut nodes: Vec<_> = instances.iter().map(|i| i.node_name.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(nodes.len(), instances.len(), "one instance per node");

    // The cluster manager: its Deployment and ConfigMaps, owned by the cluster.
    let deployment = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get_opt(&format!("{NAME}.cm"))
        .await
        .expect("read the CM Deployment")
        .expect("the CM Deployment");
    assert!(owned_by_the_cluster(&deployment, &uid));
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), namespace);
    for name in [format!("{NAME}.cm"), format!("{NAME}-cmflag")] {
        let cm = config_maps
            .get_opt(&name)
            .await
            .expect("read a ConfigMap")
            .unwrap_or_else(|| panic!("the ConfigMap {name}"));
        assert!(owned_by_the_cluster(&cm, &uid), "{name} is owned");
    }
    // The runs are kept in the cluster's workflow ConfigMap.
    let mementos = config_maps
        .get_opt(&format!("{NAME}-workflow"))
        .await
        .expect("read the workflow ConfigMap")
        .expect("the workflow ConfigMap");
    assert!(
        !mementos.data.unwrap_or_default().is_empty(),
        "the runs are kept"
    );

    // The accounts and the CM's configuration: Secrets owned by the cluster.
    let secrets: Vec<Secret> = Api::<Secret>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list the Secrets")
        .items
        .into_iter()
        .filter(|s| owned_by_the_cluster(s, &uid))
        .collect();
    assert!(
        secrets.len() >= 2,
        "the accounts and the CM's configuration: {:?}",
        secrets
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    );
}

// ---- Clean-up ----

/// Deletes the MPDCluster and waits (at most `limit`) for it to go; `strip` then removes
/// its finalizer so a failed run leaves no namespace stuck behind it.
async fn delete_cluster(client: &Client, namespace: &str, limit: Duration, strip: bool) -> bool {
    let clusters: Api<MPDCluster> = Api::namespaced(client.clone(), namespace);
    let _ = clusters.delete(NAME, &DeleteParams::default()).await;
    let started = Instant::now();
    while started.elapsed() < limit {
        match clusters.get_opt(NAME).await {
            Ok(None) => return true,
            Ok(Some(_)) | Err(_) => tokio::time::sleep(POLL).await,
        }
    }
    if strip {
        eprintln!(
            "e2e_cluster: {namespace}/{NAME} did not go within {limit:?}; removing its finalizer \
             (its shared volume may still be held)"
        );
        let _ = clusters
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await;
    }
    false
}

/// Removes the namespace (when the suite created it) and the CM's cluster-wide binding.
async fn remove_namespace(client: &Client, namespace: &TestNamespace) {
    let binding = format!("{}-cluster-manager-rolebinding", namespace.name);
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete(&binding, &DeleteParams::default())
        .await;
    if namespace.created {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&namespace.name, &DeleteParams::default())
            .await;
    }
}

// ---- The tests ----

/// The body of the lifecycle test, from the operator's start to the cluster gone.
async fn create_check_delete(
    client: &Client,
    namespace: &str,
    settings: &Settings,
    operator: &mut OperatorProcess,
) {
    operator.wait_ready().await;
    if let Some(manifest) = &settings.pvc_manifest {
        apply_manifest(client, namespace, manifest).await;
    }
    let clusters: Api<MPDCluster> = Api::namespaced(client.clone(), namespace);
    clusters
        .create(&PostParams::default(), &settings.cluster(namespace))
        .await
        .expect("create the MPDCluster");

    let started = Instant::now();
    loop {
        operator.assert_running();
        let cr = clusters.get(NAME).await.expect("read the MPDCluster");
        let status = cr.status.unwrap_or_default();
        let state = status.cluster_status.clone();
        if state == "Running" {
            break;
        }
        assert_ne!(
            state,
            "Interrupt",
            "the create flow interrupted; the status: {status:?}; the end of the operator's log:\n{}",
            operator.log_tail()
        );
        assert!(
            started.elapsed() < settings.timeout,
            "not Running after {:?} (MPD_E2E_TIMEOUT); state {state:?}; the end of the operator's log:\n{}",
            settings.timeout,
            operator.log_tail()
        );
        tokio::time::sleep(POLL).await;
    }
    eprintln!(
        "e2e_cluster: {namespace}/{NAME} Running after {:?}",
        started.elapsed()
    );
    check_running(client, namespace, settings).await;

    operator.assert_running();
    assert!(
        delete_cluster(client, namespace, settings.timeout, false).await,
        "the MPDCluster is gone within {:?}; the end of the operator's log:\n{}",
        settings.timeout,
        operator.log_tail()
    );
    wait_for("the instance pods collected", settings.timeout, || async {
        let left = pods(client, namespace).await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} pods left", left.len()))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kubernetes cluster (KUBECONFIG); see docs/GUIDE.md, Testing on a real cluster"]
async fn an_mpdcluster_is_created_to_running_with_its_objects_and_deleted_on_a_real_cluster() {
    let Some(settings) = Settings::from_env() else {
        return;
    };
    let client = Client::try_default()
        .await
        .expect("a client from KUBECONFIG");
    install_crd(&client).await;
    let namespace = test_namespace(&client, &settings).await;
    eprintln!("e2e_cluster: namespace {}", namespace.name);
    let mut operator = OperatorProcess::start(&settings, &namespace.name);

    let outcome = AssertUnwindSafe(create_check_delete(
        &client,
        &namespace.name,
        &settings,
        &mut operator,
    ))
    .catch_unwind()
    .await;

    if outcome.is_err() {
        // The operator still runs: let it release what it holds, then make sure nothing
        // keeps the namespace.
        delete_cluster(&client, &namespace.name, SHORT, true).await;
    }
    drop(operator);
    remove_namespace(&client, &namespace).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
