//! K. Instance classes and minor versions.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{port, Simulation};
use crate::domain::{image_key, ContainerResources};
use crate::ports::{ClassCatalog, ClassDef, PortError, VersionCatalog, VersionDef};

/// 2 CPU, 8Gi.
pub(super) const CLASS_MEDIUM: &str = "polar.o.x4.medium";
/// 4 CPU, 16Gi.
pub(super) const CLASS_LARGE: &str = "polar.o.x4.large";
/// 8 CPU, 64Gi.
pub(super) const CLASS_XLARGE: &str = "polar.o.x8.xlarge";
/// The older version.
const VERSION_OLD: &str = "1.1.1";
/// The version an empty version name resolves to.
pub const LATEST_VERSION: &str = "1.1.2";

/// The simulated [`ClassCatalog`].
pub(super) struct SimClassCatalog(pub(super) Simulation);

/// The simulated [`VersionCatalog`].
pub(super) struct SimVersionCatalog(pub(super) Simulation);

fn resources(cpu: &str, mem_limit: &str, config: &str) -> ContainerResources {
    ContainerResources {
        cpu: cpu.to_string(),
        mem_limit: mem_limit.to_string(),
        config: config.to_string(),
    }
}

/// The three classes, with `engine`, `manager`, `pfsd` (with a pfsd config) and
/// `pfsd-tool` resources.
pub(super) fn default_classes() -> BTreeMap<String, ClassDef> {
    [
        (CLASS_MEDIUM, "2", "8Gi", "1", "1Gi", 2),
        (CLASS_LARGE, "4", "16Gi", "1", "2Gi", 4),
        (CLASS_XLARGE, "8", "64Gi", "2", "4Gi", 8),
    ]
    .into_iter()
    .map(|(name, cpu, memory, pfsd_cpu, pfsd_mem, workers)| {
        let pfsd_config = format!("-w {workers} -s 32 -i 2048 -b 64");
        let class = ClassDef {
            name: name.to_string(),
            cpu: cpu.to_string(),
            memory: memory.to_string(),
            resources: BTreeMap::from([
                ("engine".to_string(), resources(cpu, memory, "")),
                ("manager".to_string(), resources("500m", "512Mi", "")),
                (
                    "pfsd".to_string(),
                    resources(pfsd_cpu, pfsd_mem, &pfsd_config),
                ),
                ("pfsd-tool".to_string(), resources("200m", "256Mi", "")),
            ]),
        };
        (name.to_string(), class)
    })
    .collect()
}

/// Versions `1.1.1` and `1.1.2` with the five images, tagged with the version.
pub(super) fn default_versions() -> BTreeMap<String, VersionDef> {
    [VERSION_OLD, LATEST_VERSION]
        .into_iter()
        .map(|version| {
            let images = [
                (image_key::ENGINE, "polardb/polardb-pg-engine"),
                (image_key::MANAGER, "polardb/polardb-pg-manager"),
                (
                    image_key::CLUSTER_MANAGER,
                    "polardb/polardb-cluster-manager",
                ),
                (image_key::PFSD, "polardb/pfsd"),
                (image_key::PFSD_TOOL, "polardb/pfsd-tool"),
            ]
            .into_iter()
            .map(|(key, repo)| (key.to_string(), format!("{repo}:{version}")))
            .collect();
            let def = VersionDef {
                name: version.to_string(),
                images,
            };
            (version.to_string(), def)
        })
        .collect()
}

#[async_trait]
impl ClassCatalog for SimClassCatalog {
    async fn class(&self, name: &str) -> Result<ClassDef, PortError> {
        self.0
            .call(port::CLASSES, "class", name.to_string(), |w| {
                w.classes
                    .get(name)
                    .cloned()
                    .ok_or_else(|| PortError::NotFound {
                        port: port::CLASSES,
                        what: format!("class {name}"),
                    })
            })
            .await
    }
}

#[async_trait]
impl VersionCatalog for SimVersionCatalog {
    async fn version(&self, name: &str) -> Result<VersionDef, PortError> {
        self.0
            .call(port::VERSIONS, "version", name.to_string(), |w| {
                let wanted = if name.is_empty() {
                    w.latest_version.as_str()
                } else {
                    name
                };
                w.versions
                    .get(wanted)
                    .cloned()
                    .ok_or_else(|| PortError::NotFound {
                        port: port::VERSIONS,
                        what: format!("version {wanted}"),
                    })
            })
            .await
    }
}

impl Simulation {
    /// Adds or replaces a class.
    pub fn add_class(&self, class: ClassDef) {
        self.lock().classes.insert(class.name.clone(), class);
    }

    /// Adds or replaces a version; `latest` makes it what an empty name resolves to.
    pub fn add_version(&self, version: VersionDef, latest: bool) {
        let mut world = self.lock();
        if latest {
            world.latest_version = version.name.clone();
        }
        world.versions.insert(version.name.clone(), version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::testing::sim;

    #[tokio::test]
    async fn the_three_classes_have_every_container() {
        let sim = sim(1);
        let classes = sim.ports().classes;
        for (name, cpu, memory) in [
            (CLASS_MEDIUM, "2", "8Gi"),
            (CLASS_LARGE, "4", "16Gi"),
            (CLASS_XLARGE, "8", "64Gi"),
        ] {
            let c = classes.class(name).await.unwrap();
            assert_eq!((c.cpu.as_str(), c.memory.as_str()), (cpu, memory));
            let containers: Vec<_> = c.resources.keys().map(String::as_str).collect();
            assert_eq!(containers, ["engine", "manager", "pfsd", "pfsd-tool"]);
            assert!(!c.resources["pfsd"].config.is_empty());
        }
    }

    #[tokio::test]
    async fn unknown_class_or_version_is_not_found() {
        let sim = sim(1);
        let p = sim.ports();
        assert!(p
            .classes
            .class("polar.o.x2.tiny")
            .await
            .unwrap_err()
            .is_not_found());
        assert!(p
            .versions
            .version("9.9.9")
            .await
            .unwrap_err()
            .is_not_found());
    }

    #[tokio::test]
    async fn empty_version_name_is_the_latest() {
        let sim = sim(1);
        let versions = sim.ports().versions;
        let latest = versions.version("").await.unwrap();
        assert_eq!(latest.name, LATEST_VERSION);
        assert_eq!(latest, versions.version("1.1.2").await.unwrap());
        let old = versions.version("1.1.1").await.unwrap();
        assert_eq!(old.images.len(), 5);
        assert_eq!(
            old.images[image_key::ENGINE],
            "polardb/polardb-pg-engine:1.1.1"
        );
        for key in [
            image_key::ENGINE,
            image_key::MANAGER,
            image_key::CLUSTER_MANAGER,
            image_key::PFSD,
            image_key::PFSD_TOOL,
        ] {
            assert_ne!(old.images[key], latest.images[key]);
        }
    }

    #[tokio::test]
    async fn added_versions_and_classes_are_found() {
        let sim = sim(1);
        sim.add_version(
            VersionDef {
                name: "1.2.0".into(),
                images: BTreeMap::new(),
            },
            true,
        );
        sim.add_class(ClassDef {
            name: "tiny".into(),
            ..Default::default()
        });
        let p = sim.ports();
        assert_eq!(p.versions.version("").await.unwrap().name, "1.2.0");
        assert!(p.classes.class("tiny").await.is_ok());
    }
}
