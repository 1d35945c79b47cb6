//! K. Instance classes and minor versions, from ConfigMaps of the system namespace.
//!
//! - **Class**: the one ConfigMap labelled `configtype=instance_level`,
//!   `leveltype=instance_level_resource`, `dbType=<KubePortsConfig::db_type_label>`,
//!   `dbVersion=1.0`, `dbClusterMode=WriteReadMore` and `classKey=<class>`. Its
//!   `cpu_cores` (cores) and `mem_limit` (MiB) give the class's CPU and memory (a missing
//!   key reads as 0), and `class_specified`, JSON `{container: {cpu_cores, limit_memory,
//!   config}}`, the resources per container.
//! - **Version**: ConfigMap `postgresql-1-0-minor-version-info-rwo-<version>` (`_` and `.`
//!   in the version turned into `-`); the latest is named by key `latestVersion` of
//!   `postgresql-1-0-minor-version-info-rwo-root`. Keys `pgEngineImage`,
//!   `pgManagerImage` and `pgClusterManagerImage` become `engineImage`, `managerImage`
//!   and `clusterManagerImage`; `name` is the version's name; any other key is an image
//!   under its own name.
//!
//! The original listed class ConfigMaps in every namespace; this adapter looks only in the
//! system namespace, so that a ConfigMap in a tenant's namespace cannot define or shadow a
//! class. An unknown class or version is [`PortError::NotFound`] naming it; a class defined
//! twice, or a key that does not parse, is [`PortError::Rejected`] naming the ConfigMap.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

use super::api_error::port_error;
use super::controller_map::data;
use super::KubePortsConfig;
use crate::domain::{image_key, ContainerResources};
use crate::ports::sim::port::{CLASSES, VERSIONS};
use crate::ports::{ClassCatalog, ClassDef, PortError, VersionCatalog, VersionDef};

/// The `leveltype` of a class's resources.
pub const RESOURCE_LEVEL: &str = "instance_level_resource";
/// The `leveltype` of a class's parameters.
pub const PARAMS_LEVEL: &str = "instance_level_config";
/// The prefix of the version ConfigMaps.
pub const VERSION_PREFIX: &str = "postgresql-1-0-minor-version-info-rwo-";
/// The version ConfigMap that names the latest version.
pub const LATEST_VERSION_CONFIG_MAP: &str = "postgresql-1-0-minor-version-info-rwo-root";
/// The key of the latest version's name.
pub const LATEST_VERSION_KEY: &str = "latestVersion";

/// The label selector of a class's `level` ConfigMaps.
pub(crate) fn class_selector(config: &KubePortsConfig, level: &str, class: &str) -> String {
    format!(
        "configtype=instance_level,leveltype={level},dbType={},dbVersion=1.0,\
         dbClusterMode=WriteReadMore,classKey={class}",
        config.db_type_label
    )
}

/// The names of `cms`, sorted, for a message.
pub(crate) fn names(cms: &[ConfigMap]) -> String {
    let mut names: Vec<&str> = cms
        .iter()
        .filter_map(|cm| cm.metadata.name.as_deref())
        .collect();
    names.sort_unstable();
    names.join(", ")
}

/// The ConfigMap name of version `name`.
pub fn version_config_map(name: &str) -> String {
    format!("{VERSION_PREFIX}{}", name.replace(['_', '.'], "-"))
}

/// A float as a quantity: `n` or `nm` for cores, `nGi`, `nMi` or `nKi` for MiB.
fn cores(value: f64) -> String {
    let milli = (value * 1000.0).round() as i64;
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

fn mebibytes(value: f64) -> String {
    let kib = (value * 1024.0).round() as i64;
    if kib % (1024 * 1024) == 0 {
        format!("{}Gi", kib / (1024 * 1024))
    } else if kib % 1024 == 0 {
        format!("{}Mi", kib / 1024)
    } else {
        format!("{kib}Ki")
    }
}

/// A scalar of `class_specified` as text (quantities may be written as strings or numbers).
fn quantity(v: Option<&Value>) -> Result<String, String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(format!("{other} is not a quantity")),
    }
}

