//! G. The engine agent inside each pod.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::pods::SimEngine;
use super::world::World;
use super::{port, Simulation};
use crate::ports::{Account, EngineAgent, EngineTarget, Health, PortError};

/// The simulated [`EngineAgent`].
pub(super) struct SimEngineAgent(pub(super) Simulation);

impl World {
    /// The engine of the target's pod: NotFound without the pod, Unavailable while the pod
    /// is not ready.
    fn engine(&mut self, target: &EngineTarget) -> Result<&mut SimEngine, PortError> {
        let record = self.pod_mut(port::ENGINE, &target.namespace, &target.pod_name)?;
        if !record.pod.ready {
            return Err(PortError::Unavailable {
                port: port::ENGINE,
                message: format!("pod {} is not ready", target.pod_name),
            });
        }
        Ok(&mut record.pod.engine)
    }

    /// The engine of an installed target.
    fn installed_engine(&mut self, target: &EngineTarget) -> Result<&mut SimEngine, PortError> {
        let engine = self.engine(target)?;
        if !engine.installed {
            return Err(PortError::Rejected {
                port: port::ENGINE,
                message: format!("the engine of {} is not installed", target.pod_name),
            });
        }
        Ok(engine)
    }
}

impl SimEngine {
    fn start(&mut self) {
        if !self.running {
            self.running = true;
            self.starting_up = true;
            self.starts += 1;
        }
    }

    fn stop(&mut self) {
        if self.running {
            self.running = false;
            self.starting_up = false;
            self.stops += 1;
        }
    }
}

fn target_summary(target: &EngineTarget) -> String {
    format!(
        "{}/{} ins={}{}",
        target.namespace,
        target.pod_name,
        target.ins_id,
        if target.is_rw { " rw" } else { "" }
    )
}

#[async_trait]
impl EngineAgent for SimEngineAgent {
    async fn install(&self, target: &EngineTarget) -> Result<(), PortError> {
        self.0
            .call(port::ENGINE, "install", target_summary(target), |w| {
                let engine = w.engine(target)?;
                if !engine.installed {
                    engine.installed = true;
                    engine.start();
                }
                Ok(())
            })
            .await
    }

    async fn setup_log_agent(&self, target: &EngineTarget) -> Result<(), PortError> {
        self.0
            .call(
                port::ENGINE,
                "setup_log_agent",
                target_summary(target),
                |w| {
                    w.engine(target)?.log_agent = true;
                    Ok(())
                },
            )
            .await
    }

    async fn start(&self, target: &EngineTarget) -> Result<(), PortError> {
        self.0
            .call(port::ENGINE, "start", target_summary(target), |w| {
                w.installed_engine(target)?.start();
                Ok(())
            })
            .await
    }

    async fn graceful_stop(&self, target: &EngineTarget) -> Result<(), PortError> {
        self.0
            .call(port::ENGINE, "graceful_stop", target_summary(target), |w| {
                w.engine(target)?.stop();
                Ok(())
            })
            .await
    }

    async fn force_stop(&self, target: &EngineTarget) -> Result<(), PortError> {
        self.0
            .call(port::ENGINE, "force_stop", target_summary(target), |w| {
                w.engine(target)?.stop();
                Ok(())
            })
            .await
    }

    async fn restart(&self, target: &EngineTarget) -> Result<(), PortError> {
        self.0
            .call(port::ENGINE, "restart", target_summary(target), |w| {
                let engine = w.installed_engine(target)?;
                engine.stop();
                engine.start();
                Ok(())
            })
            .await
    }

    async fn create_accounts(
        &self,
        target: &EngineTarget,
        accounts: &[Account],
    ) -> Result<(), PortError> {
        let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        let args = format!("{} accounts={}", target_summary(target), names.join(","));
        self.0
            .call(port::ENGINE, "create_accounts", args, |w| {
                let engine = w.installed_engine(target)?;
                for name in names {
                    if !engine.accounts.iter().any(|a| a == name) {
                        engine.accounts.push(name.to_string());
                    }
                }
                engine.accounts.sort();
                Ok(())
            })
            .await
    }

    async fn update_params(
        &self,
        target: &EngineTarget,
        params: &BTreeMap<String, String>,
    ) -> Result<(), PortError> {
        let keys: Vec<&str> = params.keys().map(String::as_str).collect();
        let args = format!("{} params={}", target_summary(target), keys.join(","));
        self.0
            .call(port::ENGINE, "update_params", args, |w| {
                let engine = w.engine(target)?;
                engine
                    .params
                    .extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(())
            })
            .await
    }

    async fn grow_storage(&self, target: &EngineTarget) -> Result<(), PortError> {
        self.0
            .call(port::ENGINE, "grow_storage", target_summary(target), |w| {
                w.installed_engine(target)?.grown += 1;
                Ok(())
            })
            .await
    }

