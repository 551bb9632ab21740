//! The functions' build script (each function's Cargo.toml names it with
//! `build = "../build-link.rs"`): links their binaries with
//! packed relative relocations (`-z pack-relative-relocs`, DT_RELR).
//!
//! A position-independent executable carries one relocation entry per
//! pointer in its read-only data, about 1.4 MB for task-api, which the
//! dynamic loader reads at every start; packed, they take a few kilobytes.
//! Measured side by side (docs/benchmarks-notes.md, "Where the idle memory
//! goes"): 1.3 to 2.8 MiB less idle resident memory per function.
//! Needs GNU ld 2.38+ (or lld) to link and glibc 2.36+ to run, as Debian
//! bookworm has; an older glibc refuses to start the binary
//! ("GLIBC_ABI_DT_RELR not found") rather than misbehave. `scripts/test`
//! checks each function binary carries it.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && target_env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!(
        "cargo:rerun-if-changed={}/../build-link.rs",
        env!("CARGO_MANIFEST_DIR")
    );
}