/// The class defined by `cm`.
fn class_def(name: &str, cm: &ConfigMap) -> Result<ClassDef, String> {
    let number = |key: &str| -> Result<f64, String> {
        match data(cm, key) {
            None => Ok(0.0),
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .ok_or_else(|| format!("key {key}: {v:?} is not a number")),
        }
    };
    let cpu = cores(number("cpu_cores")?);
    let memory = mebibytes(number("mem_limit")?);
    let mut resources = BTreeMap::new();
    if let Some(text) = data(cm, "class_specified") {
        let parsed: BTreeMap<String, serde_json::Map<String, Value>> =
            serde_json::from_str(text)
                .map_err(|e| format!("key class_specified: not a JSON map of containers: {e}"))?;
        for (container, fields) in parsed {
            let field = |f: &str| {
                quantity(fields.get(f))
                    .map_err(|e| format!("key class_specified: {container}.{f}: {e}"))
            };
            resources.insert(
                container.clone(),
                ContainerResources {
                    cpu: field("cpu_cores")?,
                    mem_limit: field("limit_memory")?,
                    config: field("config")?,
                },
            );
        }
    }
    Ok(ClassDef {
        name: name.to_owned(),
        cpu,
        memory,
        resources,
    })
}

/// The version defined by `cm`, asked for as `wanted`.
fn version_def(wanted: &str, cm: &ConfigMap) -> VersionDef {
    let mut name = wanted.to_owned();
    let mut images = BTreeMap::new();
    for (key, value) in cm.data.iter().flatten() {
        let image = match key.as_str() {
            "name" => {
                if !value.trim().is_empty() {
                    name = value.trim().to_owned();
                }
                continue;
            }
            "pgEngineImage" => image_key::ENGINE,
            "pgManagerImage" => image_key::MANAGER,
            "pgClusterManagerImage" => image_key::CLUSTER_MANAGER,
            other => other,
        };
        images.insert(image.to_owned(), value.clone());
    }
    VersionDef { name, images }
}

/// The production [`ClassCatalog`], on class ConfigMaps.
#[derive(Clone)]
pub struct KubeClassCatalog {
    client: Client,
    config: Arc<KubePortsConfig>,
}

impl std::fmt::Debug for KubeClassCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClassCatalog").finish_non_exhaustive()
    }
}

impl KubeClassCatalog {
    /// The catalog on `client`, reading `config.system_namespace` with label
    /// `dbType=<config.db_type_label>`.
    pub fn new(client: Client, config: Arc<KubePortsConfig>) -> Self {
        KubeClassCatalog { client, config }
    }
}

#[async_trait]
impl ClassCatalog for KubeClassCatalog {
    async fn class(&self, name: &str) -> Result<ClassDef, PortError> {
        let not_found = || PortError::NotFound {
            port: CLASSES,
            what: format!("class {name:?}"),
        };
        if name.is_empty() {
            return Err(not_found());
        }
        let ns = &self.config.system_namespace;
        let selector = class_selector(&self.config, RESOURCE_LEVEL, name);
        let list = Api::<ConfigMap>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| {
                port_error(
                    CLASSES,
                    &format!("configmaps in {ns} labelled {selector}"),
                    e,
                )
            })?;
        let cm = match list.items.as_slice() {
            [] => return Err(not_found()),
            [one] => one,
            many => {
                return Err(PortError::Rejected {
                    port: CLASSES,
                    message: format!(
                        "class {name} is defined by more than one ConfigMap: {}",
                        names(many)
                    ),
                })
            }
        };
        class_def(name, cm).map_err(|why| PortError::Rejected {
            port: CLASSES,
            message: format!(
                "class {name}: configmap {ns}/{}: {why}",
                cm.metadata.name.as_deref().unwrap_or_default()
            ),
        })
    }
}

/// The production [`VersionCatalog`], on minor-version ConfigMaps.
#[derive(Clone)]
pub struct KubeVersionCatalog {
    client: Client,
    config: Arc<KubePortsConfig>,
}

impl std::fmt::Debug for KubeVersionCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeVersionCatalog").finish_non_exhaustive()
    }
}

impl KubeVersionCatalog {
    /// The catalog on `client`, reading `config.system_namespace`.
    pub fn new(client: Client, config: Arc<KubePortsConfig>) -> Self {
        KubeVersionCatalog { client, config }
    }

    async fn config_map(&self, name: &str) -> Result<Option<ConfigMap>, PortError> {
        let ns = &self.config.system_namespace;
        Api::<ConfigMap>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| port_error(VERSIONS, &format!("configmap {ns}/{name}"), e))
    }
}

