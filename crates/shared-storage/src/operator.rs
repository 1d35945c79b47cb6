//! Assembling the operator: the workflow manager with every step class, and the state
//! machine registered as in domain §3.2.

use std::path::PathBuf;
use std::sync::Arc;

use wf_engine::{
    BoxError, Event, MementoStorageFactory, State, StateMachine, StepRegistry, WorkflowConfig,
    WorkflowHook, WorkflowManager,
};

use crate::domain::triggers;
use crate::ports::Ports;
use crate::registration::{RESOURCE_TYPE, STABLE_STATES, TRANSLATIONS};
use crate::resource::{ClusterRecover, MpdClusterResource};
use crate::service::{ClusterAdmission, ServiceConfig, SharedStorageService};

/// The assembled operator: what a reconcile needs.
pub struct Operator {
    /// The state machine of the `shared` resource type (shared with the reconcile loops).
    pub machine: Arc<StateMachine<MpdClusterResource>>,
    /// The workflow manager with every step class registered.
    pub manager: WorkflowManager<MpdClusterResource>,
    /// The service the steps share.
    pub service: Arc<SharedStorageService>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

/// Where the flows come from.
enum Flows {
    Dir(PathBuf),
    Loader(Box<dyn wf_engine::FlowLoader>),
}

/// Adds the memento store to the manager builder.
type WithStore = Box<dyn FnOnce(ManagerBuilder) -> ManagerBuilder>;
type ManagerBuilder = wf_engine::WorkflowManagerBuilder<MpdClusterResource>;

/// How to build an [`Operator`].
pub struct OperatorBuilder {
    ports: Ports,
    flows: Flows,
    service: ServiceConfig,
    workflow: WorkflowConfig,
    mementos: Option<WithStore>,
    hooks: Vec<Arc<dyn WorkflowHook>>,
}

impl OperatorBuilder {
    /// An operator over `ports`, reading flows from `<flow_dir>/shared/`.
    pub fn new(ports: Ports, flow_dir: impl Into<PathBuf>) -> Self {
        Self::with_flows(ports, Flows::Dir(flow_dir.into()))
    }

    /// An operator over `ports` with the flows embedded in the crate
    /// ([`crate::flows::embedded_loader`]).
    pub fn embedded(ports: Ports) -> Self {
        Self::with_flows(
            ports,
            Flows::Loader(Box::new(crate::flows::embedded_loader())),
        )
    }

    fn with_flows(ports: Ports, flows: Flows) -> Self {
        OperatorBuilder {
            ports,
            flows,
            service: ServiceConfig::default(),
            workflow: WorkflowConfig::default(),
            mementos: None,
            hooks: Vec::new(),
        }
    }

    /// Service tunables.
    #[must_use]
    pub fn service_config(mut self, config: ServiceConfig) -> Self {
        self.service = config;
        self
    }

    /// Engine configuration.
    #[must_use]
    pub fn workflow_config(mut self, config: WorkflowConfig) -> Self {
        self.workflow = config;
        self
    }

    /// Where runtimes are persisted (default: in memory).
    #[must_use]
    pub fn memento_store(
        mut self,
        factory: impl MementoStorageFactory<MpdClusterResource> + 'static,
    ) -> Self {
        self.mementos = Some(Box::new(move |b| b.memento_store(factory)));
        self
    }

