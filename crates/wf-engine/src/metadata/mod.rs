//! Flow metadata: the YAML documents, their loader, step-group expansion and the resulting
//! catalog of flows ([semantics §4](../../../../docs/SEMANTICS.md#4-flows-and-step-groups)).

mod catalog;
mod document;
mod error;
mod loader;

pub use catalog::{FlowCatalog, FlowMeta, StepMeta, UnknownClass};
pub use error::MetadataError;
pub use loader::{FlowLoader, FlowSource, StaticLoader, YamlDirLoader, GROUP_FILE_SUFFIX};
