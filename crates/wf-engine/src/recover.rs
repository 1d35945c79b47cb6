//! Recovery after an interrupt ([semantics §10](../../../docs/SEMANTICS.md#10-recovery-after-an-interrupt)): how a resource asks
//! for it.

use async_trait::async_trait;

use crate::{AnnotationPatch, InterruptAnnotations, ResourceError, State, StateResource};

/// Decides whether an interrupted resource asks for recovery, and clears the request.
#[async_trait]
pub trait RecoverStrategy<R: StateResource>: Send + Sync {
    /// The state to go back to when recovery is asked for, `None` otherwise.
    fn recovery_requested(&self, resource: &R) -> Option<State>;

    /// Removes the interrupt record once recovery is done; returns the fresh copy.
    async fn clear(&self, resource: &R) -> Result<R, ResourceError>;
}

/// The default strategy: recovery is asked when the `interrupt.recover` annotation exists and
/// is not `F`, and `interrupt.previous.status` names the state to go back to.
#[derive(Clone, Debug, Default)]
pub struct AnnotationRecover {
    annotations: InterruptAnnotations,
}

impl AnnotationRecover {
    /// A strategy reading the given annotation keys.
    pub fn new(annotations: InterruptAnnotations) -> Self {
        AnnotationRecover { annotations }
    }
}

#[async_trait]
impl<R: StateResource> RecoverStrategy<R> for AnnotationRecover {
    fn recovery_requested(&self, resource: &R) -> Option<State> {
        let recover = resource.annotation(&self.annotations.recover)?;
        if recover == InterruptAnnotations::NOT_RECOVERED {
            return None;
        }
        let previous = resource.annotation(&self.annotations.previous_status)?;
        (!previous.is_empty()).then(|| State::new(previous))
    }

    async fn clear(&self, resource: &R) -> Result<R, ResourceError> {
        let patch: AnnotationPatch = self
            .annotations
            .keys()
            .into_iter()
            .map(|k| (k.to_owned(), None))
            .collect();
        resource.patch_annotations(&patch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryResourceStore, ResourceKey, ResourceRecord};

    fn resource(annotations: &[(&str, &str)]) -> crate::MemoryResource {
        MemoryResourceStore::new().insert(
            ResourceKey::new("ns", "c1"),
            ResourceRecord {
                state: State::INTERRUPT,
                annotations: annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..ResourceRecord::default()
            },
        )
    }

    #[test]
    fn recovery_is_asked_when_recover_is_not_f_and_previous_state_is_known() {
        let strategy = AnnotationRecover::default();
        let asked = resource(&[
            ("interrupt.recover", "T"),
            ("interrupt.previous.status", "ModifyClass"),
        ]);
        assert_eq!(
            strategy.recovery_requested(&asked),
            Some(State::new("ModifyClass"))
        );
        let not_yet = resource(&[
            ("interrupt.recover", "F"),
            ("interrupt.previous.status", "ModifyClass"),
        ]);
        assert_eq!(strategy.recovery_requested(&not_yet), None);
        let no_previous = resource(&[("interrupt.recover", "T")]);
        assert_eq!(strategy.recovery_requested(&no_previous), None);
        assert_eq!(strategy.recovery_requested(&resource(&[])), None);
    }

    #[tokio::test]
    async fn clear_removes_the_four_interrupt_annotations_only() {
        let res = resource(&[
            ("interrupt.recover", "T"),
            ("interrupt.previous.status", "X"),
            ("interrupt.reason", "R"),
            ("interrupt.message", "M"),
            ("keep", "me"),
        ]);
        let cleared = RecoverStrategy::clear(&AnnotationRecover::default(), &res)
            .await
            .unwrap();
        assert_eq!(
            cleared.record().annotations.keys().collect::<Vec<_>>(),
            ["keep"]
        );
    }
}