    /// Adds a workflow hook.
    #[must_use]
    pub fn hook(mut self, hook: Arc<dyn WorkflowHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Loads the flows, registers the steps and the state machine, and checks that every
    /// class and flow is known.
    pub fn build(self) -> Result<Operator, wf_engine::Error> {
        let admission = ClusterAdmission::new(self.ports.clone());
        let service = Arc::new(SharedStorageService::new(self.ports, self.service));
        let mut registry = StepRegistry::new();
        crate::steps::register(&mut registry, service.clone());
        let recover = ClusterRecover::new(self.workflow.annotations.clone());
        let builder = WorkflowManager::builder(RESOURCE_TYPE);
        let builder = match self.flows {
            Flows::Dir(dir) => builder.flow_dir(dir),
            Flows::Loader(loader) => builder.boxed_loader(loader),
        };
        let mut builder = builder
            .registry(registry)
            .recover(recover)
            .on_abandon(crate::service::AbandonCleanup::new(service.clone()))
            .config(self.workflow);
        if let Some(with_store) = self.mementos {
            builder = with_store(builder);
        }
        for hook in self.hooks {
            builder = builder.shared_hook(hook);
        }
        let manager = builder.build()?;
        manager.validate()?;
        let mut machine = state_machine(&manager)?;
        machine.register_admission(admission);
        let machine = Arc::new(machine);
        Ok(Operator {
            machine,
            manager,
            service,
        })
    }
}

/// The checker of the trigger `name`: fires an event named after `target` with the event
/// parameters of §3.2.
pub fn checker(
    name: &'static str,
    target: &'static str,
) -> Result<
    impl Fn(&MpdClusterResource) -> Result<Option<Event>, BoxError> + Send + Sync + 'static,
    wf_engine::Error,
> {
    let predicate = triggers::by_name(name)
        .ok_or_else(|| wf_engine::Error::Setup(format!("no trigger named `{name}`")))?;
    Ok(move |resource: &MpdClusterResource| {
        let cr = resource.cluster();
        Ok(predicate(cr).then(|| Event {
            name: target.to_owned(),
            params: triggers::event_params(name, cr),
        }))
    })
}

/// The state machine of domain §3.2, in registration order.
pub fn state_machine(
    manager: &WorkflowManager<MpdClusterResource>,
) -> Result<StateMachine<MpdClusterResource>, wf_engine::Error> {
    let mut machine = StateMachine::new(RESOURCE_TYPE);
    machine.register_stable_states(STABLE_STATES.into_iter().map(State::from_static));
    for tr in TRANSLATIONS {
        machine.register_translate_main_enter(
            State::from_static(tr.from),
            checker(tr.trigger, tr.target)?,
            State::from_static(tr.target),
            manager.flow_entry(tr.flow).resumption(tr.resumption),
        );
    }
    machine.validate_flows(manager)?;
    Ok(machine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::{SimConfig, Simulation};
    use std::collections::BTreeMap;

    fn workflows() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
    }

    #[test]
    fn every_unstable_state_runs_the_flow_of_its_registration() {
        let sim = Simulation::new(SimConfig::default());
        let op = OperatorBuilder::new(sim.ports(), workflows())
            .build()
            .unwrap();
        let entries: BTreeMap<String, Option<String>> = op
            .machine
            .entries()
            .map(|(s, f)| (s.to_string(), f.map(str::to_owned)))
            .collect();
        assert_eq!(entries.len(), 14);
        for tr in TRANSLATIONS {
            assert_eq!(entries[tr.target].as_deref(), Some(tr.flow), "{tr:?}");
            assert_eq!(
                op.machine.entry_resumption(&State::from_static(tr.target)),
                Some(tr.resumption),
                "{tr:?}"
            );
        }
        // "Resume others: no" (domain §3.2) is Rebuild and ExtendStorage only.
        let abandoning: Vec<_> = TRANSLATIONS
            .iter()
            .filter(|tr| tr.resumption == wf_engine::Resumption::AbandonOthers)
            .map(|tr| tr.target)
            .collect();
        assert_eq!(abandoning, ["Rebuild", "Rebuild", "ExtendStorage"]);
        for state in STABLE_STATES {
            assert!(op.machine.is_stable(&State::from_static(state)));
        }
    }

    #[test]
    fn unknown_trigger_name_is_a_setup_error() {
        let err = checker("noSuchTrigger", "X").err().unwrap();
        assert!(err.to_string().contains("noSuchTrigger"), "{err}");
    }

    #[test]
    fn missing_flow_directory_fails_the_build_naming_it() {
        let sim = Simulation::new(SimConfig::default());
        let err = OperatorBuilder::new(sim.ports(), "/nonexistent/flows")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/flows"), "{err}");
    }
}
