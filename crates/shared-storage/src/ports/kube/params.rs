//! J. Engine parameters on ConfigMaps.
//!
//! - **Parameter sets**: `<cluster>-user-params` and `<cluster>-running-params` in the
//!   cluster's namespace, labels `dbCluster=<ConfigMap name>` and
//!   `configType=user-params|running-params`, owned by the MPDCluster. Each data key is a
//!   parameter; its value is JSON `{"name","value","updateTime","inoperative_value"}` with
//!   times as `YYYY-MM-DDTHH:MM:SSZ` (written in UTC). The annotation `latestFlushTime`
//!   holds [`ParamSet::latest_flush_time`].
//!
//!   A save updates the ConfigMap in place (created, owned by the cluster, when missing),
//!   never deleting and recreating it. It writes only the parameters whose entry differs
//!   from the stored one *and* carries a later `updateTime` (the service stamps every value
//!   it changes with the current time), by a merge patch guarded by the read
//!   `resourceVersion` (a lost race reads again). Keys the set does not hold are left
//!   alone. So a user's edit survives a save: of a key the set lacks, and of a key the set
//!   holds unchanged from an earlier read (whose `updateTime` is then not later than the
//!   stored one).
//! - **Template**: ConfigMap `postgresql-1-0-mycnf-template-rwo` in the system namespace,
//!   key `mycnf_template` (a YAML list of `{name, default_value, is_dynamic,
//!   is_user_changable, ...}`); the optional `postgresql-1-0-mycnf-template-white-list-rwo`
//!   makes the names in `can_update_params` (split by `|`) user-changeable and adds the
//!   items of `extend_mycnf_template` the template lacks.
//! - **Class parameters**: the one ConfigMap of the system namespace labelled as the
//!   class's `instance_level_config` (see [`super::catalog`]); its data maps parameter to
//!   value.
//!
//! Malformed input (a value that is not the JSON above, a bad time, a template that is not
//! YAML) is [`PortError::Rejected`] naming the ConfigMap and key; nothing is overwritten.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::api_error::{is_already_exists, port_error};
use super::catalog::{class_selector, names, PARAMS_LEVEL};
use super::conflict::ConflictRetry;
use super::controller_map::{annotation, data};
use super::owner::cluster_owner;
use super::KubePortsConfig;
use crate::ports::sim::port::PARAMS;
use crate::ports::TemplateEntry;
use crate::ports::{ClusterRef, ParamSet, ParamStore, ParamTemplate, ParamValue, PortError};

/// The annotation with the last flush time.
pub const LATEST_FLUSH_TIME: &str = "latestFlushTime";
/// The parameter template ConfigMap.
pub const TEMPLATE_CONFIG_MAP: &str = "postgresql-1-0-mycnf-template-rwo";
/// The template's key.
pub const TEMPLATE_KEY: &str = "mycnf_template";
/// The optional white-list ConfigMap.
pub const WHITE_LIST_CONFIG_MAP: &str = "postgresql-1-0-mycnf-template-white-list-rwo";
/// The white list's key of user-changeable names.
pub const WHITE_LIST_KEY: &str = "can_update_params";
/// The white list's key of extra template items.
pub const EXTEND_TEMPLATE_KEY: &str = "extend_mycnf_template";

/// The stored time format (UTC).
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Which parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    User,
    Running,
}

impl Kind {
    /// The `configType` label, also the name suffix.
    fn config_type(self) -> &'static str {
        match self {
            Kind::User => "user-params",
            Kind::Running => "running-params",
        }
    }

    fn config_map(self, cluster: &ClusterRef) -> String {
        format!("{}-{}", cluster.name, self.config_type())
    }
}

fn format_time(t: &DateTime<Utc>) -> String {
    t.format(TIME_FORMAT).to_string()
}

fn parse_time(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| format!("{s:?} is not a time: {e}"))
}

