//! `hypervisor/src/vm/`: the VM description language and kernel images.

#[path = "../../../hypervisor/src/vm/config.rs"]
pub mod config;
#[path = "../../../hypervisor/src/vm/image.rs"]
pub mod image;
