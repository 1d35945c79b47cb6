//! The local mode's embedded backend: MPDClusters as JSON files and a persistent simulated
//! world under one locked state directory, so MPDCluster YAML can be applied with no
//! Kubernetes, and the process killed at any point and resumed.
//!
//! Layout of the state directory (see [`StateDir`]):
//! - `.lock`: held exclusively by the process that runs the operator;
//! - `clusters/<namespace>/<name>.json`: the MPDCluster objects ([`FileClusterStore`]);
//! - `sim.json`: the simulated world of every other port
//!   ([`Simulation::persistent`](crate::ports::sim::Simulation::persistent));
//! - `mementos/`, `history/`: for the workflow engine.
//!
//! `local` applies a document with `kubectl apply`'s three-way merge ([`last_applied`]), then
//! serves the simulator requests it carries ([`sim_requests`]).
//!
//! Every file is replaced atomically (temp file, fsync, rename, fsync of the directory).

pub(crate) mod atomic;
mod backend;
mod cluster_files;
mod documents;
mod error;
pub mod last_applied;
pub mod sim_requests;
mod state_dir;

pub use backend::LocalBackend;
pub use cluster_files::{ApplyOutcome, FileClusterStore};
pub use documents::{
    load_documents, parse_documents, validate_paths, API_VERSION, KIND, MAX_DOCUMENT_BYTES,
};
pub use error::LocalError;
pub use state_dir::StateDir;