/// A scalar as text (`100` and `"100"` alike).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One stored entry of data key `key`.
fn decode(key: &str, text: &str) -> Result<ParamValue, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let value = obj
        .get("value")
        .and_then(scalar)
        .ok_or("field value is missing")?;
    let update_time = match obj.get("updateTime") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => parse_time(s).map_err(|e| format!("field updateTime: {e}"))?,
        Some(_) => return Err("field updateTime is not a string".into()),
    };
    // The original stores the value waiting for a restart as a string; empty means none.
    let inoperative_value = match obj.get("inoperative_value") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !(s.is_empty() || s == "false"),
        Some(_) => return Err("field inoperative_value is not a string".into()),
    };
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(key)
        .to_owned();
    Ok(ParamValue {
        name,
        value,
        update_time,
        inoperative_value,
    })
}

fn encode(key: &str, p: &ParamValue) -> String {
    let name = if p.name.is_empty() { key } else { &p.name };
    json!({
        "name": name,
        "value": p.value,
        "updateTime": p.update_time.as_ref().map(format_time).unwrap_or_default(),
        "inoperative_value": if p.inoperative_value { "true" } else { "" },
    })
    .to_string()
}

/// One template item as the YAML writes it.
fn template_item(item: &serde_yaml::Value) -> Result<(String, TemplateEntry), String> {
    let text = |field: &str| -> Option<String> {
        match item.get(field)? {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let flag = |field: &str| -> Result<bool, String> {
        match item.get(field) {
            None | Some(serde_yaml::Value::Null) => Ok(false),
            Some(serde_yaml::Value::Bool(b)) => Ok(*b),
            Some(serde_yaml::Value::Number(n)) => Ok(n.as_i64() == Some(1)),
            Some(serde_yaml::Value::String(s)) => Ok(s.trim() == "1"),
            Some(_) => Err(format!("field {field} is not 0 or 1")),
        }
    };
    let name = text("name")
        .filter(|n| !n.is_empty())
        .ok_or("an item has no name")?;
    let entry = TemplateEntry {
        default_value: text("default_value").unwrap_or_default(),
        user_changeable: flag("is_user_changable").map_err(|e| format!("{name}: {e}"))?,
        dynamic: flag("is_dynamic").map_err(|e| format!("{name}: {e}"))?,
    };
    Ok((name, entry))
}

/// The items of a YAML template list, in order.
fn template_items(yaml: &str) -> Result<Vec<(String, TemplateEntry)>, String> {
    if yaml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<serde_yaml::Value> =
        serde_yaml::from_str(yaml).map_err(|e| format!("not a YAML list: {e}"))?;
    items.iter().map(template_item).collect()
}

/// The production [`ParamStore`], on ConfigMaps.
#[derive(Clone)]
pub struct KubeParamStore {
    client: Client,
    config: Arc<KubePortsConfig>,
    retry: ConflictRetry,
}

impl std::fmt::Debug for KubeParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeParamStore").finish_non_exhaustive()
    }
}

impl KubeParamStore {
    /// The store on `client`: templates and class parameters from
    /// `config.system_namespace` (class labels with `config.db_type_label`), lost races
    /// retried as `config` says.
    pub fn new(client: Client, config: Arc<KubePortsConfig>) -> Self {
        KubeParamStore {
            retry: ConflictRetry::from_config(&config),
            client,
            config,
        }
    }

    fn api(&self, namespace: &str) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn system(&self, name: &str) -> String {
        format!("configmap {}/{name}", self.config.system_namespace)
    }

    fn rejected(what: &str, key: &str, why: &str) -> PortError {
        PortError::Rejected {
            port: PARAMS,
            message: format!("{what} key {key}: {why}"),
        }
    }

