//! J. Engine parameters: the user and running parameter sets, the template, class values.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use async_trait::async_trait;

use super::catalog::{CLASS_LARGE, CLASS_MEDIUM, CLASS_XLARGE};
use super::{port, Simulation};
use crate::ports::{ClusterRef, ParamSet, ParamStore, ParamTemplate, PortError, TemplateEntry};

/// The parameter ConfigMaps of one cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimParams {
    /// `<cluster>-user-params`, once saved.
    pub user: Option<ParamSet>,
    /// `<cluster>-running-params`, once saved.
    pub running: Option<ParamSet>,
}

/// The simulated [`ParamStore`].
pub(super) struct SimParamStore(pub(super) Simulation);

/// The template: a handful of realistic PostgreSQL parameters.
///
/// | name | default | user-changeable | dynamic |
/// |---|---|---|---|
/// | `max_connections` | `800` | yes | no |
/// | `shared_buffers` | `2GB` | yes | no |
/// | `work_mem` | `4MB` | yes | yes |
/// | `max_prepared_transactions` | `800` | yes | no |
/// | `statement_timeout` | `0` | yes | yes |
/// | `log_line_prefix` | `%t [%p] %u@%d ` | no | yes |
/// | `listen_addresses` | `*` | no | no |
/// | `ssl` | `off` | no | yes |
pub(super) fn default_template() -> ParamTemplate {
    let entry = |default_value: &str, user_changeable, dynamic| TemplateEntry {
        default_value: default_value.to_string(),
        user_changeable,
        dynamic,
    };
    let entries = [
        ("max_connections", entry("800", true, false)),
        ("shared_buffers", entry("2GB", true, false)),
        ("work_mem", entry("4MB", true, true)),
        ("max_prepared_transactions", entry("800", true, false)),
        ("statement_timeout", entry("0", true, true)),
        ("log_line_prefix", entry("%t [%p] %u@%d ", false, true)),
        ("listen_addresses", entry("*", false, false)),
        ("ssl", entry("off", false, true)),
    ];
    ParamTemplate {
        entries: entries
            .into_iter()
            .map(|(name, e)| (name.to_string(), e))
            .collect(),
    }
}

/// Per-class parameters: `max_connections` 800 / 1600 / 5000 and `shared_buffers`
/// 2GB / 4GB / 16GB for medium / large / xlarge.
pub(super) fn default_class_params() -> BTreeMap<String, BTreeMap<String, String>> {
    [
        (CLASS_MEDIUM, "800", "2GB"),
        (CLASS_LARGE, "1600", "4GB"),
        (CLASS_XLARGE, "5000", "16GB"),
    ]
    .into_iter()
    .map(|(class, connections, buffers)| {
        let params = BTreeMap::from([
            ("max_connections".to_string(), connections.to_string()),
            ("shared_buffers".to_string(), buffers.to_string()),
        ]);
        (class.to_string(), params)
    })
    .collect()
}

fn set_summary(cluster: &ClusterRef, params: &ParamSet) -> String {
    format!("{cluster} {} params", params.params.len())
}

#[async_trait]
impl ParamStore for SimParamStore {
    async fn user_params(&self, cluster: &ClusterRef) -> Result<Option<ParamSet>, PortError> {
        self.0
            .call(port::PARAMS, "user_params", cluster.to_string(), |w| {
                Ok(w.params.get(cluster).and_then(|p| p.user.clone()))
            })
            .await
    }

    async fn running_params(&self, cluster: &ClusterRef) -> Result<Option<ParamSet>, PortError> {
        self.0
            .call(port::PARAMS, "running_params", cluster.to_string(), |w| {
                Ok(w.params.get(cluster).and_then(|p| p.running.clone()))
            })
            .await
    }

    async fn save_user_params(
        &self,
        cluster: &ClusterRef,
        params: &ParamSet,
    ) -> Result<(), PortError> {
        self.0
            .call(
                port::PARAMS,
                "save_user_params",
                set_summary(cluster, params),
                |w| {
                    w.params.entry(cluster.clone()).or_default().user = Some(params.clone());
                    Ok(())
                },
            )
            .await
    }