    async fn health(&self, target: &EngineTarget) -> Result<Health, PortError> {
        self.0
            .call(port::ENGINE, "health", target_summary(target), |w| {
                let record = w.pod_mut(port::ENGINE, &target.namespace, &target.pod_name)?;
                if !record.pod.ready {
                    return Ok(Health::ContainerNotFound);
                }
                let engine = &mut record.pod.engine;
                Ok(if !engine.running {
                    Health::Unknown
                } else if engine.starting_up {
                    engine.starting_up = false;
                    Health::StartingUp
                } else {
                    Health::Ok
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::testing::{c1, sim};
    use crate::ports::InsPodSpec;

    fn target(pod: &str) -> EngineTarget {
        EngineTarget {
            namespace: "default".into(),
            pod_name: pod.into(),
            ins_id: "1002".into(),
            is_rw: true,
        }
    }

    async fn with_pod(ready_after: u32) -> (Simulation, std::sync::Arc<dyn EngineAgent>) {
        let sim = sim(ready_after);
        let p = sim.ports();
        let spec = InsPodSpec {
            cluster: c1(),
            pod_name: "p".into(),
            port: 5432,
            ..Default::default()
        };
        p.pods.ensure_pod(&spec).await.unwrap();
        (sim, p.engine)
    }

    fn engine(sim: &Simulation) -> SimEngine {
        sim.pod("default", "p").unwrap().engine
    }

    #[tokio::test]
    async fn commands_on_a_missing_pod_are_not_found() {
        let (_sim, agent) = with_pod(0).await;
        let t = target("missing");
        assert!(agent.install(&t).await.unwrap_err().is_not_found());
        assert!(agent.start(&t).await.unwrap_err().is_not_found());
        assert!(agent.health(&t).await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn a_pod_that_is_not_ready_has_no_container_yet() {
        let (_sim, agent) = with_pod(1).await;
        assert_eq!(
            agent.health(&target("p")).await.unwrap(),
            Health::ContainerNotFound
        );
        let err = agent.install(&target("p")).await.unwrap_err();
        assert!(matches!(err, PortError::Unavailable { .. }));
    }

    #[tokio::test]
    async fn install_starts_the_engine_which_starts_up_for_one_probe() {
        let (sim, agent) = with_pod(0).await;
        agent.install(&target("p")).await.unwrap();
        agent.install(&target("p")).await.unwrap();
        let e = engine(&sim);
        assert!(e.installed && e.running);
        assert_eq!(e.starts, 1);
        assert_eq!(
            agent.health(&target("p")).await.unwrap(),
            Health::StartingUp
        );
        assert_eq!(agent.health(&target("p")).await.unwrap(), Health::Ok);
        assert_eq!(agent.health(&target("p")).await.unwrap(), Health::Ok);
    }

    #[tokio::test]
    async fn start_needs_an_installed_engine() {
        let (_sim, agent) = with_pod(0).await;
        let err = agent.start(&target("p")).await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
    }

    #[tokio::test]
    async fn stops_stop_and_start_starts_up_again() {
        let (sim, agent) = with_pod(0).await;
        let t = target("p");
        agent.install(&t).await.unwrap();
        agent.graceful_stop(&t).await.unwrap();
        assert!(!engine(&sim).running);
        assert_eq!(agent.health(&t).await.unwrap(), Health::Unknown);
        agent.start(&t).await.unwrap();
        agent.force_stop(&t).await.unwrap();
        agent.force_stop(&t).await.unwrap();
        assert!(!engine(&sim).running);
        agent.start(&t).await.unwrap();
        assert_eq!(agent.health(&t).await.unwrap(), Health::StartingUp);
        assert_eq!(agent.health(&t).await.unwrap(), Health::Ok);
        let e = engine(&sim);
        assert_eq!((e.starts, e.stops), (3, 2));
    }

    #[tokio::test]
    async fn restart_is_stop_then_start() {
        let (sim, agent) = with_pod(0).await;
        let t = target("p");
        agent.install(&t).await.unwrap();
        agent.health(&t).await.unwrap();
        agent.restart(&t).await.unwrap();
        let e = engine(&sim);
        assert!(e.running && e.starting_up);
        assert_eq!((e.starts, e.stops), (2, 1));
        agent.graceful_stop(&t).await.unwrap();
        agent.restart(&t).await.unwrap();
        assert!(engine(&sim).running);
    }

    #[tokio::test]
    async fn log_agent_accounts_params_and_growth_are_recorded() {
        let (sim, agent) = with_pod(0).await;
        let t = target("p");
        agent.install(&t).await.unwrap();
        agent.setup_log_agent(&t).await.unwrap();
        let account = |name: &str| Account {
            name: name.into(),
            password: "x".into(),
            privilege: 7,
        };
        agent
            .create_accounts(&t, &[account("replicator"), account("aurora")])
            .await
            .unwrap();
        agent
            .create_accounts(&t, &[account("aurora")])
            .await
            .unwrap();
        agent
            .update_params(
                &t,
                &BTreeMap::from([("work_mem".to_string(), "8MB".to_string())]),
            )
            .await
            .unwrap();
        agent
            .update_params(
                &t,
                &BTreeMap::from([("max_connections".to_string(), "900".to_string())]),
            )
            .await
            .unwrap();
        agent.grow_storage(&t).await.unwrap();
        let e = engine(&sim);
        assert!(e.log_agent);
        assert_eq!(e.accounts, ["aurora", "replicator"]);
        assert_eq!(e.params.len(), 2);
        assert_eq!(e.grown, 1);
        assert!(!sim.call_log().iter().any(|c| c.args.contains("password")));
    }

    #[tokio::test]
    async fn a_deleted_pod_loses_its_engine() {
        let (sim, agent) = with_pod(0).await;
        agent.install(&target("p")).await.unwrap();
        let pods = sim.ports().pods;
        while !pods.delete_pod("default", "p").await.unwrap().is_done() {}
        assert!(agent.health(&target("p")).await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn failed_call_changes_nothing() {
        let (sim, agent) = with_pod(0).await;
        sim.set_fail_rate(1.0);
        assert!(agent.install(&target("p")).await.is_err());
        assert_eq!(engine(&sim), SimEngine::default());
    }
}
