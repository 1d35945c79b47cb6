//! The catalog of flows after parsing, group expansion and validation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::document::{FlowDocument, GroupDocument, StepDocument};
use super::loader::{FlowSource, GROUP_FILE_SUFFIX};
use super::MetadataError;
use crate::retry::RetrySpec;
use crate::{RetryPolicy, StepRegistry};

/// One step of a flow, after group expansion.
#[derive(Clone, Debug, PartialEq)]
pub struct StepMeta {
    /// The registered class that implements the step.
    pub class_name: String,
    /// The step's name, unique within its flow; runtimes record progress under it.
    pub step_name: String,
    /// The step's retry policy: defaults, then the flow's, then the step's own overrides.
    pub retry: RetryPolicy,
}

/// A flow: an ordered list of steps.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowMeta {
    /// The flow's name (`flowName`).
    pub name: String,
    /// Whether recovery restarts the flow from its first step (`recoverFromFirstStep`).
    pub recover_from_first_step: bool,
    /// The steps in order.
    pub steps: Vec<StepMeta>,
    /// The flow-level policy: the defaults of its steps' policies (each step's
    /// `max_retries` is its own budget; the flow's failures are not counted together).
    pub retry: RetryPolicy,
    /// `maxResumes`: how many times a run of the flow may be taken up again after the
    /// process stopped while a step ran; `None` uses [`crate::WorkflowConfig::max_resumes`].
    pub max_resumes: Option<u32>,
    /// The file the flow was loaded from.
    pub source: PathBuf,
}

impl FlowMeta {
    /// The position of `step_name` in the flow.
    pub fn step_index(&self, step_name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.step_name == step_name)
    }
}

/// A step class that a flow names but no registry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownClass {
    /// The file of the flow.
    pub path: PathBuf,
    /// The flow.
    pub flow: String,
    /// The step.
    pub step: String,
    /// The unregistered class.
    pub class: String,
}

/// All flows of one resource type.
#[derive(Clone, Debug, Default)]
pub struct FlowCatalog {
    flows: BTreeMap<String, Arc<FlowMeta>>,
    groups: BTreeMap<String, PathBuf>,
}

struct GroupDef {
    doc: GroupDocument,
    path: PathBuf,
}

impl FlowCatalog {
    /// Parses, expands and validates flow and group documents. Files whose name ends in
    /// `_step_group.yaml` hold groups, all others flows; a file may hold several YAML
    /// documents separated by `---`.
    pub fn from_sources(
        sources: &[FlowSource],
        defaults: &RetryPolicy,
    ) -> Result<FlowCatalog, MetadataError> {
        let mut flow_docs: Vec<(FlowDocument, &Path)> = Vec::new();
        let mut groups: BTreeMap<String, GroupDef> = BTreeMap::new();
        for source in sources {
            let is_group = source
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(GROUP_FILE_SUFFIX));
            for document in serde_yaml::Deserializer::from_str(&source.text) {
                let yaml_err = |source_err| MetadataError::Yaml {
                    path: source.path.clone(),
                    source: source_err,
                };
                if is_group {
                    let doc = GroupDocument::deserialize(document).map_err(yaml_err)?;
                    if let Some(first) = groups.get(&doc.group_name) {
                        return Err(MetadataError::DuplicateGroup {
                            group: doc.group_name,
                            first: first.path.clone(),
                            second: source.path.clone(),
                        });
                    }
                    groups.insert(
                        doc.group_name.clone(),
                        GroupDef {
                            doc,
                            path: source.path.clone(),
                        },
                    );
                } else {
                    let doc = FlowDocument::deserialize(document).map_err(yaml_err)?;
                    flow_docs.push((doc, &source.path));
                }
            }
        }

        // Expand every group once on its own, so that a cycle among unused groups is found too.
        for (name, def) in &groups {
            let mut out = Vec::new();
            let mut stack = vec![name.clone()];
            expand(
                &def.doc.steps,
                &groups,
                &mut stack,
                &def.path,
                defaults,
                &RetrySpec::default(),
                &mut out,
                name,
            )?;
        }

