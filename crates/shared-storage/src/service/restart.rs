//! Restarts, switchover on request, storage growth (domain §2.5 restart_ins,
//! restart_cluster, grow_storage; §4.3).

use super::RunMarkers;

use super::{cluster_ref, Outcome, SharedStorageService};
use crate::domain::{ids, DbIns, SharedStorageCluster};
use crate::ports::Progress;

fn sorted_ros(model: &SharedStorageCluster) -> Vec<DbIns> {
    let mut ros: Vec<DbIns> = model.ros.values().cloned().collect();
    ros.sort_by(|a, b| ids::compare_ins_ids(&a.ins_id, &b.ins_id));
    ros
}

impl SharedStorageService {
    /// Restarts one instance once (marked `<prefix>:<insId>`), then waits for its health.
    pub async fn restart_instance_once(
        &self,
        model: &SharedStorageCluster,
        seen: &mut RunMarkers,
        prefix: &str,
        ins: &DbIns,
    ) -> Outcome {
        let marker = format!("{prefix}:{}", ins.ins_id);
        if !seen.contains(&marker) {
            self.ports
                .engine
                .restart(&Self::engine_target(model, ins))
                .await?;
            self.mark(&cluster_ref(model), seen, &marker).await?;
        }
        self.health_check(model, ins).await
    }

    /// RestartIns: restarts the instance `ins_id` and waits for its health; an unknown id is
    /// a no-op.
    pub async fn restart_ins(
        &self,
        model: &SharedStorageCluster,
        seen: &mut RunMarkers,
        ins_id: Option<&str>,
    ) -> Outcome {
        let Some((_, ins)) = ins_id.and_then(|id| model.find(id)) else {
            return Ok(Progress::Done(()));
        };
        let ins = ins.clone();
        self.restart_instance_once(model, seen, "restartIns", &ins)
            .await
    }

    /// RestartCluster / RestartClusterIfNeed: stops every RO, restarts the RW, starts every
    /// RO, waits for all to be healthy. Each action happens once per flow (markers under
    /// `prefix`).
    pub async fn restart_cluster(
        &self,
        model: &SharedStorageCluster,
        seen: &mut RunMarkers,
        prefix: &str,
    ) -> Outcome {
        let cluster = cluster_ref(model);
        let engine = &self.ports.engine;
        let ros = sorted_ros(model);
        let stopped = format!("{prefix}:stop-ros");
        if !seen.contains(&stopped) {
            for ro in &ros {
                if let Err(err) = engine.graceful_stop(&Self::engine_target(model, ro)).await {
                    tracing::warn!(ins = %ro.ins_id, %err, "graceful stop failed; forcing");
                    engine.force_stop(&Self::engine_target(model, ro)).await?;
                }
            }
            self.mark(&cluster, seen, &stopped).await?;
        }
        if let Some(rw) = model.rw.clone() {
            if let Progress::Pending { reason } =
                self.restart_instance_once(model, seen, prefix, &rw).await?
            {
                return Ok(Progress::Pending { reason });
            }
        }
        let started = format!("{prefix}:start-ros");
        if !seen.contains(&started) {
            for ro in &ros {
                engine.start(&Self::engine_target(model, ro)).await?;
            }
            self.mark(&cluster, seen, &started).await?;
        }
        for ro in &ros {
            if let Progress::Pending { reason } = self.health_check(model, ro).await? {
                return Ok(Progress::Pending { reason });
            }
        }
        Ok(Progress::Done(()))
    }

    /// SwitchRw: a planned switchover to the RO named by `switchRw`, done when the target is
    /// the RW and healthy. A target that is the RW already (before the flow, or after an
    /// earlier call of this run saved the switch) only waits for its health, so a re-run
    /// keeps waiting for the new RW; a target that is not an RO is refused at once instead
    /// of burning retries (weakness 26) — the cleanup then drops the request.
    pub async fn switch_rw(
        &self,
        model: &mut SharedStorageCluster,
        target: Option<&str>,
    ) -> Outcome {
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            return Ok(Progress::Done(()));
        };
        if model.rw_id() != target {
            if !model.ros.contains_key(target) {
                tracing::warn!(cluster = %cluster_ref(model), target, "switchRw target is not a read-only instance; ignoring the request");
                return Ok(Progress::Done(()));
            }
            if let Progress::Pending { reason } = self.ensure_rw(model, target).await? {
                return Ok(Progress::Pending { reason });
            }
        }
        match model.rw.clone() {
            Some(rw) => self.health_check(model, &rw).await,
            None => Ok(Progress::Done(())),
        }
    }

    /// ExtendStorageFs: grows PFS on every RO, then on the RW, each once.
    pub async fn grow_storage(
        &self,
        model: &SharedStorageCluster,
        seen: &mut RunMarkers,
    ) -> Outcome {
        let cluster = cluster_ref(model);
        let mut order = sorted_ros(model);
        order.extend(model.rw.clone());
        for ins in order {
            let marker = format!("extendStorage:{}", ins.ins_id);
            if !seen.contains(&marker) {
                self.ports
                    .engine
                    .grow_storage(&Self::engine_target(model, &ins))
                    .await?;
                self.mark(&cluster, seen, &marker).await?;
            }
        }
        Ok(Progress::Done(()))
    }
}
