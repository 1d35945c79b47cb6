//! `cargo xtask deploy --check`: the manifests in `deploy/` hold what the code needs.
//!
//! Every YAML document of every `deploy/*.yaml` is parsed into its `k8s-openapi` type (a
//! kind the operator does not ship is a problem), then:
//!
//! - `crd.yaml` is what `cargo xtask crd` generates;
//! - the ClusterRole and the Role grant exactly `shared_storage::rbac`'s rules, and their
//!   bindings bind them to the Deployment's ServiceAccount;
//! - the Deployment runs `run` as that ServiceAccount with at least 2 replicas, gets
//!   `POD_NAME` and `POD_NAMESPACE` from the downward API, exposes the ports `run` listens
//!   on by default (`--metrics-addr`, `--callback-addr`), probes `/healthz` and `/readyz`
//!   on the metrics port, runs as non-root on a read-only root filesystem without privilege
//!   escalation, and requests CPU and memory;
//! - the Service selects the Deployment's pods and serves both ports;
//! - the callback-token Secret has the default name and key of `run`, in the Deployment's
//!   namespace (where `run` reads it).
//!
//! Each problem names the file and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Namespace, PodSpec, Probe, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use shared_storage::callbacks::{DEFAULT_TOKEN_SECRET, TOKEN_KEY};
use shared_storage::rbac::{self, Grant};

use crate::crd;

/// Where the manifests live, relative to the workspace root.
pub const DEPLOY_DIR: &str = "deploy";

/// The ports `run` listens on by default: `--metrics-addr` and `--callback-addr`.
const METRICS_PORT: i32 = 8080;
const CALLBACK_PORT: i32 = 6099;

/// One object of a manifest, with where it came from.
#[derive(Debug)]
struct Located<T> {
    file: PathBuf,
    document: usize,
    object: T,
}

impl<T> Located<T> {
    fn at(&self, field: &str) -> String {
        format!(
            "{} (document {}): {field}",
            self.file.display(),
            self.document
        )
    }
}

/// Every object the operator ships, by kind.
#[derive(Debug, Default)]
struct Manifests {
    namespaces: Vec<Located<Namespace>>,
    service_accounts: Vec<Located<ServiceAccount>>,
    cluster_roles: Vec<Located<ClusterRole>>,
    cluster_role_bindings: Vec<Located<ClusterRoleBinding>>,
    roles: Vec<Located<Role>>,
    role_bindings: Vec<Located<RoleBinding>>,
    deployments: Vec<Located<Deployment>>,
    services: Vec<Located<Service>>,
    secrets: Vec<Located<Secret>>,
    crds: Vec<Located<CustomResourceDefinition>>,
}

fn parse_into<T: serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    file: &Path,
    document: usize,
    into: &mut Vec<Located<T>>,
    problems: &mut Vec<String>,
) {
    match serde_yaml::from_value(value) {
        Ok(object) => into.push(Located {
            file: file.to_path_buf(),
            document,
            object,
        }),
        Err(e) => problems.push(format!(
            "{} (document {document}): not a valid object of its kind: {e}",
            file.display()
        )),
    }
}

impl Manifests {
    /// Parses every document of `file` (`text`), adding a problem for each that is not a
    /// valid object of a kind the operator ships.
    fn add(&mut self, file: &Path, text: &str, problems: &mut Vec<String>) {
        for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let n = i + 1;
            let value = match <serde_yaml::Value as serde::Deserialize>::deserialize(document) {
                Ok(serde_yaml::Value::Null) => continue,
                Ok(value) => value,
                Err(e) => {
                    problems.push(format!("{} (document {n}): not YAML: {e}", file.display()));
                    continue;
                }
            };
            let kind = value
                .get("kind")
                .and_then(serde_yaml::Value::as_str)
                .unwrap_or("")
                .to_owned();
            match kind.as_str() {
                "Namespace" => parse_into(value, file, n, &mut self.namespaces, problems),
                "ServiceAccount" => {
                    parse_into(value, file, n, &mut self.service_accounts, problems)
                }
                "ClusterRole" => parse_into(value, file, n, &mut self.cluster_roles, problems),
                "ClusterRoleBinding" => {
                    parse_into(value, file, n, &mut self.cluster_role_bindings, problems)
                }
                "Role" => parse_into(value, file, n, &mut self.roles, problems),
                "RoleBinding" => parse_into(value, file, n, &mut self.role_bindings, problems),
                "Deployment" => parse_into(value, file, n, &mut self.deployments, problems),
                "Service" => parse_into(value, file, n, &mut self.services, problems),
                "Secret" => parse_into(value, file, n, &mut self.secrets, problems),
                "CustomResourceDefinition" => parse_into(value, file, n, &mut self.crds, problems),
                "Kustomization" => {}
                "" => problems.push(format!("{} (document {n}): no kind", file.display())),
                other => problems.push(format!(
                    "{} (document {n}): kind {other} is not one the operator ships",
                    file.display()
                )),
            }
        }
    }
}