        let mut flows: BTreeMap<String, Arc<FlowMeta>> = BTreeMap::new();
        for (doc, path) in flow_docs {
            if let Some(first) = flows.get(&doc.flow_name) {
                return Err(MetadataError::DuplicateFlow {
                    flow: doc.flow_name,
                    first: first.source.clone(),
                    second: path.to_path_buf(),
                });
            }
            let flow_policy = defaults.with_overrides(&doc.retry_spec()).map_err(|e| {
                MetadataError::InvalidRetry {
                    path: path.to_path_buf(),
                    owner: format!("flow `{}`", doc.flow_name),
                    source: e,
                }
            })?;
            let mut steps = Vec::new();
            expand(
                &doc.steps,
                &groups,
                &mut Vec::new(),
                path,
                &flow_policy,
                &RetrySpec::default(),
                &mut steps,
                &doc.flow_name,
            )?;
            if steps.is_empty() {
                return Err(MetadataError::EmptyFlow {
                    path: path.to_path_buf(),
                    flow: doc.flow_name,
                });
            }
            let mut seen = BTreeSet::new();
            for step in &steps {
                if !seen.insert(step.step_name.as_str()) {
                    return Err(MetadataError::DuplicateStep {
                        path: path.to_path_buf(),
                        flow: doc.flow_name.clone(),
                        step: step.step_name.clone(),
                    });
                }
            }
            flows.insert(
                doc.flow_name.clone(),
                Arc::new(FlowMeta {
                    name: doc.flow_name,
                    recover_from_first_step: doc.recover_from_first_step,
                    steps,
                    retry: flow_policy,
                    max_resumes: doc.max_resumes,
                    source: path.to_path_buf(),
                }),
            );
        }
        Ok(FlowCatalog {
            flows,
            groups: groups.into_iter().map(|(k, v)| (k, v.path)).collect(),
        })
    }

    /// The flow named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<FlowMeta>> {
        self.flows.get(name)
    }

    /// All flows, by name.
    pub fn flows(&self) -> impl Iterator<Item = &Arc<FlowMeta>> {
        self.flows.values()
    }

    /// The names of the step groups, sorted.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// How many flows there are.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether there is no flow.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Every class used by a flow, sorted.
    pub fn used_classes(&self) -> BTreeSet<&str> {
        self.flows
            .values()
            .flat_map(|f| f.steps.iter().map(|s| s.class_name.as_str()))
            .collect()
    }

    /// Every step whose class `registry` does not hold.
    pub fn unknown_classes(&self, registry: &StepRegistry) -> Vec<UnknownClass> {
        self.flows
            .values()
            .flat_map(|flow| {
                flow.steps
                    .iter()
                    .filter(|s| !registry.contains(&s.class_name))
                    .map(|s| UnknownClass {
                        path: flow.source.clone(),
                        flow: flow.name.clone(),
                        step: s.step_name.clone(),
                        class: s.class_name.clone(),
                    })
            })
            .collect()
    }

    /// An error for the first step whose class `registry` does not hold.
    pub fn check_classes(&self, registry: &StepRegistry) -> Result<(), MetadataError> {
        match self.unknown_classes(registry).into_iter().next() {
            None => Ok(()),
            Some(u) => Err(MetadataError::UnknownClass {
                path: u.path,
                flow: u.flow,
                step: u.step,
                class: u.class,
            }),
        }
    }
}

