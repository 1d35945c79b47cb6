//! `cargo xtask check-flows`: validates every flow directory under `workflows/`.
//!
//! Every `<root>/<resource type>/` directory is loaded with the engine's own loader
//! ([`wf_engine::YamlDirLoader`]), so malformed YAML, unknown fields, duplicate flows or step
//! names, empty flows, step-group cycles and invalid retry policies are found exactly as the
//! operator would find them at start-up. A directory that has a [`Registration`] (for this
//! repository: `shared`, from `shared_storage::registration`) is also checked against it:
//! every className must be registered and every flow the state machine runs must exist.
//!
//! [`check_flows`] is a pure function of the directory and the registrations; `main` only
//! prints its result.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wf_engine::{FlowCatalog, FlowLoader, MetadataError, RetryPolicy, YamlDirLoader};

/// What a state-machine registration expects of its flow directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The resource type: the flows live in `<root>/<resource_type>/`.
    pub resource_type: String,
    /// Where the registration is defined; names it in messages.
    pub origin: String,
    /// Every registered step class (full names, e.g. `workflow_shared.InitMeta`).
    pub classes: BTreeSet<String>,
    /// The flows the state machine runs, each with the state whose entry runs it.
    pub flows: Vec<FlowReference>,
}

/// A state whose entry runs a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowReference {
    /// The unstable state.
    pub state: String,
    /// The flow's `flowName`.
    pub flow: String,
}

impl Registration {
    /// The shared-storage registration: `shared_storage::registration::class_names()` and
    /// the flow of every state in `TRANSLATIONS` (each state and flow pair once).
    pub fn shared() -> Registration {
        use shared_storage::registration::{class_names, RESOURCE_TYPE, TRANSLATIONS};
        let mut flows: Vec<FlowReference> = Vec::new();
        for translation in TRANSLATIONS {
            let reference = FlowReference {
                state: translation.target.to_owned(),
                flow: translation.flow.to_owned(),
            };
            if !flows.contains(&reference) {
                flows.push(reference);
            }
        }
        Registration {
            resource_type: RESOURCE_TYPE.to_owned(),
            origin: "shared_storage::registration".to_owned(),
            classes: class_names().collect(),
            flows,
        }
    }
}

/// One problem found; every message names the file, the directory or the registration.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The flow root itself cannot be read.
    #[error("cannot read flow directory {path}: {source}")]
    ReadRoot {
        /// The root directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A registration's resource type has no directory.
    #[error("{origin}: resource type `{resource_type}` has no flow directory {path}")]
    MissingDirectory {
        /// The registration.
        origin: String,
        /// The resource type.
        resource_type: String,
        /// The directory expected.
        path: PathBuf,
    },
    /// The engine's loader rejected the directory (its first problem), or a step names an
    /// unregistered class ([`MetadataError::UnknownClass`]).
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// A state of the registration runs a flow no file defines.
    #[error("{origin}: state `{state}` runs flow `{flow}`, which no file in {dir} defines")]
    MissingFlow {
        /// The registration.
        origin: String,
        /// The state whose entry runs the flow.
        state: String,
        /// The missing flow.
        flow: String,
        /// The directory searched.
        dir: PathBuf,
    },
}

/// What a successful check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Flows in all directories.
    pub flows: usize,
    /// Steps (after group expansion) in all directories.
    pub steps: usize,
    /// Classes the registrations hold.
    pub registered: usize,
    /// Registered classes some flow uses.
    pub used: usize,
    /// Registered classes no flow uses, with the directory they were expected in.
    pub unused: Vec<(String, PathBuf)>,
}

impl Summary {
    /// The one summary line, e.g. `check-flows: 15 flows, 111 steps, 42 classes registered, 41 used`.
    pub fn line(&self) -> String {
        format!(
            "check-flows: {} flows, {} steps, {} classes registered, {} used",
            self.flows, self.steps, self.registered, self.used
        )
    }

    /// One `warning:` line per registered class no flow uses.
    pub fn warnings(&self) -> Vec<String> {
        self.unused
            .iter()
            .map(|(class, dir)| {
                format!(
                    "warning: class `{class}` is registered but no flow in {} uses it",
                    dir.display()
                )
            })
            .collect()
    }
}

