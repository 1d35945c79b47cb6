//! I. Database accounts (the account Secrets).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{port, Simulation};
use crate::ports::{Account, AccountStore, ClusterRef, PortError};

/// The length of a generated password.
const PASSWORD_LEN: usize = 16;

/// One account Secret, `<cluster>-<logicId>-<name>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct AccountRecord {
    pub(super) logic_id: String,
    pub(super) account: Account,
}

/// The simulated [`AccountStore`].
pub(super) struct SimAccountStore(pub(super) Simulation);

#[async_trait]
impl AccountStore for SimAccountStore {
    async fn ensure_account(
        &self,
        cluster: &ClusterRef,
        logic_id: &str,
        name: &str,
        privilege: u32,
    ) -> Result<Account, PortError> {
        let args = format!(
            "{cluster} {}-{logic_id}-{name} privilege={privilege}",
            cluster.name
        );
        self.0
            .call(port::ACCOUNTS, "ensure_account", args, |w| {
                if let Some(existing) = w.accounts.get(cluster).and_then(|a| a.get(name)) {
                    return Ok(existing.account.clone());
                }
                let password: String = (0..PASSWORD_LEN).map(|_| w.rng.alphanumeric()).collect();
                let account = Account {
                    name: name.to_string(),
                    password,
                    privilege,
                };
                let record = AccountRecord {
                    logic_id: logic_id.to_string(),
                    account: account.clone(),
                };
                w.accounts
                    .entry(cluster.clone())
                    .or_default()
                    .insert(name.to_string(), record);
                Ok(account)
            })
            .await
    }

    async fn accounts(&self, cluster: &ClusterRef) -> Result<Vec<Account>, PortError> {
        self.0
            .call(port::ACCOUNTS, "accounts", cluster.to_string(), |w| {
                Ok(w.cluster_accounts(cluster))
            })
            .await
    }
}

impl super::world::World {
    fn cluster_accounts(&self, cluster: &ClusterRef) -> Vec<Account> {
        self.accounts
            .get(cluster)
            .map(|a| a.values().map(|r| r.account.clone()).collect())
            .unwrap_or_default()
    }
}

impl Simulation {
    /// The accounts of `cluster`, by name.
    pub fn accounts(&self, cluster: &ClusterRef) -> Vec<Account> {
        self.lock().cluster_accounts(cluster)
    }

    /// The Secret names of `cluster`'s accounts (`<cluster>-<logicId>-<name>`), sorted.
    pub fn account_secrets(&self, cluster: &ClusterRef) -> Vec<String> {
        let world = self.lock();
        let mut names: Vec<String> = world
            .accounts
            .get(cluster)
            .map(|a| {
                a.values()
                    .map(|r| format!("{}-{}-{}", cluster.name, r.logic_id, r.account.name))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::testing::{c1, sim};
    use crate::ports::sim::SimConfig;

    #[tokio::test]
    async fn ensure_account_creates_once_and_returns_the_same_account() {
        let sim = sim(1);
        let store = sim.ports().accounts;
        let a = store
            .ensure_account(&c1(), "1000", "aurora", 7)
            .await
            .unwrap();
        assert_eq!(a.password.len(), PASSWORD_LEN);
        assert_eq!(a.privilege, 7);
        let again = store
            .ensure_account(&c1(), "1000", "aurora", 7)
            .await
            .unwrap();
        assert_eq!(a, again);
        let r = store
            .ensure_account(&c1(), "1000", "replicator", 15)
            .await
            .unwrap();
        assert_ne!(a.password, r.password);
        let names: Vec<_> = store
            .accounts(&c1())
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["aurora", "replicator"]);
        assert_eq!(sim.accounts(&c1()).len(), 2);
        assert_eq!(
            sim.account_secrets(&c1()),
            ["c1-1000-aurora", "c1-1000-replicator"]
        );
        assert!(store
            .accounts(&ClusterRef::new("default", "c2"))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn passwords_come_from_the_seed() {
        let password = |seed| async move {
            let sim = Simulation::new(SimConfig {
                seed,
                ..SimConfig::default()
            });
            sim.ports()
                .accounts
                .ensure_account(&c1(), "1000", "aurora", 7)
                .await
                .unwrap()
                .password
        };
        assert_eq!(password(1).await, password(1).await);
        assert_ne!(password(1).await, password(2).await);
    }

    #[tokio::test]
    async fn passwords_never_reach_the_call_log() {
        let sim = sim(1);
        let a = sim
            .ports()
            .accounts
            .ensure_account(&c1(), "1000", "aurora", 7)
            .await
            .unwrap();
        assert!(!format!("{:?}", sim.call_log()).contains(&a.password));
    }

    #[tokio::test]
    async fn failed_call_changes_nothing() {
        let sim = sim(1);
        sim.set_fail_rate(1.0);
        assert!(sim
            .ports()
            .accounts
            .ensure_account(&c1(), "1000", "aurora", 7)
            .await
            .is_err());
        assert!(sim.accounts(&c1()).is_empty());
    }
}