    async fn read(&self, cluster: &ClusterRef, kind: Kind) -> Result<Option<ParamSet>, PortError> {
        let name = kind.config_map(cluster);
        let what = format!("configmap {}/{name}", cluster.namespace);
        let Some(cm) = self
            .api(&cluster.namespace)
            .get_opt(&name)
            .await
            .map_err(|e| port_error(PARAMS, &what, e))?
        else {
            return Ok(None);
        };
        let params = cm
            .data
            .iter()
            .flatten()
            .map(|(key, text)| {
                decode(key, text)
                    .map(|p| (key.clone(), p))
                    .map_err(|why| Self::rejected(&what, key, &why))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let latest_flush_time = match annotation(&cm, LATEST_FLUSH_TIME) {
            None => None,
            Some(t) => parse_time(t).map_err(|why| PortError::Rejected {
                port: PARAMS,
                message: format!("{what} annotation {LATEST_FLUSH_TIME}: {why}"),
            })?,
        };
        Ok(Some(ParamSet {
            params,
            latest_flush_time,
        }))
    }

    async fn save(
        &self,
        cluster: &ClusterRef,
        kind: Kind,
        set: &ParamSet,
    ) -> Result<(), PortError> {
        let name = kind.config_map(cluster);
        let what = format!("configmap {}/{name}", cluster.namespace);
        let (name, what) = (&name, &what);
        self.retry
            .run(what, move || async move {
                let current = self
                    .api(&cluster.namespace)
                    .get_opt(name)
                    .await
                    .map_err(|e| port_error(PARAMS, what, e))?;
                match current {
                    Some(cm) => self.patch_changes(cluster, what, &cm, set).await,
                    None => self.create(cluster, kind, what, set).await,
                }
            })
            .await
    }

    /// Writes the entries of `set` that differ from `cm`'s, and nothing else.
    async fn patch_changes(
        &self,
        cluster: &ClusterRef,
        what: &str,
        cm: &ConfigMap,
        set: &ParamSet,
    ) -> Result<(), PortError> {
        let mut writes = serde_json::Map::new();
        for (key, param) in &set.params {
            let encoded = encode(key, param);
            let stored = data(cm, key).and_then(|text| decode(key, text).ok());
            let write = match &stored {
                None => true,
                Some(s) if decode(key, &encoded).ok().as_ref() == Some(s) => false,
                // `None` orders first: an untimed stored entry loses to a timed one.
                Some(s) => param.update_time > s.update_time,
            };
            if write {
                writes.insert(key.clone(), Value::String(encoded));
            } else if stored.as_ref().is_some_and(|s| s.value != param.value) {
                tracing::debug!(
                    configmap = what,
                    key = key.as_str(),
                    "kept the stored entry: it changed since the saved set was read"
                );
            }
        }
        let mut annotations = serde_json::Map::new();
        if let Some(t) = &set.latest_flush_time {
            let stored =
                annotation(cm, LATEST_FLUSH_TIME).and_then(|s| parse_time(s).ok().flatten());
            let encoded = format_time(t);
            if stored != parse_time(&encoded).ok().flatten() {
                annotations.insert(LATEST_FLUSH_TIME.to_owned(), Value::String(encoded));
            }
        }
        if writes.is_empty() && annotations.is_empty() {
            return Ok(());
        }
        let rv = cm.metadata.resource_version.as_deref().unwrap_or_default();
        let mut metadata = json!({"resourceVersion": rv});
        if !annotations.is_empty() {
            metadata["annotations"] = Value::Object(annotations);
        }
        let patch = json!({"metadata": metadata, "data": writes});
        tracing::debug!(
            configmap = what,
            keys = writes.len(),
            "updating parameters in place"
        );
        self.api(&cluster.namespace)
            .patch(
                cm.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| port_error(PARAMS, what, e))?;
        Ok(())
    }

    async fn create(
        &self,
        cluster: &ClusterRef,
        kind: Kind,
        what: &str,
        set: &ParamSet,
    ) -> Result<(), PortError> {
        let owner = cluster_owner(&self.client, PARAMS, cluster).await?;
        let name = kind.config_map(cluster);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(cluster.namespace.clone()),
                labels: Some(BTreeMap::from([
                    ("dbCluster".to_owned(), name),
                    ("configType".to_owned(), kind.config_type().to_owned()),
                ])),
                annotations: set
                    .latest_flush_time
                    .as_ref()
                    .map(|t| BTreeMap::from([(LATEST_FLUSH_TIME.to_owned(), format_time(t))])),
                owner_references: Some(vec![owner]),
                ..ObjectMeta::default()
            },
            data: Some(
                set.params
                    .iter()
                    .map(|(k, p)| (k.clone(), encode(k, p)))
                    .collect(),
            ),
            ..ConfigMap::default()
        };
        match self
            .api(&cluster.namespace)
            .create(&PostParams::default(), &cm)
            .await
        {
            Ok(_) => {
                tracing::info!(configmap = what, "created the parameter ConfigMap");
                Ok(())
            }
            Err(e) if is_already_exists(&e) => Err(PortError::Conflict {
                port: PARAMS,
                what: format!("{what} (created by another writer)"),
            }),
            Err(e) => Err(port_error(PARAMS, what, e)),
        }
    }
}