/// Checks every `<root>/<resource type>/` directory: the engine's structural checks for
/// all, and for those with a registration in `registrations`, the classes and flow
/// references too. Returns every problem found (the loader stops at a directory's first).
pub fn check_flows(root: &Path, registrations: &[Registration]) -> Result<Summary, Vec<Problem>> {
    let dirs = match resource_dirs(root) {
        Ok(dirs) => dirs,
        Err(source) => {
            return Err(vec![Problem::ReadRoot {
                path: root.to_path_buf(),
                source,
            }])
        }
    };
    let mut problems = Vec::new();
    let mut summary = Summary::default();
    for registration in registrations {
        if !dirs.contains(&registration.resource_type) {
            problems.push(Problem::MissingDirectory {
                origin: registration.origin.clone(),
                resource_type: registration.resource_type.clone(),
                path: root.join(&registration.resource_type),
            });
        }
    }
    for resource_type in &dirs {
        let catalog = match YamlDirLoader::new(root, resource_type).load(&RetryPolicy::default()) {
            Ok(catalog) => catalog,
            Err(err) => {
                problems.push(err.into());
                continue;
            }
        };
        summary.flows += catalog.len();
        summary.steps += catalog.flows().map(|f| f.steps.len()).sum::<usize>();
        if let Some(registration) = registrations
            .iter()
            .find(|r| &r.resource_type == resource_type)
        {
            let dir = root.join(resource_type);
            problems.extend(check_registration(&catalog, registration, &dir));
            let used = catalog.used_classes();
            summary.registered += registration.classes.len();
            for class in &registration.classes {
                if used.contains(class.as_str()) {
                    summary.used += 1;
                } else {
                    summary.unused.push((class.clone(), dir.clone()));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(problems)
    }
}

/// The sub-directories of `root`, by name, sorted; hidden ones are skipped.
fn resource_dirs(root: &Path) -> std::io::Result<Vec<String>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            if !name.starts_with('.') {
                dirs.push(name.to_owned());
            }
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Unregistered classes of `catalog`, then flows of `registration` that `catalog` lacks.
fn check_registration(
    catalog: &FlowCatalog,
    registration: &Registration,
    dir: &Path,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for flow in catalog.flows() {
        for step in &flow.steps {
            if !registration.classes.contains(&step.class_name) {
                problems.push(Problem::Metadata(MetadataError::UnknownClass {
                    path: flow.source.clone(),
                    flow: flow.name.clone(),
                    step: step.step_name.clone(),
                    class: step.class_name.clone(),
                }));
            }
        }
    }
    for reference in &registration.flows {
        if catalog.get(&reference.flow).is_none() {
            problems.push(Problem::MissingFlow {
                origin: registration.origin.clone(),
                state: reference.state.clone(),
                flow: reference.flow.clone(),
                dir: dir.to_path_buf(),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    use shared_storage::registration::{CLASS_PREFIX, STEP_CLASSES, TRANSLATIONS};

    /// Domain §4.1: every flow with its ordered steps.
    const DOMAIN_FLOWS: [(&str, &[&str]); 14] = [
        (
            "CreateSharedStorageCluster",
            &[
                "InitMeta",
                "PrepareStorage",
                "CreateClusterManager",
                "CreateRwPod",
                "CreateRoPods",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterRebuild",
            &[
                "SetRebuildTag",
                "CleanOldTempMeta",
                "RemoveClusterManager",
                "RemoveAllInsPod",
                "CleanTempRoMeta",
                "CreateClusterManager",
                "CreateRwPod",
                "CreateRoPods",
                "EnableHA",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterModifyClass",
            &[
                "GenerateTempRoIds",
                "InitTempRoMeta",
                "DisableHA",
                "UpdateModifyClassMeta",
                "FlushParamsIfNecessary",
                "CreateTempRoForRw",
                "ConvertTempRoToRo",
                "SwitchNewRoToRw",
                "DeleteOldRw",
                "EnsureNewRoUpToDate",
                "EnableHA",
                "EnsureCmRwAffinity",
                "SaveParamsLastUpdateTime",
                "CleanModifyClassTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterUpgradeMinorVersion",
            &[
                "InitUpgradeImages",
                "GenerateTempRoIds",
                "InitTempRoMeta",
                "DisableHA",
                "CreateTempRoForRw",
                "ConvertTempRoToRo",
                "SwitchNewRoToRw",
                "DeleteOldRw",
                "EnsureNewRoUpToDate",
                "EnableHA",
                "UpgradeCmVersion",
                "EnsureCmRwAffinity",
                "CleanUpgradeTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterMigrateRw",
            &[
                "GenerateMigrateTempId",
                "InitTempRoMeta",
                "DisableHA",
                "CreateTempRoForRw",
                "ConvertTempRoToRo",
                "SwitchNewRoToRw",
                "DeleteOldRw",
                "EnableHA",
                "EnsureCmRwAffinity",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterMigrateRo",
            &[
                "GenerateMigrateTempId",
                "InitTempRoMeta",
                "DisableHA",
                "EnsureRoMigrate",
                "EnableHA",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterRebuildRo",
            &[
                "GenerateRebuildRoTempId",
                "DisableHA",
                "StopOldRo",
                "InitTempRoMeta",
                "EnsureNewRoUpToDate",
                "EnableHA",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterAddRo",
            &[
                "GenerateAddRoTempId",
                "InitTempRoMeta",
                "EnsureNewRoUpToDate",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterRemoveRo",
            &[
                "DisableHA",
                "RemoveRo",
                "EnableHA",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterSwitchRw",
            &[
                "DisableHA",
                "SwitchRw",
                "EnableHA",
                "EnsureCmRwAffinity",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterRestartIns",
            &[
                "DisableHA",
                "RestartIns",
                "EnableHA",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterRestartCluster",
            &[
                "DisableHA",
                "RestartCluster",
                "EnableHA",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "SharedStorageClusterFlushParams",
            &[
                "DisableHA",
                "FlushParams",
                "RestartClusterIfNeed",
                "EnableHA",
                "SaveParamsLastUpdateTime",
                "CleanAllTempMeta",
                "UpdateRunningStatus",
            ],
        ),
        (
            "ExtendStorageSharedStorageCluster",
            &["ExtendStorageFs", "CleanAllTempMeta", "UpdateRunningStatus"],
        ),
    ];

    fn repository_workflows() -> PathBuf {
        crate::workspace_root().join("workflows")
    }

    /// A flow root with one directory `demo/` and a registration for it: classes `demo.A`
    /// and `demo.B`, state `Creating` running flow `Create`.
    struct Demo {
        root: tempfile::TempDir,
        registration: Registration,
    }

    impl Demo {
        fn new() -> Demo {
            let root = tempfile::tempdir().unwrap();
            std::fs::create_dir(root.path().join("demo")).unwrap();
            Demo {
                root,
                registration: Registration {
                    resource_type: "demo".to_owned(),
                    origin: "demo::registration".to_owned(),
                    classes: ["demo.A", "demo.B"].map(str::to_owned).into(),
                    flows: vec![FlowReference {
                        state: "Creating".to_owned(),
                        flow: "Create".to_owned(),
                    }],
                },
            }
        }

        /// Writes `demo/<file>`, or `<file>` when it names a directory.
        fn write(&self, file: &str, text: &str) -> &Demo {
            let path = if file.contains('/') {
                self.root.path().join(file)
            } else {
                self.root.path().join("demo").join(file)
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap();
            }
            std::fs::write(path, text).unwrap();
            self
        }

        fn check(&self) -> Result<Summary, Vec<Problem>> {
            check_flows(self.root.path(), std::slice::from_ref(&self.registration))
        }

        /// The messages of a failed check.
        fn problems(&self) -> Vec<String> {
            match self.check() {
                Ok(summary) => panic!("expected problems, got {summary:?}"),
                Err(problems) => problems.iter().map(ToString::to_string).collect(),
            }
        }
    }

    const CREATE: &str =
        "flowName: Create\nsteps:\n  - {className: demo.A, stepName: A}\n  - {className: demo.B, stepName: B}\n";

    fn assert_one(problems: &[String], parts: &[&str]) {
        assert_eq!(problems.len(), 1, "{problems:?}");
        for part in parts {
            assert!(problems[0].contains(part), "`{part}` not in {problems:?}");
        }
    }

    #[test]
    fn repository_workflows_pass_with_the_shared_registration() {
        let summary = check_flows(&repository_workflows(), &[Registration::shared()])
            .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            summary.line(),
            "check-flows: 17 flows, 115 steps, 42 classes registered, 41 used"
        );
        assert_eq!(
            summary.warnings(),
            [format!(
                "warning: class `workflow_shared.CreateNetwork` is registered but no flow in {} uses it",
                repository_workflows().join("shared").display()
            )]
        );
    }

    #[test]
    fn shared_flows_are_the_flows_of_domain_4_1_in_step_order() {
        let catalog = YamlDirLoader::new(repository_workflows(), "shared")
            .load(&RetryPolicy::default())
            .unwrap();
        assert_eq!(catalog.len(), DOMAIN_FLOWS.len());
        for (name, steps) in DOMAIN_FLOWS {
            let flow = catalog.get(name).unwrap_or_else(|| panic!("flow {name}"));
            assert_eq!(
                flow.source.file_name().and_then(|n| n.to_str()),
                Some(format!("{name}.yaml").as_str())
            );
            let names: Vec<&str> = flow.steps.iter().map(|s| s.step_name.as_str()).collect();
            assert_eq!(names, steps, "{name}");
            for step in &flow.steps {
                assert_eq!(step.class_name, format!("{CLASS_PREFIX}{}", step.step_name));
                assert!(STEP_CLASSES.contains(&step.step_name.as_str()));
            }
            assert_eq!(
                flow.recover_from_first_step,
                name == "SharedStorageClusterRebuild",
                "{name}"
            );
        }
        for translation in TRANSLATIONS {
            assert!(catalog.get(translation.flow).is_some(), "{translation:?}");
        }
    }

    #[test]
    fn valid_registered_directory_passes_and_warns_about_unused_classes() {
        let demo = Demo::new();
        demo.write(
            "Create.yaml",
            "flowName: Create\nsteps:\n  - {className: demo.A, stepName: A}\n",
        );
        let summary = demo.check().unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            summary.line(),
            "check-flows: 1 flows, 1 steps, 2 classes registered, 1 used"
        );
        let warnings = summary.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("warning: class `demo.B` is registered but no flow in"),
            "{warnings:?}"
        );
    }

    #[test]
    fn unknown_class_names_file_flow_step_and_class() {
        let demo = Demo::new();
        demo.write(
            "Create.yaml",
            "flowName: Create\nsteps:\n  - {className: demo.A, stepName: A}\n  - {className: demo.Typo, stepName: T}\n",
        );
        assert_one(
            &demo.problems(),
            &[
                "Create.yaml",
                "flow `Create`",
                "step `T`",
                "unknown className `demo.Typo`",
            ],
        );
    }

    #[test]
    fn duplicate_step_name_names_file_flow_and_step() {
        let demo = Demo::new();
        demo.write(
            "Create.yaml",
            "flowName: Create\nsteps:\n  - {className: demo.A, stepName: A}\n  - {className: demo.B, stepName: A}\n",
        );
        assert_one(
            &demo.problems(),
            &["Create.yaml", "flow `Create` has step `A` more than once"],
        );
    }

    #[test]
    fn flow_defined_twice_names_both_files() {
        let demo = Demo::new();
        demo.write("Create.yaml", CREATE).write("Copy.yaml", CREATE);
        assert_one(
            &demo.problems(),
            &["flow `Create` is defined twice", "Copy.yaml", "Create.yaml"],
        );
    }

    #[test]
    fn step_group_cycle_names_the_group_file_and_the_chain() {
        let demo = Demo::new();
        demo.write(
            "Create.yaml",
            "flowName: Create\nsteps:\n  - {className: G1}\n",
        )
        .write(
            "g1_step_group.yaml",
            "groupName: G1\nsteps:\n  - {className: G2}\n",
        )
        .write(
            "g2_step_group.yaml",
            "groupName: G2\nsteps:\n  - {className: G1}\n",
        );
        assert_one(
            &demo.problems(),
            &["_step_group.yaml", "step group cycle G1 -> G2 -> G1"],
        );
    }

    #[test]
    fn step_groups_are_expanded_before_the_class_check() {
        let demo = Demo::new();
        demo.write(
            "Create.yaml",
            "flowName: Create\nsteps:\n  - {className: Both}\n",
        )
        .write(
            "both_step_group.yaml",
            "groupName: Both\nsteps:\n  - {className: demo.A, stepName: A}\n  - {className: demo.B, stepName: B}\n",
        );
        let summary = demo.check().unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            summary.line(),
            "check-flows: 1 flows, 2 steps, 2 classes registered, 2 used"
        );
    }

    #[test]
    fn empty_flow_names_file_and_flow() {
        let demo = Demo::new();
        demo.write("Create.yaml", "flowName: Create\nsteps: []\n");
        assert_one(
            &demo.problems(),
            &["Create.yaml", "flow `Create` has no steps"],
        );
    }

    #[test]
    fn unknown_yaml_field_names_file_and_field() {
        let demo = Demo::new();
        demo.write(
            "Create.yaml",
            "flowName: Create\nsteps:\n  - {className: demo.A, stepname: A}\n",
        );
        assert_one(
            &demo.problems(),
            &["Create.yaml", "unknown field `stepname`"],
        );
    }

    #[test]
    fn registration_naming_a_missing_flow_names_the_registration_state_and_flow() {
        let demo = Demo::new();
        demo.write(
            "Other.yaml",
            "flowName: Other\nsteps:\n  - {className: demo.A, stepName: A}\n",
        );
        assert_one(
            &demo.problems(),
            &[
                "demo::registration",
                "state `Creating` runs flow `Create`",
                "which no file in",
            ],
        );
    }

    #[test]
    fn invalid_retry_policy_names_file_step_and_field() {
        let demo = Demo::new();
        demo.write(
            "Create.yaml",
            "flowName: Create\nsteps:\n  - {className: demo.A, stepName: A, backoff: {factor: 0.1}}\n",
        );
        assert_one(
            &demo.problems(),
            &[
                "Create.yaml",
                "invalid retry policy",
                "step `A`",
                "backoff.factor",
            ],
        );
    }

    #[test]
    fn missing_registered_directory_is_reported() {
        let demo = Demo::new();
        std::fs::remove_dir(demo.root.path().join("demo")).unwrap();
        assert_one(
            &demo.problems(),
            &[
                "demo::registration",
                "resource type `demo` has no flow directory",
            ],
        );
    }

    #[test]
    fn unregistered_directory_gets_the_structural_checks_only() {
        let demo = Demo::new();
        demo.write("Create.yaml", CREATE).write(
            "other/Any.yaml",
            "flowName: Any\nsteps:\n  - {className: anything.Goes, stepName: X}\n",
        );
        let summary = demo.check().unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            summary.line(),
            "check-flows: 2 flows, 3 steps, 2 classes registered, 2 used"
        );

        demo.write("other/Empty.yaml", "flowName: Empty\nsteps: []\n");
        assert_one(&demo.problems(), &["Empty.yaml", "has no steps"]);
    }

    #[test]
    fn every_broken_directory_is_reported() {
        let demo = Demo::new();
        demo.write("Create.yaml", "flowName: Create\nsteps: []\n")
            .write("other/Bad.yaml", "flowName: [unclosed\n");
        let problems = demo.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("Create.yaml"), "{problems:?}");
        assert!(problems[1].contains("Bad.yaml"), "{problems:?}");
    }

    #[test]
    fn unreadable_root_is_reported_with_its_path() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nope");
        let problems = check_flows(&missing, &[]).unwrap_err();
        assert!(problems[0].to_string().contains("nope"), "{}", problems[0]);
    }
}
