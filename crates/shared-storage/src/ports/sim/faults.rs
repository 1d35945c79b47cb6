//! Configuration, fault injection and the call log shared by every simulated port.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::world::World;
use super::Simulation;
use crate::ports::PortError;

/// How the simulated world behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// How long every port call sleeps before it runs (zero: no sleep at all).
    pub latency: Duration,
    /// The probability in `0.0..=1.0` that a port call fails with
    /// [`PortError::Unavailable`] before it changes anything.
    pub fail_rate: f64,
    /// Seeds the one random generator of the world (faults and passwords).
    pub seed: u64,
    /// How many calls a long operation stays [`Progress::Pending`](crate::ports::Progress)
    /// before it is done (0: done at the first call).
    pub ready_after_polls: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::ZERO,
            fail_rate: 0.0,
            seed: 0,
            ready_after_polls: 1,
        }
    }
}

/// How a recorded port call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimOutcome {
    /// The call succeeded (a `Pending` answer is a success).
    Ok,
    /// An injected fault: the call failed with `Unavailable` and changed nothing.
    Fault,
    /// The simulated system answered with this error.
    Error(PortError),
}

impl SimOutcome {
    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, SimOutcome::Ok)
    }
}

/// One port call as recorded in the call log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimCall {
    /// The call's number since the simulation started, from 0 (clearing the log keeps
    /// counting).
    pub seq: u64,
    /// The port (see [`super::port`]).
    pub port: &'static str,
    /// The operation: the trait method's name.
    pub op: &'static str,
    /// A short summary of the arguments.
    pub args: String,
    /// How it ended.
    pub outcome: SimOutcome,
}

/// The message of an injected fault.
pub const SIMULATED_FAILURE: &str = "simulated failure";

impl World {
    /// Runs one port call: logs it, injects a fault with probability `fail_rate` (before
    /// `f` runs, so a failed call changes nothing), else runs `f`.
    pub(super) fn run<T>(
        &mut self,
        port: &'static str,
        op: &'static str,
        args: String,
        f: impl FnOnce(&mut World) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        let seq = self.tick;
        self.tick += 1;
        let faulted = self.config.fail_rate > 0.0 && self.rng.f64() < self.config.fail_rate;
        let (result, outcome) = if faulted {
            let error = PortError::Unavailable {
                port,
                message: SIMULATED_FAILURE.to_string(),
            };
            (Err(error), SimOutcome::Fault)
        } else {
            let result = f(self);
            let outcome = match &result {
                Ok(_) => SimOutcome::Ok,
                Err(e) => SimOutcome::Error(e.clone()),
            };
            (result, outcome)
        };
        self.calls.push(SimCall {
            seq,
            port,
            op,
            args,
            outcome,
        });
        result
    }
}

impl Simulation {
    /// One port call: sleeps `latency` (never holding the lock), then runs `f` on the world
    /// through [`World::run`].
    pub(super) async fn call<T>(
        &self,
        port: &'static str,
        op: &'static str,
        args: String,
        f: impl FnOnce(&mut World) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        let latency = self.lock().config.latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut world = self.lock();
        let result = world.run(port, op, args, f);
        match world.save() {
            Ok(()) => result,
            Err(error) => Err(PortError::Unavailable {
                port,
                message: error.to_string(),
            }),
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> SimConfig {
        self.lock().config.clone()
    }

    /// Changes the fault rate from now on (e.g. 0.0 to let a test finish cleanly).
    pub fn set_fail_rate(&self, fail_rate: f64) {
        self.lock().config.fail_rate = fail_rate;
    }

    /// Changes the latency from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().config.latency = latency;
    }

    /// Every port call so far, in order.
    pub fn call_log(&self) -> Vec<SimCall> {
        self.lock().calls.clone()
    }

    /// Forgets the call log.
    pub fn clear_call_log(&self) {
        self.lock().calls.clear();
    }

    /// How many calls of `port`/`op` were made (whatever their outcome).
    pub fn count(&self, port: &str, op: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.port == port && c.op == op)
            .count()
    }

