//! The step registry: step factories by class name
//! ([semantics §4](../../../docs/SEMANTICS.md#4-flows-and-step-groups)).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Step;

/// Makes a fresh step instance.
pub type StepFactory = Arc<dyn Fn() -> Box<dyn Step> + Send + Sync>;

/// Step classes by name, e.g. `workflow_shared.InitMeta`. Every execution gets a fresh
/// instance from the class's factory.
#[derive(Clone, Default)]
pub struct StepRegistry {
    factories: BTreeMap<String, StepFactory>,
}

impl StepRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a class made by `factory`; a later registration of the same name replaces
    /// the earlier one.
    pub fn register<S, F>(&mut self, class_name: impl Into<String>, factory: F) -> &mut Self
    where
        S: Step,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.factories.insert(
            class_name.into(),
            Arc::new(move || Box::new(factory()) as Box<dyn Step>),
        );
        self
    }

    /// Registers a class made by `factory` from a clone of `captured`: what a factory
    /// needs (a store, a client, a shared service) is given once, and each execution's
    /// instance gets its own clone, so no `let x2 = x.clone()` per factory.
    ///
    /// ```
    /// # use wf_engine::{async_trait, CancellationToken, MemoryResourceStore, Step, StepError, StepOutcome, StepRegistry};
    /// struct MarkRunning { store: MemoryResourceStore }
    /// # #[async_trait]
    /// # impl Step for MarkRunning {
    /// #     async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> { Ok(StepOutcome::Done) }
    /// # }
    /// let store = MemoryResourceStore::new();
    /// let mut registry = StepRegistry::new();
    /// registry.register_with("demo.MarkRunning", &store, |store| MarkRunning { store });
    /// assert!(registry.contains("demo.MarkRunning"));
    /// ```
    pub fn register_with<C, S, F>(
        &mut self,
        class_name: impl Into<String>,
        captured: &C,
        factory: F,
    ) -> &mut Self
    where
        C: Clone + Send + Sync + 'static,
        S: Step,
        F: Fn(C) -> S + Send + Sync + 'static,
    {
        let captured = captured.clone();
        self.register(class_name, move || factory(captured.clone()))
    }

    /// Registers a class whose steps start from `S::default()`.
    pub fn register_default<S: Step + Default>(
        &mut self,
        class_name: impl Into<String>,
    ) -> &mut Self {
        self.register(class_name, S::default)
    }

    /// A fresh instance of `class_name`, or `None` when it is not registered.
    pub fn create(&self, class_name: &str) -> Option<Box<dyn Step>> {
        self.factories.get(class_name).map(|factory| factory())
    }

    /// Whether `class_name` is registered.
    pub fn contains(&self, class_name: &str) -> bool {
        self.factories.contains_key(class_name)
    }

    /// The registered class names, sorted.
    pub fn class_names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for StepRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.factories.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StepError, StepOutcome};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio_util::sync::CancellationToken;

    #[derive(Default)]
    struct Noop;

    #[async_trait]
    impl Step for Noop {
        async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
            Ok(StepOutcome::Done)
        }
    }

    #[test]
    fn every_execution_gets_a_fresh_instance() {
        let made = Arc::new(AtomicUsize::new(0));
        let counter = made.clone();
        let mut registry = StepRegistry::new();
        registry.register("test.Noop", move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Noop
        });
        assert!(registry.create("test.Noop").is_some());
        assert!(registry.create("test.Noop").is_some());
        assert_eq!(made.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn register_with_gives_every_instance_its_own_clone_of_what_was_captured() {
        struct Holder(Arc<AtomicUsize>);
        #[async_trait]
        impl Step for Holder {
            async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Ok(StepOutcome::Done)
            }
        }
        let shared = Arc::new(AtomicUsize::new(0));
        let mut registry = StepRegistry::new();
        registry.register_with("test.Holder", &shared, Holder);
        assert_eq!(
            Arc::strong_count(&shared),
            2,
            "one clone kept by the factory"
        );
        let one = registry.create("test.Holder");
        let two = registry.create("test.Holder");
        assert!(one.is_some() && two.is_some());
        assert_eq!(
            Arc::strong_count(&shared),
            4,
            "each instance holds its own clone"
        );
        drop((one, two));
        assert_eq!(Arc::strong_count(&shared), 2);
    }

    #[test]
    fn unknown_class_is_none() {
        let mut registry = StepRegistry::new();
        registry.register_default::<Noop>("test.Noop");
        assert!(registry.create("test.Other").is_none());
        assert_eq!(registry.class_names().collect::<Vec<_>>(), ["test.Noop"]);
    }
}
