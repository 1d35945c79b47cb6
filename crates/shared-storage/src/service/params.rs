//! Engine parameters: class changes, flushes (domain §2.4 J, §2.5 flush_params_if_necessary,
//! flush_cluster_params; §4.3).

use std::collections::BTreeMap;

use super::RunMarkers;

use chrono::Utc;

use super::{cluster_ref, Outcome, SharedStorageService};
use crate::crd::annotations;
use crate::domain::params::{self, FlushPlan, MAX_CONNECTIONS, MAX_PREPARED_TRANSACTIONS};
use crate::domain::{DbIns, SharedStorageCluster};
use crate::ports::{ParamSet, ParamValue, Progress};

fn param_set(
    values: &BTreeMap<String, String>,
    latest_flush_time: Option<chrono::DateTime<Utc>>,
) -> ParamSet {
    let now = Utc::now();
    ParamSet {
        params: values
            .iter()
            .map(|(name, value)| {
                let param = ParamValue {
                    name: name.clone(),
                    value: value.clone(),
                    update_time: Some(now),
                    inoperative_value: false,
                };
                (name.clone(), param)
            })
            .collect(),
        latest_flush_time,
    }
}

impl SharedStorageService {
    /// UpdateModifyClassMeta (model loaded in modify-class mode): applies the new class's
    /// parameter defaults to the user parameters the user never changed, resolves the new
    /// class's resources and saves them.
    pub async fn update_modify_class_meta(&self, model: &mut SharedStorageCluster) -> Outcome {
        let cluster = cluster_ref(model);
        let Some(old) = model.old_class_info.clone() else {
            return Ok(Progress::Done(()));
        };
        let store = &self.ports.params;
        if let Some(user) = store.user_params(&cluster).await? {
            let old_params = store.class_params(&old.class_name).await?;
            let new_params = store.class_params(&model.class_info.class_name).await?;
            let updated =
                params::user_params_for_class(&user, &old_params, &new_params, Utc::now());
            let values = |set: &ParamSet| -> BTreeMap<String, String> {
                set.params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value.clone()))
                    .collect()
            };
            if values(&updated) != values(&user) {
                store.save_user_params(&cluster, &updated).await?;
            }
        }
        let class = self
            .ports
            .classes
            .class(&model.class_info.class_name)
            .await?;
        if model.resources != class.resources {
            model.resources = class.resources;
            self.save(model).await?;
        }
        Ok(Progress::Done(()))
    }

    async fn flush_restart(
        &self,
        model: &SharedStorageCluster,
        seen: &mut RunMarkers,
        ins: &DbIns,
        values: &BTreeMap<String, String>,
    ) -> Outcome {
        let marker = format!("flushParamsIfNecessary:{}", ins.ins_id);
        if !seen.contains(&marker) {
            let target = Self::engine_target(model, ins);
            self.ports.engine.update_params(&target, values).await?;
            self.ports.engine.restart(&target).await?;
            self.mark(&cluster_ref(model), seen, &marker).await?;
        }
        self.health_check(model, ins).await
    }

    /// FlushParamsIfNecessary (before a class change): keeps every RO's `max_connections`
    /// at least the RW's: lowering goes to the RW first, raising to the ROs first.
    pub async fn flush_params_if_necessary(
        &self,
        model: &SharedStorageCluster,
        seen: &mut RunMarkers,
    ) -> Outcome {
        let cluster = cluster_ref(model);
        let store = &self.ports.params;
        let (Some(running), Some(user)) = (
            store.running_params(&cluster).await?,
            store.user_params(&cluster).await?,
        ) else {
            return Ok(Progress::Done(()));
        };
        let plan = params::connection_flush_plan(&running, &user)?;
        let mut ros: Vec<DbIns> = model.ros.values().cloned().collect();
        ros.sort_by(|a, b| crate::domain::compare_ins_ids(&a.ins_id, &b.ins_id));
        let (rw_values, ro_values) = match plan {
            FlushPlan::Nothing => return Ok(Progress::Done(())),
            FlushPlan::RwFirst {
                max_connections,
                max_prepared_transactions,
            } => {
                let mut rw =
                    BTreeMap::from([(MAX_CONNECTIONS.to_owned(), max_connections.to_string())]);
                if let Some(mpt) = max_prepared_transactions {
                    rw.insert(MAX_PREPARED_TRANSACTIONS.to_owned(), mpt.to_string());
                }
                (Some(rw), None)
            }
            FlushPlan::RosFirst { max_connections } => (
                None,
                Some(BTreeMap::from([(
                    MAX_CONNECTIONS.to_owned(),
                    max_connections.to_string(),
                )])),
            ),
            FlushPlan::RwTransactionsThenRos {
                max_prepared_transactions,
                max_connections,
            } => (
                Some(BTreeMap::from([(
                    MAX_PREPARED_TRANSACTIONS.to_owned(),
                    max_prepared_transactions.to_string(),
                )])),
                Some(BTreeMap::from([(
                    MAX_CONNECTIONS.to_owned(),
                    max_connections.to_string(),
                )])),
            ),
        };
        if let (Some(values), Some(rw)) = (rw_values, model.rw.clone()) {
            if let Progress::Pending { reason } =
                self.flush_restart(model, seen, &rw, &values).await?
            {
                return Ok(Progress::Pending { reason });
            }
        }
        if let Some(values) = ro_values {
            for ro in &ros {
                if let Progress::Pending { reason } =
                    self.flush_restart(model, seen, ro, &values).await?
                {
                    return Ok(Progress::Pending { reason });
                }
            }
        }
        Ok(Progress::Done(()))
    }

    /// FlushParams (domain §2.5 flush_cluster_params): computes the effective parameters; if
    /// they changed, pushes them to the RW and every RO (no restart), sets
    /// `flushParamsRestartCluster=true` when a restart is needed, then records them as
    /// running. The request is written first: once the running params are recorded a
    /// re-run sees nothing changed, so a crash between the two writes must not lose it.
    pub async fn flush_params(&self, model: &SharedStorageCluster) -> Outcome {
        let cluster = cluster_ref(model);
        let store = &self.ports.params;
        let running = store.running_params(&cluster).await?.unwrap_or_default();
        let user = store.user_params(&cluster).await?.unwrap_or_default();
        let template = store.template().await?;
        let effective = params::effective_params(
            &running,
            &user,
            &template,
            self.config.can_update_not_changeable_params,
        );
        if !effective.changed {
            return Ok(Progress::Done(()));
        }
        for ins in model.all_instances().filter(|i| !i.pod_name.is_empty()) {
            self.ports
                .engine
                .update_params(&Self::engine_target(model, ins), &effective.params)
                .await?;
        }
        if effective.need_restart {
            self.patch_annotations(
                &cluster,
                &BTreeMap::from([(
                    annotations::FLUSH_PARAMS_RESTART_CLUSTER.to_owned(),
                    Some("true".to_owned()),
                )]),
            )
            .await?;
        }
        store
            .save_running_params(
                &cluster,
                &param_set(&effective.params, running.latest_flush_time),
            )
            .await?;
        Ok(Progress::Done(()))
    }
}
