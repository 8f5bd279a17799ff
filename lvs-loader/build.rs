//! Builds the eBPF object (`lvs-ebpf`, for bpfel-unknown-none with the nightly toolchain
//! and bpf-linker) so that a plain `cargo build` produces a complete loader. The object is
//! embedded with `include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lvs-ebpf"))`.
use std::path::PathBuf;

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let root = manifest_dir.join("../lvs-ebpf");
    let root = root.to_str().context("non-UTF-8 path to lvs-ebpf")?;
    // LVS_EBPF_TOOLCHAIN pins the eBPF toolchain (default: `nightly`).
    println!("cargo:rerun-if-env-changed=LVS_EBPF_TOOLCHAIN");
    let custom = std::env::var("LVS_EBPF_TOOLCHAIN").ok();
    let toolchain = match custom.as_deref() {
        Some(t) if !t.is_empty() => Toolchain::Custom(t),
        _ => Toolchain::Nightly,
    };
    aya_build::build_ebpf(
        [Package { name: "lvs-ebpf", root_dir: root, ..Default::default() }],
        toolchain,
    )
    .context("building the eBPF object failed; run `cargo xtask setup` (nightly rust-src and bpf-linker)")
}
