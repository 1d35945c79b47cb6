//! Test doubles of a cluster, for tests of the operator's production adapters without a
//! Kubernetes API server: [`kubelet`] (a task that plays the nodes and the controllers on a
//! `kube-fake-client` API server), [`sms`] and [`cm`] (the storage-management service and
//! the cluster manager as HTTP servers on 127.0.0.1, speaking their documented paths and
//! envelopes, with injectable slow and failing replies).
#![deny(missing_docs)]

pub mod cm;
pub mod emulator;
pub mod kubelet;
pub mod sms;