/// Expands `steps` into `out`, replacing group references by the group's steps, recursively.
/// `stack` holds the groups being expanded, to detect cycles.
#[allow(clippy::too_many_arguments)]
fn expand(
    steps: &[StepDocument],
    groups: &BTreeMap<String, GroupDef>,
    stack: &mut Vec<String>,
    path: &Path,
    policy: &RetryPolicy,
    inherited: &RetrySpec,
    out: &mut Vec<StepMeta>,
    owner: &str,
) -> Result<(), MetadataError> {
    for step in steps {
        let invalid = |source| MetadataError::InvalidRetry {
            path: path.to_path_buf(),
            owner: format!(
                "`{owner}`, step `{}`",
                step.step_name.as_deref().unwrap_or(&step.class_name)
            ),
            source,
        };
        // A reference's own overrides apply to every step of the group it names.
        let with_inherited = policy.with_overrides(inherited).map_err(invalid)?;
        if let Some(group) = groups.get(&step.class_name) {
            if stack.contains(&step.class_name) {
                let mut chain = stack.clone();
                chain.push(step.class_name.clone());
                return Err(MetadataError::GroupCycle {
                    path: group.path.clone(),
                    chain,
                });
            }
            let reference_policy = with_inherited
                .with_overrides(&step.retry_spec())
                .map_err(invalid)?;
            stack.push(step.class_name.clone());
            expand(
                &group.doc.steps,
                groups,
                stack,
                &group.path,
                &reference_policy,
                &RetrySpec::default(),
                out,
                &step.class_name,
            )?;
            stack.pop();
            continue;
        }
        let Some(step_name) = step.step_name.clone() else {
            return Err(MetadataError::MissingStepName {
                path: path.to_path_buf(),
                owner: owner.to_owned(),
                class: step.class_name.clone(),
            });
        };
        let retry = with_inherited
            .with_overrides(&step.retry_spec())
            .map_err(invalid)?;
        out.push(StepMeta {
            class_name: step.class_name.clone(),
            step_name,
            retry,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn src(path: &str, text: &str) -> FlowSource {
        FlowSource {
            path: PathBuf::from(path),
            text: text.to_owned(),
        }
    }

    fn load(sources: &[FlowSource]) -> Result<FlowCatalog, MetadataError> {
        FlowCatalog::from_sources(sources, &RetryPolicy::default())
    }

    const CREATE: &str = "
flowName: Create
recoverFromFirstStep: false
steps:
  - className: demo.A
    stepName: A
  - className: demo.B
    stepName: B
";

    #[test]
    fn flow_yaml_is_loaded_in_step_order() {
        let catalog = load(&[src("shared/Create.yaml", CREATE)]).unwrap();
        let flow = catalog.get("Create").unwrap();
        let names: Vec<_> = flow.steps.iter().map(|s| s.step_name.as_str()).collect();
        assert_eq!(names, ["A", "B"]);
        assert!(!flow.recover_from_first_step);
        assert_eq!(flow.source, PathBuf::from("shared/Create.yaml"));
    }

    #[test]
    fn step_group_is_expanded_in_place_recursively() {
        let catalog = load(&[
            src(
                "shared/Flow.yaml",
                "flowName: F\nsteps:\n  - className: G1\n  - className: demo.Z\n    stepName: Z\n",
            ),
            src(
                "shared/g1_step_group.yaml",
                "groupName: G1\nsteps:\n  - className: demo.A\n    stepName: A\n  - className: G2\n",
            ),
            src(
                "shared/g2_step_group.yaml",
                "groupName: G2\nsteps:\n  - className: demo.B\n    stepName: B\n",
            ),
        ])
        .unwrap();
        let names: Vec<_> = catalog
            .get("F")
            .unwrap()
            .steps
            .iter()
            .map(|s| s.step_name.clone())
            .collect();
        assert_eq!(names, ["A", "B", "Z"]);
        assert_eq!(catalog.group_names().collect::<Vec<_>>(), ["G1", "G2"]);
    }

    #[test]
    fn step_group_cycle_is_an_error_naming_the_chain() {
        let err = load(&[
            src("shared/F.yaml", "flowName: F\nsteps:\n  - className: G1\n"),
            src(
                "shared/a_step_group.yaml",
                "groupName: G1\nsteps:\n  - className: G2\n",
            ),
            src(
                "shared/b_step_group.yaml",
                "groupName: G2\nsteps:\n  - className: G1\n",
            ),
        ])
        .unwrap_err();
        assert!(matches!(err, MetadataError::GroupCycle { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("G1 -> G2 -> G1"), "{text}");
        assert!(text.contains("_step_group.yaml"), "{text}");
    }

    #[test]
    fn malformed_flow_yaml_error_names_the_file() {
        let err = load(&[src("shared/Broken.yaml", "flowName: [unclosed\nsteps: -")]).unwrap_err();
        assert!(matches!(err, MetadataError::Yaml { .. }));
        assert!(err.to_string().starts_with("shared/Broken.yaml:"), "{err}");
    }

    #[test]
    fn unknown_field_in_a_step_is_an_error_naming_file_and_field() {
        let err = load(&[src(
            "shared/Typo.yaml",
            "flowName: T\nsteps:\n  - className: demo.A\n    stepname: A\n",
        )])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("shared/Typo.yaml"), "{text}");
        assert!(text.contains("unknown field `stepname`"), "{text}");
    }

    #[test]
    fn duplicate_flow_duplicate_step_and_empty_flow_are_errors() {
        let dup = load(&[src("a/X.yaml", CREATE), src("a/Y.yaml", CREATE)]).unwrap_err();
        assert!(matches!(dup, MetadataError::DuplicateFlow { .. }), "{dup}");
        assert!(dup.to_string().contains("a/X.yaml") && dup.to_string().contains("a/Y.yaml"));

        let step = load(&[src(
            "a/D.yaml",
            "flowName: D\nsteps:\n  - {className: demo.A, stepName: A}\n  - {className: demo.B, stepName: A}\n",
        )])
        .unwrap_err();
        assert!(
            matches!(step, MetadataError::DuplicateStep { .. }),
            "{step}"
        );

        let empty = load(&[src("a/E.yaml", "flowName: E\nsteps: []\n")]).unwrap_err();
        assert!(matches!(empty, MetadataError::EmptyFlow { .. }), "{empty}");
        assert_eq!(empty.to_string(), "a/E.yaml: flow `E` has no steps");
    }

    #[test]
    fn retry_overrides_apply_per_flow_then_per_step() {
        let catalog = load(&[src(
            "a/R.yaml",
            "flowName: R\nmaxRetries: 4\nbackoff: {initial: 100ms, max: 1s}\nsteps:\n  - {className: demo.A, stepName: A}\n  - {className: demo.B, stepName: B, maxRetries: 2, timeout: 5s}\n",
        )])
        .unwrap();
        let flow = catalog.get("R").unwrap();
        assert_eq!(flow.retry.max_retries, 4);
        assert_eq!(flow.steps[0].retry.max_retries, 4);
        assert_eq!(
            flow.steps[0].retry.backoff.initial,
            Duration::from_millis(100)
        );
        assert_eq!(flow.steps[1].retry.max_retries, 2);
        assert_eq!(flow.steps[1].retry.timeout, Some(Duration::from_secs(5)));
        assert_eq!(flow.steps[1].retry.backoff.max, Duration::from_secs(1));
    }

    #[test]
    fn invalid_retry_policy_is_an_error_naming_file_flow_and_step() {
        let err = load(&[src(
            "a/R.yaml",
            "flowName: R\nsteps:\n  - {className: demo.A, stepName: A, backoff: {factor: 0.1}}\n",
        )])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("a/R.yaml") && text.contains("step `A`") && text.contains("factor"),
            "{text}"
        );
    }

    #[test]
    fn unknown_class_is_reported_with_file_flow_and_step() {
        let catalog = load(&[src("shared/Create.yaml", CREATE)]).unwrap();
        let mut registry = StepRegistry::new();
        registry.register("demo.A", || NoopForCatalog);
        let err = catalog.check_classes(&registry).unwrap_err();
        assert_eq!(
            err.to_string(),
            "shared/Create.yaml: flow `Create`, step `B`: unknown className `demo.B`"
        );
        assert_eq!(
            catalog.used_classes().into_iter().collect::<Vec<_>>(),
            ["demo.A", "demo.B"]
        );
    }

    struct NoopForCatalog;

    #[async_trait::async_trait]
    impl crate::Step for NoopForCatalog {
        async fn do_step(
            &mut self,
            _: &tokio_util::sync::CancellationToken,
        ) -> Result<crate::StepOutcome, crate::StepError> {
            Ok(crate::StepOutcome::Done)
        }
    }
}
