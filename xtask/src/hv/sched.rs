//! `hypervisor/src/sched/`: the scheduling policy.

#[path = "../../../hypervisor/src/sched/policy.rs"]
pub mod policy;
