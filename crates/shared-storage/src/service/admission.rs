//! The admission of the shared machine (weakness 27): each request a trigger found is
//! checked against what the ports can tell up front, with reads only, before the cluster
//! leaves its stable state. The rules are [`crate::domain::admission`]; this gathers what
//! they need:
//!
//! | target state          | checks |
//! |-----------------------|--------|
//! | `Creating`            | followerNum, engine port, class (K), version (K), the volume is no other cluster's (A), nodes with the port free (A + L) |
//! | `ModifyClass`         | `classInfoModifyTo.className` (K) |
//! | `UpgradeMinorVersion` | `versionCfgModifyTo.versionName` (K) |
//! | `AddRo`               | followerNum, engine port, nodes with the port free for every RO asked (A + L) |
//! | `SwitchRw`            | the target is an RO; the current leader is satisfied |
//! | `RestartIns`          | the id is an instance |
//! | `RemoveRo`            | followerNum; the `removeIns` id (when set) is an RO |
//! | `MigrateRo`/`MigrateRw` | `<insId>\|<node>`, the instance exists, the node exists (L); its current node is satisfied |
//!
//! A satisfied request is consumed: its annotation is removed. The volume is judged from the
//! MPDCluster objects (port A), since the storage manager (D) has no read-only question:
//! two clusters created at the same instant can both pass, and the second is then
//! interrupted by the storage manager at run time (`STORAGE_REFUSED`).

use std::collections::BTreeMap;

use wf_engine::{async_trait, Admission, BoxError, Event, Refusal, State, StateResource, Verdict};

use crate::crd::{annotations, MPDCluster};
use crate::domain::admission as rules;
use crate::ports::{NodeInfo, PortError, Ports};
use crate::resource::MpdClusterResource;

/// The admission of the MPDCluster machine, over the ports.
#[derive(Clone)]
pub struct ClusterAdmission {
    ports: Ports,
}

impl std::fmt::Debug for ClusterAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAdmission").finish_non_exhaustive()
    }
}

fn refuse(refusal: Option<Refusal>) -> Option<Verdict> {
    refusal.map(Verdict::Refuse)
}

impl ClusterAdmission {
    /// An admission reading `ports` (A, K, L).
    pub fn new(ports: Ports) -> Self {
        ClusterAdmission { ports }
    }

    /// The verdict on moving `cr` into `target`.
    pub async fn verdict(&self, cr: &MPDCluster, target: &str) -> Result<Verdict, PortError> {
        let verdict = match target {
            "Creating" => self.create(cr).await?,
            "ModifyClass" => {
                self.class(
                    cr,
                    "spec.classInfoModifyTo.className",
                    &cr.spec.class_info_modify_to.class_name,
                )
                .await?
            }
            "UpgradeMinorVersion" => {
                let name = cr
                    .spec
                    .version_cfg_modify_to
                    .as_ref()
                    .map_or("", |v| v.version_name.as_str());
                self.version(cr, "spec.versionCfgModifyTo.versionName", name)
                    .await?
            }
            "AddRo" => match refuse(rules::check_follower_num(cr))
                .or_else(|| refuse(rules::check_engine_port(cr)))
            {
                Some(verdict) => Some(verdict),
                None => {
                    let (all, nodes) = (self.ports.clusters.list().await?, self.nodes().await?);
                    refuse(rules::check_nodes(cr, &all, &nodes, rules::ros_wanted(cr)))
                }
            },
            "SwitchRw" => Some(rules::switch_rw(cr)),
            "RestartIns" => refuse(rules::restart_ins(cr)),
            "RemoveRo" => refuse(rules::check_follower_num(cr).or_else(|| rules::remove_ins(cr))),
            "MigrateRo" | "MigrateRw" => Some(rules::migrate(cr, &self.nodes().await?)),
            _ => None,
        };
        Ok(verdict.unwrap_or(Verdict::Admit))
    }

    async fn create(&self, cr: &MPDCluster) -> Result<Option<Verdict>, PortError> {
        if let Some(refusal) =
            rules::check_follower_num(cr).or_else(|| rules::check_engine_port(cr))
        {
            return Ok(Some(Verdict::Refuse(refusal)));
        }
        if let Some(verdict) = self
            .class(
                cr,
                "spec.classInfo.className",
                &cr.spec.class_info.class_name,
            )
            .await?
        {
            return Ok(Some(verdict));
        }
        if let Some(verdict) = self
            .version(
                cr,
                "spec.versionCfg.versionName",
                &cr.spec.version_cfg.version_name,
            )
            .await?
        {
            return Ok(Some(verdict));
        }
        let all = self.ports.clusters.list().await?;
        if let Some(refusal) = rules::check_volume(cr, &all) {
            return Ok(Some(Verdict::Refuse(refusal)));
        }
        let nodes = self.nodes().await?;
        let new = rules::instances_to_place(cr);
        Ok(refuse(rules::check_nodes(cr, &all, &nodes, new)))
    }

    async fn class(
        &self,
        cr: &MPDCluster,
        field: &str,
        name: &str,
    ) -> Result<Option<Verdict>, PortError> {
        match self.ports.classes.class(name).await {
            Ok(_) => Ok(None),
            Err(PortError::NotFound { .. }) => {
                Ok(Some(Verdict::Refuse(rules::unknown_class(cr, field, name))))
            }
            Err(other) => Err(other),
        }
    }

    async fn version(
        &self,
        cr: &MPDCluster,
        field: &str,
        name: &str,
    ) -> Result<Option<Verdict>, PortError> {
        match self.ports.versions.version(name).await {
            Ok(_) => Ok(None),
            Err(PortError::NotFound { .. }) => Ok(Some(Verdict::Refuse(rules::unknown_version(
                cr, field, name,
            )))),
            Err(other) => Err(other),
        }
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, PortError> {
        self.ports.nodes.nodes().await
    }
}

/// The annotation a satisfied request of `target` is made of.
fn request_annotation(target: &str) -> Option<&'static str> {
    match target {
        "SwitchRw" => Some(annotations::SWITCH_RW),
        "MigrateRo" | "MigrateRw" => Some(annotations::MIGRATE),
        _ => None,
    }
}

#[async_trait]
impl Admission<MpdClusterResource> for ClusterAdmission {
    async fn admit(
        &self,
        resource: &MpdClusterResource,
        event: &Event,
        target: &State,
    ) -> Result<Verdict, BoxError> {
        let _ = event;
        let verdict = self.verdict(resource.cluster(), target.as_str()).await?;
        if verdict == Verdict::Satisfied {
            if let Some(key) = request_annotation(target.as_str()) {
                resource
                    .patch_annotations(&BTreeMap::from([(key.to_owned(), None)]))
                    .await?;
            }
        }
        Ok(verdict)
    }
}
