//! The PolarDB shared-storage operator on `wf-engine`.
#![deny(missing_docs)]

pub mod callbacks;
pub mod cli;
pub mod cluster;
pub mod crd;
pub mod domain;
pub mod flows;
pub mod local;
pub mod operator;
pub mod ports;
pub mod rbac;
pub mod registration;
pub mod resource;
pub mod service;
pub mod status;
pub mod steps;