#[async_trait]
impl ParamStore for KubeParamStore {
    async fn user_params(&self, cluster: &ClusterRef) -> Result<Option<ParamSet>, PortError> {
        self.read(cluster, Kind::User).await
    }

    async fn running_params(&self, cluster: &ClusterRef) -> Result<Option<ParamSet>, PortError> {
        self.read(cluster, Kind::Running).await
    }

    async fn save_user_params(
        &self,
        cluster: &ClusterRef,
        params: &ParamSet,
    ) -> Result<(), PortError> {
        self.save(cluster, Kind::User, params).await
    }

    async fn save_running_params(
        &self,
        cluster: &ClusterRef,
        params: &ParamSet,
    ) -> Result<(), PortError> {
        self.save(cluster, Kind::Running, params).await
    }

    async fn template(&self) -> Result<ParamTemplate, PortError> {
        let api = self.api(&self.config.system_namespace);
        let what = self.system(TEMPLATE_CONFIG_MAP);
        let cm = api
            .get_opt(TEMPLATE_CONFIG_MAP)
            .await
            .map_err(|e| port_error(PARAMS, &what, e))?
            .ok_or_else(|| PortError::NotFound {
                port: PARAMS,
                what: format!("parameter template ({what})"),
            })?;
        let yaml = data(&cm, TEMPLATE_KEY)
            .ok_or_else(|| Self::rejected(&what, TEMPLATE_KEY, "missing"))?;
        let mut entries: BTreeMap<String, TemplateEntry> = template_items(yaml)
            .map_err(|why| Self::rejected(&what, TEMPLATE_KEY, &why))?
            .into_iter()
            .collect();

        let white_what = self.system(WHITE_LIST_CONFIG_MAP);
        let white = api
            .get_opt(WHITE_LIST_CONFIG_MAP)
            .await
            .map_err(|e| port_error(PARAMS, &white_what, e))?;
        if let Some(white) = white {
            if let Some(names) = data(&white, WHITE_LIST_KEY) {
                for name in names.split('|').map(str::trim).filter(|n| !n.is_empty()) {
                    if let Some(entry) = entries.get_mut(name) {
                        entry.user_changeable = true;
                    }
                }
            }
            if let Some(yaml) = data(&white, EXTEND_TEMPLATE_KEY) {
                let extra = template_items(yaml)
                    .map_err(|why| Self::rejected(&white_what, EXTEND_TEMPLATE_KEY, &why))?;
                for (name, entry) in extra {
                    entries.entry(name).or_insert(entry);
                }
            }
        }
        Ok(ParamTemplate { entries })
    }