/// Exactly one object of a kind, else a problem.
fn one<'a, T>(
    items: &'a [Located<T>],
    kind: &str,
    problems: &mut Vec<String>,
) -> Option<&'a Located<T>> {
    match items {
        [one] => Some(one),
        [] => {
            problems.push(format!("deploy/: no {kind}"));
            None
        }
        many => {
            let files: Vec<String> = many.iter().map(|m| m.at(kind)).collect();
            problems.push(format!(
                "deploy/: one {kind} expected, found {}: {}",
                many.len(),
                files.join(", ")
            ));
            None
        }
    }
}

fn drift(at: String, got: &BTreeSet<Grant>, want: &BTreeSet<Grant>, problems: &mut Vec<String>) {
    let extra: Vec<String> = got.difference(want).map(Grant::to_string).collect();
    let missing: Vec<String> = want.difference(got).map(Grant::to_string).collect();
    if !extra.is_empty() {
        problems.push(format!(
            "{at} grants what the code does not use (shared_storage::rbac): {}",
            extra.join(", ")
        ));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{at} lacks what the code uses (shared_storage::rbac): {}",
            missing.join(", ")
        ));
    }
}

fn binds_to(subjects: &Option<Vec<Subject>>, sa: &str, ns: &str) -> bool {
    subjects
        .iter()
        .flatten()
        .any(|s| s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(ns))
}

fn env_field(env: &[EnvVar], name: &str) -> Option<String> {
    env.iter()
        .find(|e| e.name == name)?
        .value_from
        .as_ref()?
        .field_ref
        .as_ref()
        .map(|f| f.field_path.clone())
}

fn probe_target(probe: &Option<Probe>) -> Option<(String, IntOrString)> {
    let get = probe.as_ref()?.http_get.as_ref()?;
    Some((get.path.clone().unwrap_or_default(), get.port.clone()))
}

/// The container port `port` refers to (by number or by name).
fn resolve_port(container: &Container, port: &IntOrString) -> Option<i32> {
    let ports = container.ports.iter().flatten();
    match port {
        IntOrString::Int(n) => ports.map(|p| p.container_port).find(|p| p == n),
        IntOrString::String(name) => ports
            .filter(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .next(),
    }
}

fn check_pod(at: &dyn Fn(&str) -> String, pod: &PodSpec, sa: &str, problems: &mut Vec<String>) {
    if pod.service_account_name.as_deref() != Some(sa) {
        problems.push(at(&format!(
            "spec.template.spec.serviceAccountName is not {sa}"
        )));
    }
    let Some(container) = pod.containers.first() else {
        problems.push(at("spec.template.spec.containers is empty"));
        return;
    };
    let c = |field: &str| at(&format!("containers[{}].{field}", container.name));
    if container
        .args
        .as_deref()
        .and_then(|a| a.first())
        .map(String::as_str)
        != Some("run")
    {
        problems.push(c("args does not start with `run`"));
    }
    let env = container.env.clone().unwrap_or_default();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        if env_field(&env, name).as_deref() != Some(field) {
            problems.push(c(&format!("env {name} is not the downward API's {field}")));
        }
    }
    let ports: BTreeSet<i32> = container
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    for (port, what) in [
        (METRICS_PORT, "--metrics-addr"),
        (CALLBACK_PORT, "--callback-addr"),
    ] {
        if !ports.contains(&port) {
            problems.push(c(&format!("ports lacks {port} ({what})")));
        }
    }
    for (probe, path, field) in [
        (&container.liveness_probe, "/healthz", "livenessProbe"),
        (&container.readiness_probe, "/readyz", "readinessProbe"),
    ] {
        match probe_target(probe) {
            Some((p, port))
                if p == path && resolve_port(container, &port) == Some(METRICS_PORT) => {}
            _ => problems.push(c(&format!(
                "{field} is not an HTTP GET of {path} on the metrics port {METRICS_PORT}"
            ))),
        }
    }
    let pod_sc = pod.security_context.as_ref();
    let sc = container.security_context.as_ref();
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root));
    if non_root != Some(true) {
        problems.push(c("securityContext.runAsNonRoot (or the pod's) is not true"));
    }
    if sc.and_then(|s| s.read_only_root_filesystem) != Some(true) {
        problems.push(c("securityContext.readOnlyRootFilesystem is not true"));
    }
    if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
        problems.push(c("securityContext.allowPrivilegeEscalation is not false"));
    }
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    for resource in ["cpu", "memory"] {
        if !requests.contains_key(resource) {
            problems.push(c(&format!("resources.requests.{resource} is not set")));
        }
    }
}

