//! B. Cluster-scope ids and C. host ports.

use async_trait::async_trait;

use super::{port, Simulation};
use crate::ports::{IdAllocator, PortAllocator, PortCheck, PortError, PortPurpose};

/// The lowest engine port allowed.
const ENGINE_PORT_MIN: i32 = 1024;
/// The highest engine port allowed.
const ENGINE_PORT_MAX: i32 = 65535;

/// The simulated [`IdAllocator`]: one counter from 1000.
pub(super) struct SimIds(pub(super) Simulation);

/// The simulated [`PortAllocator`]: ports from 30000 upward, never reused.
pub(super) struct SimPortAllocator(pub(super) Simulation);

#[async_trait]
impl IdAllocator for SimIds {
    async fn next_ids(&self, n: usize) -> Result<Vec<u64>, PortError> {
        self.0
            .call(port::IDS, "next_ids", format!("n={n}"), |w| {
                let start = w.next_id;
                w.next_id += n as u64;
                Ok((start..w.next_id).collect())
            })
            .await
    }
}

#[async_trait]
impl PortAllocator for SimPortAllocator {
    async fn allocate_port(&self, purpose: PortPurpose) -> Result<i32, PortError> {
        self.0
            .call(port::PORTS, "allocate_port", format!("{purpose:?}"), |w| {
                while w.used_ports.contains(&w.next_port) {
                    w.next_port += 1;
                }
                if w.next_port > ENGINE_PORT_MAX {
                    return Err(PortError::Unavailable {
                        port: port::PORTS,
                        message: "no free host port left".to_string(),
                    });
                }
                let allocated = w.next_port;
                w.used_ports.insert(allocated);
                w.next_port += 1;
                Ok(allocated)
            })
            .await
    }

    async fn check_engine_port(&self, engine_port: i32) -> Result<PortCheck, PortError> {
        self.0
            .call(
                port::PORTS,
                "check_engine_port",
                engine_port.to_string(),
                |w| {
                    Ok(
                        if !(ENGINE_PORT_MIN..=ENGINE_PORT_MAX).contains(&engine_port) {
                            PortCheck::OutOfRange
                        } else if w.used_ports.contains(&engine_port) {
                            PortCheck::InUse
                        } else {
                            PortCheck::Free
                        },
                    )
                },
            )
            .await
    }
}

impl Simulation {
    /// The id the next `next_ids` call starts with.
    pub fn peek_next_id(&self) -> u64 {
        self.lock().next_id
    }

    /// Every host port allocated or marked in use, in order.
    pub fn used_ports(&self) -> Vec<i32> {
        self.lock().used_ports.iter().copied().collect()
    }

    /// Marks `port` as used on some node: `check_engine_port` reports it `InUse` and
    /// `allocate_port` skips it.
    pub fn mark_port_in_use(&self, port: i32) {
        self.lock().used_ports.insert(port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::testing::sim;

    #[tokio::test]
    async fn ids_count_up_from_1000() {
        let sim = sim(1);
        let ids = sim.ports().ids;
        assert_eq!(ids.next_ids(3).await.unwrap(), vec![1000, 1001, 1002]);
        assert_eq!(ids.next_ids(0).await.unwrap(), Vec::<u64>::new());
        assert_eq!(ids.next_ids(1).await.unwrap(), vec![1003]);
        assert_eq!(sim.peek_next_id(), 1004);
    }

    #[tokio::test]
    async fn ports_are_allocated_from_30000_and_never_reused() {
        let sim = sim(1);
        let ports = sim.ports().ports;
        assert_eq!(
            ports
                .allocate_port(PortPurpose::ClusterManager)
                .await
                .unwrap(),
            30000
        );
        sim.mark_port_in_use(30001);
        assert_eq!(
            ports.allocate_port(PortPurpose::Consensus).await.unwrap(),
            30002
        );
        assert_eq!(
            ports.allocate_port(PortPurpose::Consensus).await.unwrap(),
            30003
        );
        assert_eq!(sim.used_ports(), vec![30000, 30001, 30002, 30003]);
    }

    #[tokio::test]
    async fn engine_port_check_reports_range_and_use() {
        let sim = sim(1);
        let ports = sim.ports().ports;
        assert_eq!(
            ports.check_engine_port(1023).await.unwrap(),
            PortCheck::OutOfRange
        );
        assert_eq!(
            ports.check_engine_port(65536).await.unwrap(),
            PortCheck::OutOfRange
        );
        assert_eq!(
            ports.check_engine_port(5432).await.unwrap(),
            PortCheck::Free
        );
        assert_eq!(
            ports.check_engine_port(1024).await.unwrap(),
            PortCheck::Free
        );
        let allocated = ports
            .allocate_port(PortPurpose::ClusterManager)
            .await
            .unwrap();
        assert_eq!(
            ports.check_engine_port(allocated).await.unwrap(),
            PortCheck::InUse
        );
    }

    #[tokio::test]
    async fn failed_call_changes_nothing() {
        let sim = sim(1);
        sim.set_fail_rate(1.0);
        let p = sim.ports();
        assert!(p.ids.next_ids(4).await.is_err());
        assert!(p
            .ports
            .allocate_port(PortPurpose::ClusterManager)
            .await
            .is_err());
        assert_eq!(sim.peek_next_id(), 1000);
        assert!(sim.used_ports().is_empty());
    }
}