    async fn class_params(&self, class_name: &str) -> Result<BTreeMap<String, String>, PortError> {
        let not_found = || PortError::NotFound {
            port: PARAMS,
            what: format!("parameters of class {class_name:?}"),
        };
        if class_name.is_empty() {
            return Err(not_found());
        }
        let selector = class_selector(&self.config, PARAMS_LEVEL, class_name);
        let what = format!(
            "configmaps in {} labelled {selector}",
            self.config.system_namespace
        );
        let list = self
            .api(&self.config.system_namespace)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| port_error(PARAMS, &what, e))?;
        match list.items.as_slice() {
            [] => Err(not_found()),
            [one] => Ok(one.data.clone().unwrap_or_default()),
            many => Err(PortError::Rejected {
                port: PARAMS,
                message: format!(
                    "class {class_name}: exactly one ConfigMap must hold its parameters, found {}",
                    names(many)
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ports::kube::fake_api::{c1, cluster, config_map, fake_api, json, Calls};

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, h, 0, 0).unwrap()
    }

    fn param(name: &str, value: &str, h: u32) -> (String, ParamValue) {
        (
            name.to_owned(),
            ParamValue {
                name: name.to_owned(),
                value: value.to_owned(),
                update_time: Some(at(h)),
                inoperative_value: false,
            },
        )
    }

    fn set(params: &[(&str, &str, u32)]) -> ParamSet {
        ParamSet {
            params: params.iter().map(|(n, v, h)| param(n, v, *h)).collect(),
            latest_flush_time: None,
        }
    }

    async fn store(objects: Vec<Value>) -> (KubeParamStore, Client, Arc<Calls>) {
        let mut all = vec![json(&cluster("default", "c1"))];
        all.extend(objects);
        let (client, calls) = fake_api(all).await;
        (
            KubeParamStore::new(client.clone(), Arc::default()),
            client,
            calls,
        )
    }

    async fn stored(client: &Client, name: &str) -> ConfigMap {
        Api::<ConfigMap>::namespaced(client.clone(), "default")
            .get(name)
            .await
            .unwrap()
    }

    #[test]
    fn entries_round_trip_in_the_wire_format() {
        let (_, p) = param("work_mem", "8MB", 3);
        let text = encode("work_mem", &p);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["name"], "work_mem");
        assert_eq!(v["value"], "8MB");
        assert_eq!(v["updateTime"], "2024-05-01T03:00:00Z");
        assert_eq!(v["inoperative_value"], "");
        assert_eq!(decode("work_mem", &text), Ok(p));
        // As the original writes them: a string inoperative value, a number as value.
        let original = r#"{"name":"a","value":100,"updateTime":"","inoperative_value":""}"#;
        let p = decode("a", original).unwrap();
        assert_eq!(
            (p.value.as_str(), p.update_time, p.inoperative_value),
            ("100", None, false)
        );
        assert!(decode("a", r#"{"value":"1","updateTime":"yesterday"}"#)
            .unwrap_err()
            .contains("updateTime"));
        assert!(decode("a", "8MB").is_err());
    }

    #[tokio::test]
    async fn a_missing_set_is_none_and_a_save_creates_it_owned_and_labelled() {
        let (store, client, _) = store(vec![]).await;
        assert_eq!(store.user_params(&c1()).await.unwrap(), None);
        let mut user = set(&[("work_mem", "8MB", 1), ("max_connections", "800", 1)]);
        user.latest_flush_time = Some(at(2));
        store.save_user_params(&c1(), &user).await.unwrap();
        assert_eq!(store.user_params(&c1()).await.unwrap(), Some(user));
        assert_eq!(store.running_params(&c1()).await.unwrap(), None);

        let cm = stored(&client, "c1-user-params").await;
        let labels = cm.metadata.labels.clone().unwrap();
        assert_eq!(labels["dbCluster"], "c1-user-params");
        assert_eq!(labels["configType"], "user-params");
        assert_eq!(
            annotation(&cm, LATEST_FLUSH_TIME),
            Some("2024-05-01T02:00:00Z")
        );
        let owner = &cm.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("MPDCluster", "c1")
        );

        store
            .save_running_params(&c1(), &set(&[("work_mem", "4MB", 1)]))
            .await
            .unwrap();
        let running = stored(&client, "c1-running-params").await;
        assert_eq!(
            running.metadata.labels.unwrap()["configType"],
            "running-params"
        );
    }

    #[tokio::test]
    async fn a_save_updates_in_place_and_a_users_edit_of_another_key_survives() {
        let (store, client, calls) = store(vec![]).await;
        store
            .save_user_params(
                &c1(),
                &set(&[("work_mem", "8MB", 1), ("max_connections", "800", 1)]),
            )
            .await
            .unwrap();
        let before = stored(&client, "c1-user-params").await;
        let read = store.user_params(&c1()).await.unwrap().unwrap();

        // A user edits one key and adds another, by hand.
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let edit = json!({"data": {
            "max_connections": r#"{"name":"max_connections","value":"1000","updateTime":"2024-05-01T05:00:00Z","inoperative_value":""}"#,
            "statement_timeout": r#"{"name":"statement_timeout","value":"60s","updateTime":"","inoperative_value":""}"#,
        }});
        api.patch(
            "c1-user-params",
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await
        .unwrap();

        // The operator changes work_mem in what it read before the edit, and saves the
        // rest as it read it.
        let mut changed = read.clone();
        changed
            .params
            .insert("work_mem".into(), param("work_mem", "16MB", 6).1);
        changed.latest_flush_time = Some(at(6));
        store.save_user_params(&c1(), &changed).await.unwrap();

        let after = stored(&client, "c1-user-params").await;
        assert_eq!(
            after.metadata.uid, before.metadata.uid,
            "never deleted and recreated"
        );
        assert_eq!(Calls::count(&calls.delete), 0);
        let now = store.user_params(&c1()).await.unwrap().unwrap();
        assert_eq!(now.params["work_mem"].value, "16MB");
        assert_eq!(
            now.params["max_connections"].value, "1000",
            "the user's edit survives"
        );
        assert_eq!(
            now.params["statement_timeout"].value, "60s",
            "the user's key survives"
        );
        assert_eq!(now.latest_flush_time, Some(at(6)));
    }

    #[tokio::test]
    async fn an_edit_that_kept_the_update_time_survives_and_a_newer_change_is_written() {
        let (store, client, _) = store(vec![]).await;
        store
            .save_user_params(&c1(), &set(&[("work_mem", "8MB", 1), ("ssl", "off", 1)]))
            .await
            .unwrap();
        let read = store.user_params(&c1()).await.unwrap().unwrap();
        // The user changes the value only, leaving updateTime as it was.
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let edit = json!({"data": {
            "work_mem": encode("work_mem", &param("work_mem", "32MB", 1).1),
        }});
        api.patch(
            "c1-user-params",
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await
        .unwrap();
        let mut changed = read;
        changed.params.insert("ssl".into(), param("ssl", "on", 2).1);
        store.save_user_params(&c1(), &changed).await.unwrap();
        let now = store.user_params(&c1()).await.unwrap().unwrap();
        assert_eq!(
            now.params["work_mem"].value, "32MB",
            "the user's edit survives"
        );
        assert_eq!(now.params["ssl"].value, "on", "the newer change is written");
        assert_eq!(now.params["ssl"].update_time, Some(at(2)));
    }

    #[tokio::test]
    async fn saving_what_is_stored_writes_nothing() {
        let (store, _, calls) = store(vec![]).await;
        let user = set(&[("work_mem", "8MB", 1)]);
        store.save_user_params(&c1(), &user).await.unwrap();
        let writes = calls.writes();
        let mut same = user.clone();
        // Sub-second precision is not stored and does not count as a change.
        same.params.get_mut("work_mem").unwrap().update_time =
            Some(at(1) + chrono::Duration::milliseconds(300));
        store.save_user_params(&c1(), &same).await.unwrap();
        assert_eq!(calls.writes(), writes);
    }

    #[tokio::test]
    async fn a_lost_race_on_save_is_retried_and_keeps_the_winners_keys() {
        let (store, client, calls) = store(vec![]).await;
        store
            .save_user_params(&c1(), &set(&[("a", "1", 1)]))
            .await
            .unwrap();
        calls.inject_conflicts("c1-user-params", 1, 2);
        store
            .save_user_params(&c1(), &set(&[("a", "1", 1), ("b", "2", 1)]))
            .await
            .unwrap();
        assert_eq!(Calls::count(&calls.injected), 2);
        let cm = stored(&client, "c1-user-params").await;
        assert_eq!(cm.data.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_malformed_entry_is_rejected_naming_the_configmap_and_key() {
        let cm = config_map("default", "c1-running-params", &[("work_mem", "8MB")]);
        let (store, _, _) = store(vec![json(&cm)]).await;
        let err = store.running_params(&c1()).await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        let message = err.to_string();
        assert!(
            message.contains("c1-running-params") && message.contains("work_mem"),
            "{message}"
        );
    }

    fn template_cm(items: &str) -> Value {
        json(&config_map(
            "kube-system",
            TEMPLATE_CONFIG_MAP,
            &[(TEMPLATE_KEY, items)],
        ))
    }

    const TEMPLATE: &str = r#"
- name: max_connections
  default_value: "800"
  is_dynamic: 0
  is_visible: 1
  is_user_changable: 1
  optional: "[10-20000]"
  unit: INT
  divide_base: 1
  is_deleted: 0
  comment: 'Sets the maximum number of concurrent connections.'
- name: work_mem
  default_value: "4MB"
  is_dynamic: 1
  is_user_changable: 0
- name: archive_mode
  default_value: on
  is_dynamic: 0
  is_user_changable: 0
"#;

    #[tokio::test]
    async fn the_template_comes_from_its_configmap_and_the_white_list() {
        let white = config_map(
            "kube-system",
            WHITE_LIST_CONFIG_MAP,
            &[
                (WHITE_LIST_KEY, "work_mem| unknown_param"),
                (
                    EXTEND_TEMPLATE_KEY,
                    "- {name: ssl, default_value: 'off', is_dynamic: 1, is_user_changable: 0}\n\
                     - {name: work_mem, default_value: '64MB', is_dynamic: 0, is_user_changable: 0}",
                ),
            ],
        );
        let (store, _, _) = store(vec![template_cm(TEMPLATE), json(&white)]).await;
        let t = store.template().await.unwrap();
        let e = |n: &str| t.entries[n].clone();
        assert_eq!(
            e("max_connections"),
            TemplateEntry {
                default_value: "800".into(),
                user_changeable: true,
                dynamic: false
            }
        );
        assert_eq!(e("archive_mode").default_value, "on");
        assert!(e("work_mem").user_changeable, "white-listed");
        assert_eq!(
            e("work_mem").default_value,
            "4MB",
            "the template item is kept"
        );
        assert!(e("work_mem").dynamic);
        assert!(e("ssl").dynamic && !e("ssl").user_changeable, "extended");
        assert!(!t.entries.contains_key("unknown_param"));
    }

    #[tokio::test]
    async fn the_template_without_a_white_list_is_read_and_a_missing_one_is_not_found() {
        let (with_template, _, _) = store(vec![template_cm(TEMPLATE)]).await;
        assert_eq!(with_template.template().await.unwrap().entries.len(), 3);
        let (without, _, _) = store(vec![]).await;
        let err = without.template().await.unwrap_err();
        assert!(
            err.is_not_found() && err.to_string().contains(TEMPLATE_CONFIG_MAP),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_template_that_is_not_yaml_is_rejected_naming_the_key() {
        let (store, _, _) = store(vec![template_cm("- name: [unclosed")]).await;
        let err = store.template().await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        assert!(err.to_string().contains(TEMPLATE_KEY), "{err}");
    }

    fn class_params_cm(name: &str, class: &str, data: &[(&str, &str)]) -> Value {
        let mut cm = config_map("kube-system", name, data);
        cm.metadata.labels = Some(
            [
                ("configtype", "instance_level"),
                ("leveltype", PARAMS_LEVEL),
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

    #[tokio::test]
    async fn class_params_come_from_the_one_configmap_of_the_class() {
        let (store, _, _) = store(vec![
            class_params_cm(
                "medium-config",
                "polar.o.x4.medium",
                &[("max_connections", "800")],
            ),
            class_params_cm(
                "large-config",
                "polar.o.x4.large",
                &[("max_connections", "1600")],
            ),
            class_params_cm("dup-1", "polar.o.x8.xlarge", &[]),
            class_params_cm("dup-2", "polar.o.x8.xlarge", &[]),
        ])
        .await;
        let medium = store.class_params("polar.o.x4.medium").await.unwrap();
        assert_eq!(medium["max_connections"], "800");
        let large = store.class_params("polar.o.x4.large").await.unwrap();
        assert_eq!(large["max_connections"], "1600");
        let err = store.class_params("polar.o.x2.tiny").await.unwrap_err();
        assert!(
            err.is_not_found() && err.to_string().contains("polar.o.x2.tiny"),
            "{err}"
        );
        let err = store.class_params("polar.o.x8.xlarge").await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        assert!(err.to_string().contains("dup-1, dup-2"), "{err}");
    }
}
