//! The reference hypervisor's pure modules (no hardware, `core` + `alloc`), compiled
//! into xtask: the runner parses VM descriptions and recognises kernels with the
//! hypervisor's own code, and their host tests run here.
#![allow(dead_code)]

pub mod sched;
pub mod vm;
