//! Links every guest binary with `guest.ld` (load and entry address 0x4008_0000).

use std::env;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let script = dir.join("guest.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    // Only bare-metal builds get the guest layout; a host build of this crate is
    // refused by `compile_error!` in src/lib.rs anyway.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
    }
}