    /// How many calls of `port`/`op` succeeded.
    pub fn count_ok(&self, port: &str, op: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.port == port && c.op == op && c.outcome.is_ok())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::port;

    fn faulty(seed: u64) -> Simulation {
        Simulation::new(SimConfig {
            fail_rate: 0.5,
            seed,
            ..SimConfig::default()
        })
    }

    async fn outcomes(sim: &Simulation) -> Vec<bool> {
        let ports = sim.ports();
        let mut out = Vec::new();
        for _ in 0..64 {
            out.push(ports.nodes.nodes().await.is_ok());
        }
        out
    }

    #[tokio::test]
    async fn same_seed_gives_same_faults() {
        let a = outcomes(&faulty(7)).await;
        let b = outcomes(&faulty(7)).await;
        assert_eq!(a, b);
        assert!(a.contains(&true) && a.contains(&false));
        let c = outcomes(&faulty(8)).await;
        assert_ne!(a, c);
    }

    #[tokio::test]
    async fn zero_fail_rate_never_fails() {
        let sim = Simulation::new(SimConfig::default());
        assert!(outcomes(&sim).await.iter().all(|ok| *ok));
    }

    #[tokio::test]
    async fn fail_rate_one_always_fails_with_unavailable() {
        let sim = Simulation::new(SimConfig {
            fail_rate: 1.0,
            ..SimConfig::default()
        });
        let err = sim.ports().ids.next_ids(1).await.unwrap_err();
        assert_eq!(
            err,
            PortError::Unavailable {
                port: port::IDS,
                message: SIMULATED_FAILURE.to_string()
            }
        );
    }

    #[tokio::test]
    async fn failed_call_changes_nothing() {
        let sim = Simulation::new(SimConfig {
            fail_rate: 1.0,
            ..SimConfig::default()
        });
        let ports = sim.ports();
        assert!(ports.ids.next_ids(5).await.is_err());
        assert!(ports
            .ports
            .allocate_port(crate::ports::PortPurpose::ClusterManager)
            .await
            .is_err());
        sim.set_fail_rate(0.0);
        assert_eq!(ports.ids.next_ids(1).await.unwrap(), vec![1000]);
        assert_eq!(
            ports
                .ports
                .allocate_port(crate::ports::PortPurpose::ClusterManager)
                .await
                .unwrap(),
            30000
        );
    }

    #[tokio::test]
    async fn every_call_is_logged_with_its_outcome() {
        let sim = Simulation::new(SimConfig::default());
        let ports = sim.ports();
        ports.ids.next_ids(2).await.unwrap();
        ports.classes.class("nope").await.unwrap_err();
        sim.set_fail_rate(1.0);
        ports.ids.next_ids(2).await.unwrap_err();
        let log = sim.call_log();
        assert_eq!(log.len(), 3);
        assert_eq!(
            (log[0].port, log[0].op, log[0].args.as_str()),
            (port::IDS, "next_ids", "n=2")
        );
        assert_eq!(log[0].outcome, SimOutcome::Ok);
        assert!(matches!(
            log[1].outcome,
            SimOutcome::Error(PortError::NotFound { .. })
        ));
        assert_eq!(log[2].outcome, SimOutcome::Fault);
        assert_eq!(sim.count(port::IDS, "next_ids"), 2);
        assert_eq!(sim.count_ok(port::IDS, "next_ids"), 1);
        sim.clear_call_log();
        assert!(sim.call_log().is_empty());
        sim.set_fail_rate(0.0);
        ports.ids.next_ids(1).await.unwrap();
        assert_eq!(sim.call_log()[0].seq, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_every_call() {
        let sim = Simulation::new(SimConfig {
            latency: Duration::from_millis(250),
            ..SimConfig::default()
        });
        let start = tokio::time::Instant::now();
        sim.ports().ids.next_ids(1).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(250));
    }
}
