//! Specification tests: one module per section of the engine semantics, each test named
//! after the rule it checks.

mod execution_rules;
mod improvements;
mod manager_rules;
mod recovery_rules;
mod state_machine_rules;
mod support;
mod workflow_rules;