    async fn save_running_params(
        &self,
        cluster: &ClusterRef,
        params: &ParamSet,
    ) -> Result<(), PortError> {
        self.0
            .call(
                port::PARAMS,
                "save_running_params",
                set_summary(cluster, params),
                |w| {
                    w.params.entry(cluster.clone()).or_default().running = Some(params.clone());
                    Ok(())
                },
            )
            .await
    }

    async fn template(&self) -> Result<ParamTemplate, PortError> {
        self.0
            .call(port::PARAMS, "template", String::new(), |w| {
                Ok(w.template.clone())
            })
            .await
    }

    async fn class_params(&self, class_name: &str) -> Result<BTreeMap<String, String>, PortError> {
        self.0
            .call(port::PARAMS, "class_params", class_name.to_string(), |w| {
                w.class_params
                    .get(class_name)
                    .cloned()
                    .ok_or_else(|| PortError::NotFound {
                        port: port::PARAMS,
                        what: format!("parameters of class {class_name}"),
                    })
            })
            .await
    }
}

impl Simulation {
    /// The parameter sets of `cluster`.
    pub fn params(&self, cluster: &ClusterRef) -> SimParams {
        self.lock().params.get(cluster).cloned().unwrap_or_default()
    }

    /// Replaces the parameter sets of `cluster` (e.g. a user edit of user-params).
    pub fn set_params(&self, cluster: &ClusterRef, params: SimParams) {
        self.lock().params.insert(cluster.clone(), params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::testing::{c1, sim};
    use crate::ports::ParamValue;

    fn set(name: &str, value: &str) -> ParamSet {
        let v = ParamValue {
            name: name.into(),
            value: value.into(),
            ..Default::default()
        };
        ParamSet {
            params: BTreeMap::from([(name.to_string(), v)]),
            latest_flush_time: None,
        }
    }

    #[tokio::test]
    async fn param_sets_are_none_until_saved() {
        let sim = sim(1);
        let store = sim.ports().params;
        assert_eq!(store.user_params(&c1()).await.unwrap(), None);
        assert_eq!(store.running_params(&c1()).await.unwrap(), None);
        store
            .save_user_params(&c1(), &set("work_mem", "8MB"))
            .await
            .unwrap();
        assert_eq!(
            store.user_params(&c1()).await.unwrap(),
            Some(set("work_mem", "8MB"))
        );
        assert_eq!(store.running_params(&c1()).await.unwrap(), None);
        store
            .save_running_params(&c1(), &set("work_mem", "4MB"))
            .await
            .unwrap();
        store
            .save_user_params(&c1(), &set("work_mem", "16MB"))
            .await
            .unwrap();
        let p = sim.params(&c1());
        assert_eq!(p.user, Some(set("work_mem", "16MB")));
        assert_eq!(p.running, Some(set("work_mem", "4MB")));
    }

    #[tokio::test]
    async fn template_has_realistic_postgres_parameters() {
        let sim = sim(1);
        let t = sim.ports().params.template().await.unwrap();
        let e = |n: &str| t.entries.get(n).unwrap().clone();
        assert!(!e("max_connections").dynamic);
        assert!(!e("shared_buffers").dynamic);
        assert!(e("work_mem").dynamic);
        assert!(!e("max_prepared_transactions").dynamic);
        assert!(!e("listen_addresses").user_changeable);
        for name in ["log_line_prefix", "ssl"] {
            assert!(t.entries.contains_key(name));
        }
    }

    #[tokio::test]
    async fn class_params_differ_per_class_and_unknown_is_not_found() {
        let sim = sim(1);
        let store = sim.ports().params;
        let medium = store.class_params(CLASS_MEDIUM).await.unwrap();
        let large = store.class_params(CLASS_LARGE).await.unwrap();
        assert_ne!(medium["max_connections"], large["max_connections"]);
        assert_ne!(medium["shared_buffers"], large["shared_buffers"]);
        assert!(store
            .class_params("polar.o.x2.tiny")
            .await
            .unwrap_err()
            .is_not_found());
    }

    #[tokio::test]
    async fn failed_call_changes_nothing() {
        let sim = sim(1);
        sim.set_fail_rate(1.0);
        assert!(sim
            .ports()
            .params
            .save_user_params(&c1(), &set("a", "b"))
            .await
            .is_err());
        assert_eq!(sim.params(&c1()), SimParams::default());
    }
}
