//! Staging trees for the guest's initramfs: host files copied at their own paths (symlink
//! chains kept, shared libraries pulled in through `ldd`), busybox applets for whatever the
//! real tools do not provide, and `cpio -H newc` archives of the result.
use std::{
    collections::HashSet,
    fs,
    io::Read as _,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Component, Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::util;

/// Top-level directories that are symlinks on a merged-/usr host (bookworm): mirrored so
/// that `/lib64/ld-linux-x86-64.so.2`, `/sbin/ip`... resolve in the guest as on the host.
const MERGED_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

pub struct Rootfs {
    pub root: PathBuf,
    installed: HashSet<PathBuf>,
}

impl Rootfs {
    /// A fresh, empty staging tree at `root` (removed first if it exists).
    pub fn new(root: &Path) -> Result<Self> {
        if root.exists() {
            fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
        }
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        Ok(Rootfs {
            root: root.to_owned(),
            installed: HashSet::new(),
        })
    }

    /// The staging path of the absolute guest path `guest`.
    pub fn path(&self, guest: impl AsRef<Path>) -> PathBuf {
        let rel: PathBuf = guest
            .as_ref()
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        self.root.join(rel)
    }

    /// Mirrors the host's merged-/usr symlinks and makes the usual empty directories.
    pub fn skeleton(&mut self) -> Result<()> {
        for dir in MERGED_DIRS {
            let host = Path::new("/").join(dir);
            if let Ok(target) = fs::read_link(&host) {
                let target_dir = self.path(Path::new("/").join(&target));
                fs::create_dir_all(&target_dir)?;
                symlink(&target, self.path(&host))
                    .with_context(|| format!("mirroring {}", host.display()))?;
            } else {
                fs::create_dir_all(self.path(&host))?;
            }
        }
        for dir in [
            "/usr/bin",
            "/usr/sbin",
            "/usr/local/bin",
            "/etc",
            "/root",
            "/proc",
            "/sys",
            "/dev",
            "/run",
            "/tmp",
            "/var/log",
            "/var/tmp",
            "/var/lib",
            "/mnt",
        ] {
            fs::create_dir_all(self.path(dir))?;
        }
        symlink("../run", self.path("/var/run"))?;
        Ok(())
    }

    /// Writes a file (mode 0644, or 0755 when `exec`).
    pub fn write(
        &self,
        guest: impl AsRef<Path>,
        contents: impl AsRef<[u8]>,
        exec: bool,
    ) -> Result<()> {
        let dest = self.path(guest.as_ref());
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&dest, contents).with_context(|| format!("writing {}", dest.display()))?;
        fs::set_permissions(
            &dest,
            fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }),
        )?;
        Ok(())
    }

    /// Copies the host file `host` to the same path in the guest, keeping symlinks (and
    /// following them), and pulling in an ELF file's shared libraries.
    pub fn install(&mut self, host: &Path) -> Result<()> {
        self.install_as(host, host, false)
    }

    /// Like [`install`](Self::install) but with debug info stripped from ELF files
    /// (test executables are several times smaller without it).
    pub fn install_stripped(&mut self, host: &Path) -> Result<()> {
        self.install_as(host, host, true)
    }

    fn install_as(&mut self, host: &Path, guest: &Path, strip: bool) -> Result<()> {
        if !self.installed.insert(guest.to_owned()) {
            return Ok(());
        }
        let meta =
            fs::symlink_metadata(host).with_context(|| format!("{} is missing", host.display()))?;
        // Put the entry under its parent's real path: the mirrored top-level symlinks make
        // the other spellings resolve.
        let parent = host.parent().context("no parent")?;
        let real_parent =
            fs::canonicalize(parent).with_context(|| format!("resolving {}", parent.display()))?;
        let name = host.file_name().context("no file name")?;
        let dest = self.path(real_parent.join(name));
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(host)?;
            if fs::symlink_metadata(&dest).is_err() {
                symlink(&target, &dest).with_context(|| format!("symlink {}", dest.display()))?;
            }
            let resolved = real_parent.join(&target);
            return self.install_as(&resolved, &resolved, strip);
        }
        if meta.is_dir() {
            return self.install_tree(host);
        }
        let elf = is_elf(host)?;
        if strip && elf {
            let status = Command::new("objcopy")
                .arg("--strip-debug")
                .arg(host)
                .arg(&dest)
                .status();
            if !matches!(status, Ok(s) if s.success()) {
                fs::copy(host, &dest).with_context(|| format!("copying {}", host.display()))?;
            }
        } else {
            fs::copy(host, &dest).with_context(|| format!("copying {}", host.display()))?;
        }
        fs::set_permissions(&dest, meta.permissions())?;
        if elf {
            for lib in shared_libraries(host)? {
                self.install(&lib)?;
            }
        }
        Ok(())
    }

    /// Installs every file under the host directory `dir`.
    pub fn install_tree(&mut self, dir: &Path) -> Result<()> {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        entries.sort();
        if entries.is_empty() {
            fs::create_dir_all(self.path(fs::canonicalize(dir)?))?;
        }
        for entry in entries {
            self.install(&entry)?;
        }
        Ok(())
    }

    /// Copies the host directory `src` to `guest` (no library resolution), skipping `skip`
    /// directory names: used for the test packages' source directories (fixtures, cwd).
    pub fn copy_dir(&self, src: &Path, guest: &Path, skip: &[&str]) -> Result<()> {
        let dest = self.path(guest);
        fs::create_dir_all(&dest)?;
        for entry in fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            if skip.iter().any(|s| name == *s) {
                continue;
            }
            let ft = entry.file_type()?;
            let to = guest.join(&name);
            if ft.is_dir() {
                self.copy_dir(&entry.path(), &to, skip)?;
            } else if ft.is_file() {
                fs::copy(entry.path(), self.path(&to))?;
            }
        }
        Ok(())
    }

    /// Links every busybox applet that no real tool provides to /usr/bin/busybox.
    pub fn busybox_applets(&mut self, busybox: &Path) -> Result<usize> {
        self.install(busybox)?;
        let list = util::output(Command::new(busybox).arg("--list"))?;
        let real_busybox = fs::canonicalize(busybox)?;
        let mut n = 0;
        for applet in list.lines().map(str::trim).filter(|a| !a.is_empty()) {
            let taken = ["/usr/bin", "/usr/sbin"]
                .iter()
                .any(|d| fs::symlink_metadata(self.path(Path::new(d).join(applet))).is_ok());
            if taken {
                continue;
            }
            let link = self.path(Path::new("/usr/bin").join(applet));
            symlink(&real_busybox, &link).with_context(|| format!("linking {}", link.display()))?;
            n += 1;
        }
        Ok(n)
    }
}

fn is_elf(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(f.read(&mut magic).unwrap_or(0) == 4 && magic == *b"\x7fELF")
}

/// Absolute paths of the shared libraries (and the dynamic loader) `ldd` reports.
fn shared_libraries(elf: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(elf)
        .output()
        .with_context(|| format!("ldd {}", elf.display()))?;
    // ldd fails on static executables ("not a dynamic executable"): nothing to pull in.
    if !out.status.success() {
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        if line.contains("not found") {
            bail!("ldd {}: {line}", elf.display());
        }
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.trim(),
            None => line,
        };
        if let Some(p) = path
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// Writes `dir` as a newc cpio archive to `out` (owner root, as the guest wants).
pub fn cpio(dir: &Path, out: &Path) -> Result<()> {
    let out_file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(
            "find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet",
        )
        .current_dir(dir)
        .stdout(out_file)
        .status()
        .context("running find | cpio (is cpio installed? `cargo xtask setup --vm`)")?;
    if !status.success() {
        bail!("cpio of {} failed: {status}", dir.display());
    }
    Ok(())
}
