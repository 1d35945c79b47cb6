//! Specification tests, grouped by the sections of
//! [the engine semantics](../../../../docs/SEMANTICS.md), each test named after the rule it
//! checks; `docs/SEMANTICS.md` names the test behind every rule.

mod abandon_rules;
mod admission_rules;
mod crash_rules;
mod damage_rules;
mod execution_rules;
mod improvements;
mod loop_rules;
mod manager_rules;
mod recovery_rules;
mod resumption_rules;
mod state_machine_rules;
mod support;
mod trap_rules;
mod workflow_rules;
