//! apt for the kernel packages: the host's own configuration (bookworm's kernels), or a
//! private one for another suite of the same Debian archive (bullseye's 5.10), which lives
//! entirely under the cache directory and is used only for the download. The host's
//! sources, lists and apt.conf.d are never touched: `APT_CONFIG` points apt at a file that
//! redirects every `Dir::` setting (and empties `Dir::Etc::Parts`, so the host's apt.conf.d
//! hooks do not run either).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::util;

/// Where Debian's archive is when the host's apt configuration does not say.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Which apt configuration a kernel package comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The host's sources (bookworm on the project's machines).
    Host,
    /// A suite of the host's Debian archive, through a private configuration.
    Suite(&'static str),
}

/// An apt configuration: the host's, or a private one (`APT_CONFIG` file).
pub struct Apt {
    config: Option<PathBuf>,
    what: String,
}

impl Apt {
    /// The configuration for `source`; a private one is (re)written under `cache`.
    pub fn new(source: Source, cache: &Path) -> Result<Self> {
        match source {
            Source::Host => Ok(Apt {
                config: None,
                what: "the host's apt sources".into(),
            }),
            Source::Suite(suite) => Self::private(suite, cache),
        }
    }

    fn private(suite: &str, cache: &Path) -> Result<Self> {
        let dir = fs::canonicalize(cache)
            .with_context(|| format!("resolving {}", cache.display()))?
            .join(format!("apt-{suite}"));
        for sub in [
            "lists/partial",
            "cache/archives/partial",
            "sources.list.d",
            "apt.conf.d",
            "preferences.d",
        ] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let mirror = std::env::var("LVS_VM_DEBIAN_MIRROR").unwrap_or_else(|_| host_mirror());
        let signed_by = if Path::new(KEYRING).exists() {
            format!(" [signed-by={KEYRING}]")
        } else {
            String::new()
        };
        write_if_changed(
            &dir.join("sources.list"),
            &format!("deb{signed_by} {mirror} {suite} main\n"),
        )?;
        let d = dir.display();
        let conf = format!(
            "// Written by `cargo xtask vm-test`: {suite}'s kernel packages, downloaded only.\n\
             Dir::Etc::SourceList \"{d}/sources.list\";\n\
             Dir::Etc::SourceParts \"{d}/sources.list.d\";\n\
             Dir::Etc::Parts \"{d}/apt.conf.d\";\n\
             Dir::Etc::Preferences \"{d}/preferences\";\n\
             Dir::Etc::PreferencesParts \"{d}/preferences.d\";\n\
             Dir::State::Lists \"{d}/lists\";\n\
             Dir::Cache \"{d}/cache\";\n\
             APT::Sandbox::User \"root\";\n\
             Acquire::Languages \"none\";\n\
             Acquire::IndexTargets::deb::DEP-11::DefaultEnabled \"false\";\n\
             Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled \"false\";\n\
             Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled \"false\";\n"
        );
        let config = dir.join("apt.conf");
        write_if_changed(&config, &conf)?;
        Ok(Apt {
            config: Some(config),
            what: format!("{suite} from {mirror} (private apt configuration in {d})"),
        })
    }

    /// What this configuration is, for messages.
    pub fn describe(&self) -> &str {
        &self.what
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        if let Some(config) = &self.config {
            cmd.env("APT_CONFIG", config);
        }
        cmd
    }

    /// `apt-get update` (quietly).
    pub fn update(&self) -> Result<()> {
        util::run_quiet(self.command("apt-get").args(["update", "-qq"]))
            .with_context(|| format!("apt-get update for {}", self.what))
    }

    /// The image package the meta package `meta` currently depends on (the one whose name
    /// starts with `prefix`).
    pub fn resolve(&self, meta: &str, prefix: &str) -> Result<String> {
        let out = util::output(self.command("apt-cache").args(["depends", meta]))
            .with_context(|| format!("apt-cache depends {meta} ({})", self.what))?;
        out.lines()
            .filter_map(|line| line.trim().strip_prefix("Depends: "))
            .map(str::trim)
            .find(|dep| dep.starts_with(prefix))
            .map(str::to_owned)
            .with_context(|| {
                format!(
                    "apt-cache: {meta} depends on no {prefix}* package in {}",
                    self.what
                )
            })
    }

    /// `apt-get download package` into `dir`.
    pub fn download(&self, package: &str, dir: &Path) -> Result<()> {
        util::run_quiet(
            self.command("apt-get")
                .args(["-q", "-o", "APT::Sandbox::User=root", "download", package])
                .current_dir(dir),
        )
        .with_context(|| format!("apt-get download {package} from {}", self.what))
    }
}

/// The host's Debian archive: the URI apt-cache policy lists for the host's own release
/// (origin and label `Debian`, not -security or -updates), else deb.debian.org.
fn host_mirror() -> String {
    let Ok(policy) = util::output(Command::new("apt-cache").arg("policy")) else {
        return DEFAULT_MIRROR.into();
    };
    mirror_from_policy(&policy).unwrap_or_else(|| DEFAULT_MIRROR.into())
}

/// ` 500 http://deb.debian.org/debian bookworm/main amd64 Packages` followed by
/// `     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64` ->
/// `http://deb.debian.org/debian`.
fn mirror_from_policy(policy: &str) -> Option<String> {
    let lines: Vec<&str> = policy.lines().collect();
    lines.windows(2).find_map(|w| {
        let release = w[1].trim().strip_prefix("release ")?;
        let fields: Vec<&str> = release.split(',').collect();
        let plain = fields.contains(&"o=Debian")
            && fields.contains(&"l=Debian")
            && fields
                .iter()
                .any(|f| f.starts_with("n=") && !f.contains('-'));
        if !plain {
            return None;
        }
        let mut words = w[0].split_whitespace();
        let _priority = words.next()?;
        let uri = words.next()?;
        (uri.starts_with("http://") || uri.starts_with("https://")).then(|| uri.to_owned())
    })
}

fn write_if_changed(path: &Path, contents: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::mirror_from_policy;

    #[test]
    fn mirror_is_the_plain_release_line() {
        let policy = "Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://security.example/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
 500 http://mirror.example/debian bookworm-updates/main amd64 Packages
     release v=12-updates,o=Debian,a=oldstable-updates,n=bookworm-updates,l=Debian,c=main,b=amd64
 500 http://mirror.example/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
";
        assert_eq!(
            mirror_from_policy(policy).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(mirror_from_policy("Package files:\n"), None);
    }
}
