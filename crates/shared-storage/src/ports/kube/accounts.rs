//! I. Database accounts, one Opaque Secret each: `<cluster>-<logicInsId>-<account>` in the
//! cluster's namespace, keys `Account`, `Password` and `Priviledge_type` (sic, a decimal
//! string), label `mpdcluster_name=<cluster>`, owned by the MPDCluster (so it goes with
//! it).
//!
//! A missing account is created with a password of 15 characters from `[0-9a-zA-Z]`, drawn
//! from the operating system's CSPRNG (`rand`'s thread generator). An existing Secret is
//! never written: if two writers create one at once, the loser reads the winner's. Listing
//! skips Secrets with a missing key or a privilege that is not a number (logged, without
//! their contents). No password reaches a log line or an error message.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use rand::distr::{Alphanumeric, SampleString};

use super::api_error::{is_already_exists, port_error};
use super::owner::cluster_owner;
use super::KubePortsConfig;
use crate::ports::sim::port::ACCOUNTS;
use crate::ports::{Account, AccountStore, ClusterRef, PortError};

/// The label that ties an account Secret to its cluster.
pub const CLUSTER_LABEL: &str = "mpdcluster_name";
/// The key of the account name.
pub const ACCOUNT_KEY: &str = "Account";
/// The key of the password.
pub const PASSWORD_KEY: &str = "Password";
/// The key of the privilege type (spelled as the original spells it).
pub const PRIVILEGE_KEY: &str = "Priviledge_type";
/// The length of a generated password.
pub const PASSWORD_LEN: usize = 15;

/// The production [`AccountStore`], on Secrets.
#[derive(Clone)]
pub struct KubeAccountStore {
    client: Client,
}

impl std::fmt::Debug for KubeAccountStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeAccountStore").finish_non_exhaustive()
    }
}

/// A fresh password from the CSPRNG.
fn generate_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LEN)
}

/// Why a Secret is not a readable account (names the key, never a value).
fn parse_account(secret: &Secret) -> Result<Account, String> {
    let data = secret.data.as_ref();
    let text = |key: &str| -> Result<String, String> {
        let ByteString(bytes) = data
            .and_then(|d| d.get(key))
            .ok_or_else(|| format!("key {key} is missing"))?;
        String::from_utf8(bytes.clone()).map_err(|_| format!("key {key} is not UTF-8"))
    };
    let name = text(ACCOUNT_KEY)?;
    let password = text(PASSWORD_KEY)?;
    let privilege = text(PRIVILEGE_KEY)?
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("key {PRIVILEGE_KEY} is not a number"))?;
    Ok(Account {
        name,
        password,
        privilege,
    })
}

fn describe(namespace: &str, name: &str) -> String {
    format!("secret {namespace}/{name}")
}

impl KubeAccountStore {
    /// The store on `client`. It needs no settings; `config` is taken for uniformity with
    /// the other adapters.
    pub fn new(client: Client, config: Arc<KubePortsConfig>) -> Self {
        let _ = config;
        KubeAccountStore { client }
    }

