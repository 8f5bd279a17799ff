//! Debian kernels for the guests: resolve the package with apt-cache (the host's
//! configuration, or a private one for bullseye), `apt-get download` it into the cache,
//! `dpkg -x` it and `depmod -b` the extracted tree; then work out which module files a set
//! of module names needs (with the host's kmod `modprobe --show-depends`).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::apt::{Apt, Source};
use crate::util;

/// A kernel the guests can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelChoice {
    /// Debian 11's kernel (5.10, bullseye): the oldest tested; no TCX, BPF maps charged to
    /// RLIMIT_MEMLOCK.
    #[value(name = "5.10")]
    V5_10,
    /// Debian 12's own kernel (6.1): no TCX, the loader's netlink path.
    #[value(name = "6.1")]
    V6_1,
    /// bookworm's 6.12 kernel (TCX).
    #[value(name = "6.12")]
    V6_12,
    /// All of them.
    All,
}

impl KernelChoice {
    pub const EVERY: [KernelChoice; 3] =
        [KernelChoice::V5_10, KernelChoice::V6_1, KernelChoice::V6_12];

    pub fn expand(self) -> Vec<KernelChoice> {
        match self {
            KernelChoice::All => Self::EVERY.to_vec(),
            k => vec![k],
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KernelChoice::V5_10 => "5.10",
            KernelChoice::V6_1 => "6.1",
            KernelChoice::V6_12 => "6.12",
            KernelChoice::All => "all",
        }
    }

    /// (apt source, meta package whose dependency names the current image, prefix that
    /// image must have)
    fn packages(self) -> (Source, &'static str, &'static str) {
        match self {
            KernelChoice::V5_10 => (
                Source::Suite("bullseye"),
                "linux-image-amd64",
                "linux-image-5.10.",
            ),
            KernelChoice::V6_1 | KernelChoice::All => {
                (Source::Host, "linux-image-amd64", "linux-image-6.1.")
            }
            KernelChoice::V6_12 => (Source::Host, "linux-image-6.12-amd64", "linux-image-6.12."),
        }
    }
}

/// An extracted kernel package.
pub struct Kernel {
    pub label: &'static str,
    /// e.g. linux-image-6.12.117+deb12-amd64
    pub package: String,
    /// `uname -r` of the guest, e.g. 6.12.117+deb12-amd64
    pub kver: String,
    pub vmlinuz: PathBuf,
    /// Root of the extracted package; modules live in `<root>/lib/modules/<kver>`.
    pub root: PathBuf,
}

impl Kernel {
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.kver)
    }
}

/// Downloads (once) and extracts (once) the kernel package for `choice` under `cache`.
pub fn fetch(choice: KernelChoice, cache: &Path) -> Result<Kernel> {
    let (source, meta, prefix) = choice.packages();
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let apt = Apt::new(source, cache)?;
    // A fresh machine (or a fresh private configuration) has no lists yet: update once,
    // then ask again.
    let resolved = apt.resolve(meta, prefix).or_else(|_| {
        eprintln!(
            "[vm-test] {meta} unknown to apt-cache ({}): running apt-get update",
            apt.describe()
        );
        apt.update()?;
        apt.resolve(meta, prefix)
    });
    let deb = match resolved {
        Ok(package) => match cached_deb(cache, &package)? {
            Some(deb) => deb,
            None => {
                eprintln!("[vm-test] downloading {package} ({})", apt.describe());
                apt.download(&package, cache)?;
                cached_deb(cache, &package)?.with_context(|| {
                    format!(
                        "apt-get download {package} left no .deb in {}",
                        cache.display()
                    )
                })?
            }
        },
        Err(err) => {
            // Offline or apt lists missing: any cached package of the right series will do.
            let fallback = newest_cached_deb(cache, prefix)?;
            match fallback {
                Some(deb) => {
                    eprintln!("[vm-test] {err:#}; using cached {}", deb.display());
                    deb
                }
                None => return Err(err),
            }
        }
    };
    let package = deb_package_name(&deb)?;
    let root = cache.join("kernels").join(&package);
    let marker = root.join(".lvs-vm-extracted");
    if !marker.exists() {
        if root.exists() {
            fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
        }
        fs::create_dir_all(&root)?;
        eprintln!("[vm-test] extracting {}", deb.display());
        util::run_quiet(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
        // Newer packages put modules under usr/lib; depmod -b and modprobe -d want lib/.
        if !root.join("lib/modules").exists() && root.join("usr/lib/modules").exists() {
            std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
        }
    }
    let kver = only_subdir(&root.join("lib/modules"))?;
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{kver}"));
    if !vmlinuz.exists() {
        bail!("{} has no boot/vmlinuz-{kver}", deb.display());
    }
    if !marker.exists() {
        util::run_quiet(Command::new("depmod").arg("-b").arg(&root).arg(&kver))
            .with_context(|| format!("depmod -b {} {kver}", root.display()))?;
        fs::write(&marker, &package)?;
    }
    Ok(Kernel {
        label: choice.label(),
        package,
        kver,
        vmlinuz,
        root,
    })
}

fn cached_deb(cache: &Path, package: &str) -> Result<Option<PathBuf>> {
    let want = format!("{package}_");
    Ok(debs(cache)?
        .into_iter()
        .filter(|p| file_name(p).starts_with(&want))
        .max())
}

fn newest_cached_deb(cache: &Path, prefix: &str) -> Result<Option<PathBuf>> {
    Ok(debs(cache)?
        .into_iter()
        .filter(|p| file_name(p).starts_with(prefix))
        .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok()))
}