/// What the check found: the files and objects it read.
#[derive(Debug)]
pub struct Summary {
    /// The files read.
    pub files: usize,
    /// The objects parsed.
    pub objects: usize,
}

impl Summary {
    /// The one line `deploy --check` prints when everything holds.
    pub fn line(&self, dir: &Path) -> String {
        format!(
            "deploy: {} objects in {} files of {} hold what the code needs (CRD, RBAC, \
             Deployment, Service, callback token)",
            self.objects,
            self.files,
            dir.display()
        )
    }
}

/// Reads every `*.yaml` of `dir` and checks it (see the module docs); every problem found.
pub fn check(dir: &Path) -> Result<Summary, Vec<String>> {
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(e) => return Err(vec![format!("cannot read {}: {e}", dir.display())]),
    };
    files.sort();
    let mut m = Manifests::default();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => m.add(file, &text, &mut problems),
            Err(e) => problems.push(format!("cannot read {}: {e}", file.display())),
        }
    }

    if let Err(e) = crd::check(&dir.join("crd.yaml")) {
        problems.push(e.to_string());
    }
    let crd_ok = m
        .crds
        .iter()
        .any(|c| c.object.metadata.name.as_deref() == Some("mpdclusters.mpd.polardb.aliyun.com"));
    if !crd_ok {
        problems
            .push("deploy/: no CustomResourceDefinition mpdclusters.mpd.polardb.aliyun.com".into());
    }

    let sa = one(&m.service_accounts, "ServiceAccount", &mut problems);
    let deployment = one(&m.deployments, "Deployment", &mut problems);
    let cluster_role = one(&m.cluster_roles, "ClusterRole", &mut problems);
    let role = one(&m.roles, "Role", &mut problems);
    let service = one(&m.services, "Service", &mut problems);
    let (sa_name, sa_ns) = sa
        .map(|sa| {
            (
                sa.object.metadata.name.clone().unwrap_or_default(),
                sa.object.metadata.namespace.clone().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    if let Some(ns) = sa.map(|_| &sa_ns) {
        if !m
            .namespaces
            .iter()
            .any(|n| n.object.metadata.name.as_ref() == Some(ns))
        {
            problems.push(format!(
                "deploy/: the ServiceAccount's namespace {ns} is not a Namespace of the manifests"
            ));
        }
    }

    if let Some(cr) = cluster_role {
        let got = rbac::grants_of(&cr.object.rules.clone().unwrap_or_default());
        drift(
            cr.at("ClusterRole rules"),
            &got,
            &rbac::cluster_grants(),
            &mut problems,
        );
        let name = cr.object.metadata.name.clone().unwrap_or_default();
        let bound = m.cluster_role_bindings.iter().any(|b| {
            b.object.role_ref.kind == "ClusterRole"
                && b.object.role_ref.name == name
                && binds_to(&b.object.subjects, &sa_name, &sa_ns)
        });
        if !bound {
            problems.push(cr.at(&format!(
                "no ClusterRoleBinding binds ClusterRole {name} to ServiceAccount {sa_ns}/{sa_name}"
            )));
        }
    }
    if let Some(role) = role {
        let got = rbac::grants_of(&role.object.rules.clone().unwrap_or_default());
        drift(
            role.at("Role rules"),
            &got,
            &rbac::namespace_grants(),
            &mut problems,
        );
        let name = role.object.metadata.name.clone().unwrap_or_default();
        let ns = role.object.metadata.namespace.clone().unwrap_or_default();
        if ns != sa_ns {
            problems.push(role.at(&format!(
                "metadata.namespace {ns} is not the operator's namespace {sa_ns} (the Lease is there)"
            )));
        }
        let bound = m.role_bindings.iter().any(|b| {
            b.object.metadata.namespace.as_deref() == Some(&ns)
                && b.object.role_ref.kind == "Role"
                && b.object.role_ref.name == name
                && binds_to(&b.object.subjects, &sa_name, &sa_ns)
        });
        if !bound {
            problems.push(role.at(&format!(
                "no RoleBinding in {ns} binds Role {name} to ServiceAccount {sa_ns}/{sa_name}"
            )));
        }
    }

    let mut pod_labels = BTreeMap::new();
    if let Some(d) = deployment {
        let at = |field: &str| d.at(field);
        let ns = d.object.metadata.namespace.clone().unwrap_or_default();
        if ns != sa_ns {
            problems.push(at(&format!(
                "metadata.namespace {ns} is not the ServiceAccount's {sa_ns}"
            )));
        }
        match &d.object.spec {
            Some(spec) => {
                if spec.replicas.unwrap_or(1) < 2 {
                    problems.push(at(
                        "spec.replicas is below 2 (a standby takes over through leader election)",
                    ));
                }
                pod_labels = spec
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                match &spec.template.spec {
                    Some(pod) => check_pod(&at, pod, &sa_name, &mut problems),
                    None => problems.push(at("spec.template.spec is missing")),
                }
            }
            None => problems.push(at("spec is missing")),
        }
    }

    if let Some(s) = service {
        let spec = s.object.spec.clone().unwrap_or_default();
        let selector = spec.selector.unwrap_or_default();
        if selector.is_empty() || selector.iter().any(|(k, v)| pod_labels.get(k) != Some(v)) {
            problems.push(s.at("spec.selector does not select the Deployment's pods"));
        }
        let ports: BTreeSet<i32> = spec.ports.iter().flatten().map(|p| p.port).collect();
        for port in [METRICS_PORT, CALLBACK_PORT] {
            if !ports.contains(&port) {
                problems.push(s.at(&format!("spec.ports lacks {port}")));
            }
        }
    }

    match m
        .secrets
        .iter()
        .find(|s| s.object.metadata.name.as_deref() == Some(DEFAULT_TOKEN_SECRET))
    {
        Some(secret) => {
            let ns = secret.object.metadata.namespace.clone().unwrap_or_default();
            if ns != sa_ns {
                problems.push(secret.at(&format!(
                    "metadata.namespace {ns} is not the operator's namespace {sa_ns}, where run reads it"
                )));
            }
            let has_key = secret
                .object
                .string_data
                .iter()
                .flatten()
                .any(|(k, _)| k == TOKEN_KEY)
                || secret
                    .object
                    .data
                    .iter()
                    .flatten()
                    .any(|(k, _)| k == TOKEN_KEY);
            if !has_key {
                problems.push(secret.at(&format!("has no key {TOKEN_KEY}")));
            }
        }
        None => problems.push(format!(
            "deploy/: no Secret {DEFAULT_TOKEN_SECRET} (the callback token run reads by default)"
        )),
    }

    let objects = m.namespaces.len()
        + m.service_accounts.len()
        + m.cluster_roles.len()
        + m.cluster_role_bindings.len()
        + m.roles.len()
        + m.role_bindings.len()
        + m.deployments.len()
        + m.services.len()
        + m.secrets.len()
        + m.crds.len();
    if problems.is_empty() {
        Ok(Summary {
            files: files.len(),
            objects,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_deploy() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(DEPLOY_DIR)
    }

    /// A copy of `deploy/` with `file` edited by `edit`.
    fn edited(file: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(workspace_deploy()).unwrap() {
            let path = entry.unwrap().path();
            let mut text = std::fs::read_to_string(&path).unwrap();
            if path.file_name().unwrap() == file {
                text = edit(text);
            }
            std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
        }
        dir
    }

    fn problems_of(dir: &Path) -> String {
        check(dir).err().unwrap_or_default().join("\n")
    }

    #[test]
    fn the_checked_in_manifests_hold() {
        let summary = check(&workspace_deploy()).expect("deploy/ holds");
        assert!(summary.objects >= 10, "{summary:?}");
    }

    #[test]
    fn a_verb_the_code_does_not_use_is_drift() {
        let dir = edited("rbac.yaml", |t| {
            t.replacen(r#"verbs: ["list"]"#, r#"verbs: ["list", "delete"]"#, 1)
        });
        let problems = problems_of(dir.path());
        assert!(
            problems.contains("grants what the code does not use")
                && problems.contains("delete core/nodes"),
            "{problems}"
        );
    }

    #[test]
    fn a_missing_verb_is_drift() {
        let dir = edited("rbac.yaml", |t| {
            t.replacen(
                r#"verbs: ["get", "create", "update"]"#,
                r#"verbs: ["get", "create"]"#,
                1,
            )
        });
        let problems = problems_of(dir.path());
        assert!(
            problems.contains("lacks what the code uses")
                && problems.contains("update coordination.k8s.io/leases"),
            "{problems}"
        );
    }

    #[test]
    fn a_wildcard_is_never_least_privilege() {
        let dir = edited("rbac.yaml", |t| {
            t.replacen(r#"resources: ["nodes"]"#, r#"resources: ["*"]"#, 1)
        });
        assert!(
            problems_of(dir.path()).contains("* core/*")
                || problems_of(dir.path()).contains("list core/*")
        );
    }

    #[test]
    fn the_deployment_must_get_its_identity_from_the_downward_api_and_run_read_only() {
        let dir = edited("operator.yaml", |t| {
            t.replacen(
                "fieldPath: metadata.namespace",
                "fieldPath: spec.nodeName",
                1,
            )
            .replacen(
                "readOnlyRootFilesystem: true",
                "readOnlyRootFilesystem: false",
                1,
            )
            .replacen("replicas: 2", "replicas: 1", 1)
        });
        let problems = problems_of(dir.path());
        for want in [
            "env POD_NAMESPACE is not the downward API's metadata.namespace",
            "readOnlyRootFilesystem is not true",
            "spec.replicas is below 2",
        ] {
            assert!(problems.contains(want), "{want}: {problems}");
        }
        assert!(
            problems.contains("operator.yaml (document 1)"),
            "names the file: {problems}"
        );
    }

    #[test]
    fn probes_must_hit_the_metrics_port() {
        let dir = edited("operator.yaml", |t| {
            t.replacen("path: /readyz", "path: /ready", 1)
        });
        assert!(problems_of(dir.path()).contains("readinessProbe is not an HTTP GET of /readyz"));
    }

    #[test]
    fn an_unknown_kind_or_an_invalid_object_names_the_file_and_document() {
        let dir = edited("namespace.yaml", |t| {
            format!("{t}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: x}}\n---\napiVersion: v1\nkind: Secret\nmetadata: 3\n")
        });
        let problems = problems_of(dir.path());
        assert!(
            problems
                .contains("namespace.yaml (document 2): kind Pod is not one the operator ships"),
            "{problems}"
        );
        assert!(
            problems.contains("namespace.yaml (document 3): not a valid object of its kind"),
            "{problems}"
        );
    }

    #[test]
    fn the_token_secret_must_be_where_run_reads_it() {
        let dir = edited("callback-token.yaml", |t| {
            t.replacen("name: polar-mpd-callback-token", "name: other", 1)
        });
        assert!(problems_of(dir.path()).contains("no Secret polar-mpd-callback-token"));
    }

    #[test]
    fn the_shipped_crd_file_shows_columns_a_short_name_and_refuses_what_is_never_valid() {
        let text = std::fs::read_to_string(workspace_deploy().join("crd.yaml")).unwrap();
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("a CRD");
        assert_eq!(crd.spec.names.short_names, Some(vec!["mpd".to_owned()]));
        let version = &crd.spec.versions[0];
        let columns: Vec<&str> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Status", "Leader", "RO", "Ready", "Age"]);
        let schema = version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap();
        assert!(schema
            .description
            .as_deref()
            .unwrap_or("")
            .contains("shared storage"));
        let spec = &schema.properties.as_ref().unwrap()["spec"];
        let props = spec.properties.as_ref().unwrap();
        assert_eq!(props["followerNum"].minimum, Some(0.0));
        let types: Vec<String> = props["dbClusterType"]
            .enum_
            .iter()
            .flatten()
            .map(|v| v.0.as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(types, ["share", "local"]);
    }

    #[test]
    fn a_stale_crd_is_reported() {
        let dir = edited("crd.yaml", |t| t.replacen("shortNames:", "shortNamez:", 1));
        assert!(problems_of(dir.path()).contains("is stale"));
    }
}
