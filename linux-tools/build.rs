//! Links the programs as static Linux executables at 0x40_0000 (no PIE, no libc).

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        for a in [
            "-static",
            "--no-pie",
            "--image-base=0x400000",
            "-zmax-page-size=0x1000",
        ] {
            println!("cargo:rustc-link-arg-bins={a}");
        }
    }
}