    fn api(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The account in an existing Secret, or a clear error naming the Secret and key.
    fn existing(namespace: &str, secret: &Secret) -> Result<Account, PortError> {
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        parse_account(secret).map_err(|why| PortError::Rejected {
            port: ACCOUNTS,
            message: format!(
                "{}: {why}; the Secret is left as it is",
                describe(namespace, name)
            ),
        })
    }
}

#[async_trait]
impl AccountStore for KubeAccountStore {
    async fn ensure_account(
        &self,
        cluster: &ClusterRef,
        logic_id: &str,
        name: &str,
        privilege: u32,
    ) -> Result<Account, PortError> {
        let ns = cluster.namespace.as_str();
        let secret_name = format!("{}-{logic_id}-{name}", cluster.name);
        let what = describe(ns, &secret_name);
        let api = self.api(ns);
        if let Some(secret) = api
            .get_opt(&secret_name)
            .await
            .map_err(|e| port_error(ACCOUNTS, &what, e))?
        {
            return Self::existing(ns, &secret);
        }
        let owner = cluster_owner(&self.client, ACCOUNTS, cluster).await?;
        let account = Account {
            name: name.to_owned(),
            password: generate_password(),
            privilege,
        };
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(secret_name.clone()),
                namespace: Some(ns.to_owned()),
                labels: Some(BTreeMap::from([(
                    CLUSTER_LABEL.to_owned(),
                    cluster.name.clone(),
                )])),
                owner_references: Some(vec![owner]),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([
                (ACCOUNT_KEY.to_owned(), ByteString(name.as_bytes().to_vec())),
                (
                    PASSWORD_KEY.to_owned(),
                    ByteString(account.password.as_bytes().to_vec()),
                ),
                (
                    PRIVILEGE_KEY.to_owned(),
                    ByteString(privilege.to_string().into_bytes()),
                ),
            ])),
            ..Secret::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(secret = %what, account = name, "created the account Secret");
                Ok(account)
            }
            Err(e) if is_already_exists(&e) => {
                // Another writer created it first: theirs is the account.
                let secret = api
                    .get(&secret_name)
                    .await
                    .map_err(|e| port_error(ACCOUNTS, &what, e))?;
                Self::existing(ns, &secret)
            }
            Err(e) => Err(port_error(ACCOUNTS, &what, e)),
        }
    }

    async fn accounts(&self, cluster: &ClusterRef) -> Result<Vec<Account>, PortError> {
        let ns = cluster.namespace.as_str();
        let selector = format!("{CLUSTER_LABEL}={}", cluster.name);
        let secrets = self
            .api(ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| port_error(ACCOUNTS, &format!("secrets of {cluster} ({selector})"), e))?;
        let mut accounts: Vec<Account> = secrets
            .items
            .iter()
            .filter_map(|secret| match parse_account(secret) {
                Ok(account) => Some(account),
                Err(why) => {
                    let name = secret.metadata.name.as_deref().unwrap_or_default();
                    tracing::warn!(secret = %describe(ns, name), %why, "skipping an account Secret");
                    None
                }
            })
            .collect();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(accounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::kube::fake_api::{c1, cluster, fake_api, json, Calls};

    async fn store() -> (KubeAccountStore, Client, Arc<Calls>) {
        let (client, calls) = fake_api(vec![json(&cluster("default", "c1"))]).await;
        (
            KubeAccountStore::new(client.clone(), Arc::default()),
            client,
            calls,
        )
    }

    fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("default".to_owned()),
                labels: Some(BTreeMap::from([(
                    CLUSTER_LABEL.to_owned(),
                    "c1".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn passwords_are_15_alphanumerics_and_differ() {
        let passwords: std::collections::BTreeSet<String> =
            (0..200).map(|_| generate_password()).collect();
        assert_eq!(passwords.len(), 200, "no repeats");
        for p in &passwords {
            assert_eq!(p.len(), PASSWORD_LEN);
            assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()), "{p}");
        }
        let all: String = passwords.into_iter().collect();
        for class in [
            |b: u8| b.is_ascii_digit(),
            |b: u8| b.is_ascii_lowercase(),
            |b: u8| b.is_ascii_uppercase(),
        ] {
            assert!(all.bytes().any(class), "every character class is drawn");
        }
    }

    #[tokio::test]
    async fn a_missing_account_is_created_owned_by_the_cluster_with_the_wire_keys() {
        let (store, client, _) = store().await;
        let cr: crate::crd::MPDCluster = Api::namespaced(client.clone(), "default")
            .get("c1")
            .await
            .unwrap();
        let a = store
            .ensure_account(&c1(), "1000", "aurora", 7)
            .await
            .unwrap();
        assert_eq!((a.name.as_str(), a.privilege), ("aurora", 7));
        assert_eq!(a.password.len(), PASSWORD_LEN);

        let s: Secret = Api::namespaced(client.clone(), "default")
            .get("c1-1000-aurora")
            .await
            .unwrap();
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(
            s.metadata
                .labels
                .as_ref()
                .unwrap()
                .get(CLUSTER_LABEL)
                .map(String::as_str),
            Some("c1")
        );
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "MPDCluster");
        assert_eq!(owner.name, "c1");
        assert_eq!(Some(&owner.uid), cr.metadata.uid.as_ref());
        assert_eq!(owner.controller, Some(true));
        let data = s.data.unwrap();
        let key = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
        assert_eq!(key(ACCOUNT_KEY), "aurora");
        assert_eq!(key(PASSWORD_KEY), a.password);
        assert_eq!(key(PRIVILEGE_KEY), "7");
    }

    #[tokio::test]
    async fn an_existing_secret_is_returned_and_never_overwritten() {
        let (client, calls) = fake_api(vec![
            json(&cluster("default", "c1")),
            json(&secret(
                "c1-1000-aurora",
                &[
                    (ACCOUNT_KEY, "aurora"),
                    (PASSWORD_KEY, "kept-pw"),
                    (PRIVILEGE_KEY, "7"),
                ],
            )),
        ])
        .await;
        let store = KubeAccountStore::new(client.clone(), Arc::default());
        for _ in 0..2 {
            let a = store
                .ensure_account(&c1(), "1000", "aurora", 7)
                .await
                .unwrap();
            assert_eq!(a.password, "kept-pw");
        }
        assert_eq!(calls.writes(), 0);
    }

    #[tokio::test]
    async fn ensuring_twice_keeps_the_first_password_and_replicator_gets_its_own() {
        let (store, _, calls) = store().await;
        let a = store
            .ensure_account(&c1(), "1000", "aurora", 7)
            .await
            .unwrap();
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
        assert_eq!(Calls::count(&calls.create), 2);
        let listed = store.accounts(&c1()).await.unwrap();
        assert_eq!(listed, vec![a, r]);
    }

    #[tokio::test]
    async fn a_malformed_existing_secret_is_rejected_naming_the_key_and_left_alone() {
        let (client, calls) = fake_api(vec![
            json(&cluster("default", "c1")),
            json(&secret(
                "c1-1000-aurora",
                &[(ACCOUNT_KEY, "aurora"), (PASSWORD_KEY, "s3cr3t-value")],
            )),
        ])
        .await;
        let store = KubeAccountStore::new(client, Arc::default());
        let err = store
            .ensure_account(&c1(), "1000", "aurora", 7)
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        assert!(err.to_string().contains(PRIVILEGE_KEY), "{err}");
        assert!(
            !err.to_string().contains("s3cr3t"),
            "no value in the message"
        );
        assert_eq!(calls.writes(), 0);
    }

    #[tokio::test]
    async fn listing_skips_secrets_with_a_missing_key_or_a_bad_privilege() {
        let (client, _) = fake_api(vec![
            json(&cluster("default", "c1")),
            json(&secret(
                "c1-1000-aurora",
                &[
                    (ACCOUNT_KEY, "aurora"),
                    (PASSWORD_KEY, "a"),
                    (PRIVILEGE_KEY, "7"),
                ],
            )),
            json(&secret(
                "c1-1000-replicator",
                &[
                    (ACCOUNT_KEY, "replicator"),
                    (PASSWORD_KEY, "r"),
                    (PRIVILEGE_KEY, "x"),
                ],
            )),
            json(&secret(
                "c1-1000-nopassword",
                &[(ACCOUNT_KEY, "n"), (PRIVILEGE_KEY, "1")],
            )),
        ])
        .await;
        let store = KubeAccountStore::new(client, Arc::default());
        let names: Vec<String> = store
            .accounts(&c1())
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["aurora"]);
        assert!(store
            .accounts(&ClusterRef::new("default", "c2"))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn an_account_of_a_missing_cluster_is_not_found_and_nothing_is_created() {
        let (client, calls) = fake_api(vec![]).await;
        let store = KubeAccountStore::new(client, Arc::default());
        let err = store
            .ensure_account(&c1(), "1000", "aurora", 7)
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("mpdcluster default/c1"), "{err}");
        assert_eq!(calls.writes(), 0);
    }

    #[tokio::test]
    async fn the_secrets_go_with_their_cluster() {
        let (store, client, _) = store().await;
        store
            .ensure_account(&c1(), "1000", "aurora", 7)
            .await
            .unwrap();
        let clusters: Api<crate::crd::MPDCluster> = Api::namespaced(client.clone(), "default");
        clusters.delete("c1", &Default::default()).await.unwrap();
        let secrets: Api<Secret> = Api::namespaced(client, "default");
        assert!(secrets.get_opt("c1-1000-aurora").await.unwrap().is_none());
    }
}
