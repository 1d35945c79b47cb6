//! What the operator may do on the API server: the rules its ClusterRole and its Role
//! (in its own namespace) must grant, no more, and the reading of RBAC manifests to compare
//! with them.
//!
//! [`CLUSTER_RULES`] and [`NAMESPACE_RULES`] are the single source: `deploy/rbac.yaml`
//! must grant exactly these (`cargo xtask deploy --check`), and a test records every
//! request of a full flow suite and of `run`'s loop on the fake API server and checks that
//! they are exactly what these rules grant.
//!
//! ```
//! use shared_storage::rbac::{required_grants, Grant};
//!
//! let grants = required_grants();
//! assert!(grants.contains(&Grant::new("patch", "mpd.polardb.aliyun.com", "mpdclusters/status")));
//! assert!(!grants.contains(&Grant::new("delete", "", "nodes")));
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};

/// One rule: every verb on every resource of every group listed, optionally only on the
/// named objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// API groups (`""` is the core group).
    pub groups: &'static [&'static str],
    /// Resources, `resource/subresource` for a subresource.
    pub resources: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Only these objects (empty: all); for a verb that names no object the API server
    /// checks, such as `bind`.
    pub resource_names: &'static [&'static str],
    /// Why the operator needs it (a comment in the manifest's review, not in the YAML).
    pub why: &'static str,
}

const CORE: &[&str] = &[""];
const MPD: &[&str] = &["mpd.polardb.aliyun.com"];

/// The ClusterRole: MPDClusters are watched in every namespace (or `--watch-namespace`),
/// and each cluster's objects live in its namespace. Every verb here is a request the code
/// makes; see [`IMPLIED_RULES`] for the two the API server checks on its own.
pub const CLUSTER_RULES: &[Rule] = &[
    Rule {
        groups: MPD,
        resources: &["mpdclusters"],
        verbs: &["get", "list", "watch", "patch"],
        resource_names: &[],
        why: "the reconciler watches them; finalizer, annotations and spec are merge patches",
    },
    Rule {
        groups: MPD,
        resources: &["mpdclusters/status"],
        verbs: &["patch"],
        resource_names: &[],
        why: "the state machine and the status monitor patch the status",
    },
    Rule {
        groups: CORE,
        resources: &["pods"],
        verbs: &["get", "list", "watch", "create", "delete", "patch"],
        resource_names: &[],
        why: "instance pods: created, relabelled on failover, replaced, watched",
    },
    Rule {
        groups: CORE,
        resources: &["pods/exec"],
        verbs: &["get", "create"],
        resource_names: &[],
        why: "the engine agent and pfsd run in the pods (a WebSocket exec is authorised as \
              get and, since Kubernetes 1.35, also as create)",
    },
    Rule {
        groups: CORE,
        resources: &["configmaps"],
        verbs: &["get", "list", "create", "update", "patch", "delete"],
        resource_names: &[],
        why: "flow mementos, the cluster manager's configuration, the running parameters",
    },
    Rule {
        groups: CORE,
        resources: &["secrets"],
        verbs: &["get", "list", "create", "delete"],
        resource_names: &[],
        why: "the database accounts, the cluster manager's Secret, the callback token",
    },
    Rule {
        groups: CORE,
        resources: &["serviceaccounts"],
        verbs: &["get", "create"],
        resource_names: &[],
        why: "the cluster manager's service account, one per namespace",
    },
    Rule {
        groups: CORE,
        resources: &["nodes"],
        verbs: &["list"],
        resource_names: &[],
        why: "placement: node addresses, labels, conditions",
    },
    Rule {
        groups: &["apps"],
        resources: &["deployments"],
        verbs: &["get", "create", "update", "delete"],
        resource_names: &[],
        why: "the cluster manager runs as a Deployment",
    },
    Rule {
        groups: &["rbac.authorization.k8s.io"],
        resources: &["clusterrolebindings"],
        verbs: &["get", "create"],
        resource_names: &[],
        why: "the cluster manager's service account bound to its ClusterRole",
    },
    Rule {
        groups: &["events.k8s.io"],
        resources: &["events"],
        verbs: &["create", "patch"],
        resource_names: &[],
        why: "Events of every transition",
    },
];

/// Granted in the ClusterRole but never a request of their own: the API server checks
/// them while it admits another request, so no recording of requests can see them.
pub const IMPLIED_RULES: &[Rule] = &[
    Rule {
        groups: MPD,
        resources: &["mpdclusters/finalizers"],
        verbs: &["update"],
        resource_names: &[],
        why: "owner references with blockOwnerDeletion on the cluster's objects \
              (admission plugin OwnerReferencesPermissionEnforcement)",
    },
    Rule {
        groups: &["rbac.authorization.k8s.io"],
        resources: &["clusterroles"],
        verbs: &["bind"],
        resource_names: &[CM_CLUSTER_ROLE],
        why: "creating the cluster manager's ClusterRoleBinding (the escalation check): only \
              the CM's role, named by KubePortsConfig::cm_cluster_role",
    },
];

/// The ClusterRole the cluster manager's service account is bound to (the default of
/// [`KubePortsConfig::cm_cluster_role`](crate::ports::kube::KubePortsConfig)); the operator
/// may bind it and no other.
pub const CM_CLUSTER_ROLE: &str = "polardb4mpd-controller-manager-role";

/// The Role in the operator's own namespace.
pub const NAMESPACE_RULES: &[Rule] = &[Rule {
    groups: &["coordination.k8s.io"],
    resources: &["leases"],
    verbs: &["get", "create", "update"],
    resource_names: &[],
    why: "leader election",
}];

