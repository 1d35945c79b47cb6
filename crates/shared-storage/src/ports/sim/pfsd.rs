//! H. The pfsd tool inside each pod.

use async_trait::async_trait;

use super::{port, Simulation};
use crate::ports::{EngineTarget, PfsdTool, PortError, Progress};

/// The simulated [`PfsdTool`]: pending once, then running.
pub(super) struct SimPfsdTool(pub(super) Simulation);

#[async_trait]
impl PfsdTool for SimPfsdTool {
    async fn start_pfsd(
        &self,
        target: &EngineTarget,
        config: &str,
        volume_id: &str,
    ) -> Result<Progress, PortError> {
        let args = format!(
            "{}/{} volume={volume_id} config={config}",
            target.namespace, target.pod_name
        );
        self.0
            .call(port::PFSD, "start_pfsd", args, |w| {
                let record = w.pod_mut(port::PFSD, &target.namespace, &target.pod_name)?;
                if record.pod.terminating {
                    return Err(PortError::Unavailable {
                        port: port::PFSD,
                        message: format!("pod {} is terminating", target.pod_name),
                    });
                }
                let pod = &mut record.pod;
                if pod.pfsd_running && pod.pfsd_volume_id == volume_id {
                    return Ok(Progress::Done(()));
                }
                if record.pfsd_starting {
                    record.pfsd_starting = false;
                    pod.pfsd_running = true;
                    pod.pfsd_config = config.to_string();
                    pod.pfsd_volume_id = volume_id.to_string();
                    return Ok(Progress::Done(()));
                }
                record.pfsd_starting = true;
                Ok(Progress::pending(format!(
                    "pfsd starting in {}",
                    target.pod_name
                )))
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
            is_rw: false,
        }
    }

    #[tokio::test]
    async fn pfsd_is_pending_once_then_done() {
        let sim = sim(3);
        let p = sim.ports();
        let spec = InsPodSpec {
            cluster: c1(),
            pod_name: "p".into(),
            port: 5432,
            ..Default::default()
        };
        p.pods.ensure_pod(&spec).await.unwrap();
        assert!(!p
            .pfsd
            .start_pfsd(&target("p"), "-w 2", "wwid")
            .await
            .unwrap()
            .is_done());
        assert!(!sim.pod("default", "p").unwrap().pfsd_running);
        assert!(p
            .pfsd
            .start_pfsd(&target("p"), "-w 2", "wwid")
            .await
            .unwrap()
            .is_done());
        let pod = sim.pod("default", "p").unwrap();
        assert!(pod.pfsd_running);
        assert_eq!(
            (pod.pfsd_config.as_str(), pod.pfsd_volume_id.as_str()),
            ("-w 2", "wwid")
        );
        assert!(p
            .pfsd
            .start_pfsd(&target("p"), "-w 2", "wwid")
            .await
            .unwrap()
            .is_done());
        assert_eq!(sim.count_ok(port::PFSD, "start_pfsd"), 3);
    }

    #[tokio::test]
    async fn pfsd_in_a_missing_pod_is_not_found() {
        let sim = sim(1);
        let err = sim
            .ports()
            .pfsd
            .start_pfsd(&target("p"), "", "wwid")
            .await
            .unwrap_err();
        assert!(err.is_not_found());
    }
}
