//! Builds the eBPF objects (`lvs-ebpf`, `lvs-htab`, `lvs-empty`: bpfel-unknown-none, the
//! nightly toolchain and bpf-linker) so that a plain `cargo build` produces a complete
//! loader. They are embedded with `include_bytes_aligned!(concat!(env!("OUT_DIR"), ...))`.
//!
//! The object does not depend on the loader's profile, target or features (aya-build always
//! builds it in release for the BPF target with its own flags), so every build of the
//! loader in one target directory shares one eBPF build: `<target dir>/lvs-ebpf-object`,
//! under an exclusive lock, whose result is copied into this build's `OUT_DIR`. A second
//! profile (the release payload of `vm-test`, the musl package, a `cargo test -p` with
//! other features) then finds it fresh instead of compiling it again (~25 s each).
use std::{
    fs::{self, File},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

/// The `lvs-ebpf` crate, whose binaries are the objects.
const PACKAGE: &str = "lvs-ebpf";
/// Its binaries: the datapath, the `htab` benchmark contender, the empty program.
const OBJECTS: [&str; 3] = ["lvs-ebpf", "lvs-htab", "lvs-empty"];

fn main() -> anyhow::Result<()> {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let root = manifest_dir.join("../lvs-ebpf");
    let root = root.to_str().context("non-UTF-8 path to lvs-ebpf")?;
    // LVS_EBPF_TOOLCHAIN pins the eBPF toolchain (default: `nightly`).
    println!("cargo:rerun-if-env-changed=LVS_EBPF_TOOLCHAIN");
    let custom = std::env::var("LVS_EBPF_TOOLCHAIN").ok();
    let toolchain = match custom.as_deref() {
        Some(t) if !t.is_empty() => Toolchain::Custom(t),
        _ => Toolchain::Nightly,
    };

    // The shared directory, or this build's own when OUT_DIR is not under a cargo target
    // directory (then nothing is shared, as before).
    let shared =
        target_dir(&out_dir).map_or_else(|| out_dir.clone(), |t| t.join("lvs-ebpf-object"));
    fs::create_dir_all(&shared).with_context(|| format!("creating {}", shared.display()))?;
    let lock_path = shared.join(".lock");
    let lock =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    // Held until the object is copied out: another build (of another profile or target,
    // in parallel) neither builds into the same directory nor replaces the object while
    // this one copies it.
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;

    // aya-build writes the object into $OUT_DIR (and builds under $OUT_DIR/aya-build).
    // SAFETY: the build script is single-threaded here; nothing else reads the environment.
    unsafe { std::env::set_var("OUT_DIR", &shared) };
    let built = aya_build::build_ebpf(
        [Package {
            name: PACKAGE,
            root_dir: root,
            ..Default::default()
        }],
        toolchain,
    );
    // SAFETY: as above.
    unsafe { std::env::set_var("OUT_DIR", &out_dir) };
    built.context(
        "building the eBPF object failed; run `cargo xtask setup` (nightly rust-src and bpf-linker)",
    )?;
    if shared != out_dir {
        for object in OBJECTS {
            let (from, to) = (shared.join(object), out_dir.join(object));
            fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}

/// The cargo target directory `out_dir` lies in. OUT_DIR is
/// `<target dir>[/<triple>]/<profile>/build/<package>-<hash>/out`, and cargo writes a
/// `CACHEDIR.TAG` at the root of the target directory and in each `<triple>` directory:
/// the outermost of the 5 nearest ancestors holding one.
fn target_dir(out_dir: &Path) -> Option<PathBuf> {
    out_dir
        .ancestors()
        .skip(1)
        .take(5)
        .filter(|d| d.join("CACHEDIR.TAG").is_file())
        .last()
        .map(Path::to_path_buf)
}