#[async_trait]
impl VersionCatalog for KubeVersionCatalog {
    async fn version(&self, name: &str) -> Result<VersionDef, PortError> {
        let ns = &self.config.system_namespace;
        let wanted = if name.is_empty() {
            let root = self.config_map(LATEST_VERSION_CONFIG_MAP).await?;
            let latest = root
                .as_ref()
                .and_then(|cm| data(cm, LATEST_VERSION_KEY))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| PortError::NotFound {
                    port: VERSIONS,
                    what: format!(
                        "latest version (key {LATEST_VERSION_KEY} of configmap \
                         {ns}/{LATEST_VERSION_CONFIG_MAP})"
                    ),
                })?;
            latest.to_owned()
        } else {
            name.to_owned()
        };
        let cm_name = version_config_map(&wanted);
        let cm = self
            .config_map(&cm_name)
            .await?
            .ok_or_else(|| PortError::NotFound {
                port: VERSIONS,
                what: format!("version {wanted:?} (configmap {ns}/{cm_name})"),
            })?;
        Ok(version_def(&wanted, &cm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::kube::fake_api::{config_map, fake_api, json};

    fn class_cm(name: &str, class: &str, data: &[(&str, &str)]) -> Value {
        let mut cm = config_map("kube-system", name, data);
        cm.metadata.labels = Some(
            [
                ("configtype", "instance_level"),
                ("leveltype", RESOURCE_LEVEL),
                ("dbType", "PostgreSQL"),
                ("dbVersion", "1.0"),
                ("dbClusterMode", "WriteReadMore"),
                ("classKey", class),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        );
        json(&cm)
    }

    const SPECIFIED: &str = r#"{
        "engine": {"cpu_cores": "2", "limit_memory": "8Gi", "config": ""},
        "pfsd": {"cpu_cores": 1, "limit_memory": "1Gi", "config": "-w 2 -s 32"},
        "manager": {"cpu_cores": "500m", "limit_memory": "512Mi"}
    }"#;

    async fn classes(objects: Vec<Value>) -> KubeClassCatalog {
        let (client, _) = fake_api(objects).await;
        KubeClassCatalog::new(client, Arc::default())
    }

    #[test]
    fn quantities_are_written_the_kubernetes_way() {
        assert_eq!(cores(2.0), "2");
        assert_eq!(cores(0.5), "500m");
        assert_eq!(mebibytes(8192.0), "8Gi");
        assert_eq!(mebibytes(512.0), "512Mi");
        assert_eq!(mebibytes(0.5), "512Ki");
        assert_eq!(
            version_config_map("1.1_2"),
            format!("{VERSION_PREFIX}1-1-2")
        );
    }

    #[tokio::test]
    async fn a_class_is_found_by_its_labels_with_its_containers() {
        let catalog = classes(vec![
            class_cm(
                "postgresql-1-0-level-polar-o-x4-medium-resource-rwo",
                "polar.o.x4.medium",
                &[
                    ("cpu_cores", "2"),
                    ("mem_limit", "8192"),
                    ("class_specified", SPECIFIED),
                ],
            ),
            class_cm(
                "large",
                "polar.o.x4.large",
                &[("cpu_cores", "4"), ("mem_limit", "16384")],
            ),
        ])
        .await;
        let c = catalog.class("polar.o.x4.medium").await.unwrap();
        assert_eq!(c.name, "polar.o.x4.medium");
        assert_eq!((c.cpu.as_str(), c.memory.as_str()), ("2", "8Gi"));
        let containers: Vec<_> = c.resources.keys().map(String::as_str).collect();
        assert_eq!(containers, ["engine", "manager", "pfsd"]);
        assert_eq!(
            c.resources["pfsd"],
            ContainerResources {
                cpu: "1".into(),
                mem_limit: "1Gi".into(),
                config: "-w 2 -s 32".into()
            }
        );
        assert_eq!(c.resources["manager"].config, "");
        let large = catalog.class("polar.o.x4.large").await.unwrap();
        assert_eq!((large.cpu.as_str(), large.memory.as_str()), ("4", "16Gi"));
        assert!(large.resources.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_class_is_not_found_naming_it() {
        let mut other_db = class_cm("mysql", "polar.o.x2.tiny", &[("cpu_cores", "1")]);
        other_db["metadata"]["labels"]["dbType"] = "MySQL".into();
        let mut other_ns = class_cm("tenant", "polar.o.x2.tiny", &[("cpu_cores", "1")]);
        other_ns["metadata"]["namespace"] = "tenant".into();
        let catalog = classes(vec![other_db, other_ns]).await;
        let err = catalog.class("polar.o.x2.tiny").await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("polar.o.x2.tiny"), "{err}");
        assert!(catalog.class("").await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn a_malformed_or_twice_defined_class_is_rejected_naming_the_configmap() {
        let catalog = classes(vec![
            class_cm("bad-cpu", "bad", &[("cpu_cores", "two")]),
            class_cm("bad-json", "json", &[("class_specified", "{engine")]),
            class_cm("twice-1", "twice", &[]),
            class_cm("twice-2", "twice", &[]),
        ])
        .await;
        let err = catalog.class("bad").await.unwrap_err().to_string();
        assert!(
            err.contains("bad-cpu") && err.contains("cpu_cores"),
            "{err}"
        );
        let err = catalog.class("json").await.unwrap_err().to_string();
        assert!(
            err.contains("bad-json") && err.contains("class_specified"),
            "{err}"
        );
        let err = catalog.class("twice").await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        assert!(err.to_string().contains("twice-1, twice-2"), "{err}");
    }

    fn version_cm(version: &str, extra: &[(&str, &str)]) -> Value {
        let images = [
            ("name", version.to_owned()),
            ("pgEngineImage", format!("polardb/engine:{version}")),
            ("pgManagerImage", format!("polardb/manager:{version}")),
            ("pgClusterManagerImage", format!("polardb/cm:{version}")),
            ("pfsdImage", format!("polardb/pfsd:{version}")),
            ("pfsdToolImage", format!("polardb/pfsd-tool:{version}")),
        ];
        let mut data: Vec<(&str, &str)> = images.iter().map(|(k, v)| (*k, v.as_str())).collect();
        data.extend_from_slice(extra);
        json(&config_map(
            "kube-system",
            &version_config_map(version),
            &data,
        ))
    }

    async fn versions(objects: Vec<Value>) -> KubeVersionCatalog {
        let (client, _) = fake_api(objects).await;
        KubeVersionCatalog::new(client, Arc::default())
    }

    #[tokio::test]
    async fn a_version_is_found_by_name_with_its_images_renamed() {
        let catalog = versions(vec![version_cm(
            "1.1.1",
            &[("logAgentImage", "polardb/log:1")],
        )])
        .await;
        let v = catalog.version("1.1.1").await.unwrap();
        assert_eq!(v.name, "1.1.1");
        assert_eq!(v.images[image_key::ENGINE], "polardb/engine:1.1.1");
        assert_eq!(v.images[image_key::MANAGER], "polardb/manager:1.1.1");
        assert_eq!(v.images[image_key::CLUSTER_MANAGER], "polardb/cm:1.1.1");
        assert_eq!(v.images[image_key::PFSD], "polardb/pfsd:1.1.1");
        assert_eq!(v.images[image_key::PFSD_TOOL], "polardb/pfsd-tool:1.1.1");
        assert_eq!(v.images["logAgentImage"], "polardb/log:1");
        assert_eq!(v.images.len(), 6);
    }

    #[tokio::test]
    async fn the_latest_version_is_named_by_the_root_configmap() {
        let root = config_map(
            "kube-system",
            LATEST_VERSION_CONFIG_MAP,
            &[(LATEST_VERSION_KEY, "1.1.2")],
        );
        let catalog = versions(vec![
            version_cm("1.1.1", &[]),
            version_cm("1.1.2", &[]),
            json(&root),
        ])
        .await;
        let latest = catalog.version("").await.unwrap();
        assert_eq!(latest.name, "1.1.2");
        assert_eq!(latest, catalog.version("1.1.2").await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_version_or_a_missing_latest_is_not_found_naming_it() {
        let catalog = versions(vec![version_cm("1.1.1", &[])]).await;
        let err = catalog.version("9.9.9").await.unwrap_err();
        assert!(
            err.is_not_found() && err.to_string().contains("9.9.9"),
            "{err}"
        );
        let err = catalog.version("").await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains(LATEST_VERSION_CONFIG_MAP), "{err}");
    }
}