fn debs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            out.push(path);
        }
    }
    Ok(out)
}

fn deb_package_name(deb: &Path) -> Result<String> {
    file_name(deb)
        .split('_')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("odd package file name {}", deb.display()))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn only_subdir(dir: &Path) -> Result<String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected exactly one kernel version in {}, found {names:?}",
            dir.display()
        ),
    }
}

/// The module files (paths inside the extracted package) that loading `wanted` needs, in no
/// particular order, and the names this kernel does not have at all. Built-in modules need
/// nothing.
pub fn module_closure(
    kernel: &Kernel,
    wanted: &[&str],
    on_demand: &[String],
) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut absent = Vec::new();
    if !on_demand.is_empty() {
        // One call for the lot; these all exist (they come from the tree itself).
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(&kernel.root)
            .args(["-S", &kernel.kver, "--show-depends", "-a", "--"])
            .args(on_demand)
            .output()
            .context("running the host's modprobe (kmod)")?;
        push_insmod_paths(&String::from_utf8_lossy(&out.stdout), &mut files);
    }
    for name in wanted {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(&kernel.root)
            .args(["-S", &kernel.kver, "--show-depends", "--", name])
            .output()
            .context("running the host's modprobe (kmod)")?;
        if !out.status.success() {
            absent.push((*name).to_owned());
            continue;
        }
        push_insmod_paths(&String::from_utf8_lossy(&out.stdout), &mut files);
    }
    Ok((files, absent))
}

/// `insmod /path/x.ko.xz [opts]` lines of `modprobe --show-depends` -> paths.
fn push_insmod_paths(show_depends: &str, files: &mut Vec<PathBuf>) {
    for line in show_depends.lines() {
        if let Some(rest) = line.strip_prefix("insmod ") {
            let path = PathBuf::from(rest.split_whitespace().next().unwrap_or_default());
            if !path.as_os_str().is_empty() && !files.contains(&path) {
                files.push(path);
            }
        }
    }
}

/// Names of the modules in the given directories of the kernel tree (e.g. `net/sched`),
/// for shipping whole families that the kernel loads on demand (`tc filter ... u32` makes it
/// ask for cls_u32) through the guest's /sbin/modprobe.
pub fn modules_in_dirs(kernel: &Kernel, dirs: &[&str]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in dirs {
        let path = kernel.modules_dir().join("kernel").join(dir);
        if !path.is_dir() {
            continue;
        }
        collect_module_names(&path, &mut names)?;
    }
    names.sort();
    names.dedup();
    Ok(names)
}

fn collect_module_names(dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect_module_names(&entry.path(), out)?;
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(idx) = name.find(".ko") {
            out.push(name[..idx].to_owned());
        }
    }
    Ok(())
}