/// One (verb, group, resource) an RBAC rule grants, the unit a request is authorised by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// The verb.
    pub verb: String,
    /// The API group (`""` for core).
    pub group: String,
    /// The resource (`resource/subresource`).
    pub resource: String,
    /// The one object it is limited to (empty: every object).
    pub name: String,
}

impl Grant {
    /// A grant on every object of a resource.
    pub fn new(verb: &str, group: &str, resource: &str) -> Self {
        Grant::named(verb, group, resource, "")
    }

    /// A grant limited to the object `name` (empty: every object).
    pub fn named(verb: &str, group: &str, resource: &str, name: &str) -> Self {
        Grant {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {}/{}", self.verb, group, self.resource)?;
        if !self.name.is_empty() {
            write!(f, " {}", self.name)?;
        }
        Ok(())
    }
}

/// Every (verb, group, resource, name) of the rules; a rule without names gives name `""`.
fn expand<'a, G, R, V, N>(rules: impl IntoIterator<Item = (G, R, V, N)>) -> BTreeSet<Grant>
where
    G: IntoIterator<Item = &'a str> + Clone,
    R: IntoIterator<Item = &'a str> + Clone,
    V: IntoIterator<Item = &'a str> + Clone,
    N: IntoIterator<Item = &'a str> + Clone,
{
    let mut out = BTreeSet::new();
    for (groups, resources, verbs, names) in rules {
        let names: Vec<&str> = names.into_iter().collect();
        let names = if names.is_empty() { vec![""] } else { names };
        for group in groups {
            for resource in resources.clone() {
                for verb in verbs.clone() {
                    for name in &names {
                        out.insert(Grant::named(verb, group, resource, name));
                    }
                }
            }
        }
    }
    out
}

fn expand_rules(rules: &[Rule]) -> BTreeSet<Grant> {
    expand(rules.iter().map(|r| {
        (
            r.groups.iter().copied(),
            r.resources.iter().copied(),
            r.verbs.iter().copied(),
            r.resource_names.iter().copied(),
        )
    }))
}

/// What the ClusterRole must grant: [`CLUSTER_RULES`] and [`IMPLIED_RULES`].
pub fn cluster_grants() -> BTreeSet<Grant> {
    let mut all = expand_rules(CLUSTER_RULES);
    all.extend(implied_grants());
    all
}

/// What [`IMPLIED_RULES`] grant.
pub fn implied_grants() -> BTreeSet<Grant> {
    expand_rules(IMPLIED_RULES)
}

/// What the Role in the operator's namespace must grant.
pub fn namespace_grants() -> BTreeSet<Grant> {
    expand_rules(NAMESPACE_RULES)
}

/// Everything the operator may do: the ClusterRole's and the Role's grants.
pub fn required_grants() -> BTreeSet<Grant> {
    let mut all = cluster_grants();
    all.extend(namespace_grants());
    all
}

/// The grants of Kubernetes policy rules. A wildcard (`*`) is kept as a literal `*`, so it
/// never equals a required grant and a check fails on it.
pub fn grants_of(rules: &[PolicyRule]) -> BTreeSet<Grant> {
    fn strs(v: &Option<Vec<String>>) -> Vec<&str> {
        v.iter().flatten().map(String::as_str).collect()
    }
    expand(rules.iter().map(|r| {
        (
            strs(&r.api_groups),
            strs(&r.resources),
            r.verbs.iter().map(String::as_str).collect::<Vec<_>>(),
            strs(&r.resource_names),
        )
    }))
}

/// Why an RBAC manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML or not a valid object of its kind.
    #[error("{path}, document {document}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The document's position (1-based).
        document: usize,
        /// What is wrong.
        message: String,
    },
}

/// The ClusterRoles and Roles of a manifest file (other kinds are skipped).
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    /// The ClusterRoles.
    pub cluster_roles: Vec<ClusterRole>,
    /// The Roles.
    pub roles: Vec<Role>,
}

impl Manifest {
    /// Reads the roles of the YAML documents in `path`.
    pub fn load(path: &Path) -> Result<Self, RbacError> {
        let text = std::fs::read_to_string(path).map_err(|source| RbacError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Reads the roles of the YAML documents in `text` (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, RbacError> {
        let mut manifest = Manifest::default();
        for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let invalid = |message: String| RbacError::Invalid {
                path: path.to_path_buf(),
                document: i + 1,
                message,
            };
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(document)
                .map_err(|e| invalid(e.to_string()))?;
            match value.get("kind").and_then(serde_yaml::Value::as_str) {
                Some("ClusterRole") => manifest
                    .cluster_roles
                    .push(serde_yaml::from_value(value).map_err(|e| invalid(e.to_string()))?),
                Some("Role") => manifest
                    .roles
                    .push(serde_yaml::from_value(value).map_err(|e| invalid(e.to_string()))?),
                _ => {}
            }
        }
        Ok(manifest)
    }

    /// What its ClusterRoles grant.
    pub fn cluster_grants(&self) -> BTreeSet<Grant> {
        let rules: Vec<PolicyRule> = self
            .cluster_roles
            .iter()
            .flat_map(|r| r.rules.clone().unwrap_or_default())
            .collect();
        grants_of(&rules)
    }

    /// What its Roles grant.
    pub fn namespace_grants(&self) -> BTreeSet<Grant> {
        let rules: Vec<PolicyRule> = self
            .roles
            .iter()
            .flat_map(|r| r.rules.clone().unwrap_or_default())
            .collect();
        grants_of(&rules)
    }

    /// What it grants in all.
    pub fn grants(&self) -> BTreeSet<Grant> {
        let mut all = self.cluster_grants();
        all.extend(self.namespace_grants());
        all
    }
}
