//! The Debian package (`cargo xtask package --test`, and `cargo xtask test`, build it and
//! run these with `LVS_DEB` = the .deb and `LVS_PKG_ROOT` = a cached debootstrap root;
//! without them every test here prints SKIP).
//!
//! * what is in it: files, owners, modes, conffiles, dependencies, maintainer scripts that
//!   enable, start and attach nothing, man pages and completions that match the binary;
//! * the binary is static: no interpreter, no shared libraries, runs in an empty root;
//! * installed with `dpkg -i` into a fresh Debian bookworm root: not enabled, nothing
//!   attached, the network untouched; the units pass `systemd-analyze verify` against
//!   bookworm's own systemd; then the installed files do what the units do (`check`,
//!   ExecStart `attach` under the units' capability bounding set, marks seen by netfilter,
//!   `status`, ExecReload, ExecStop `detach`) in namespaces this test creates; `dpkg
//!   --purge` removes it all.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use lvs_tests::{
    cmd::run_ok,
    debroot::{DebRoot, with_root},
    frames::{Frame, IPPROTO_TCP},
    lab::{DEV, DIRECTOR_MAC, DIRECTOR_MAC_STR, ingress_hooks, mark_count, watch_marks},
    netns::{NetNs, veth},
    sender::Sender,
};

const DEB_NAME: &str = "lvs-ebpf";
const UNIT: &str = "lvs-ebpf@.service";
const EXAMPLE: &str = "/etc/lvs-ebpf/vips.toml.example";
/// What the example config marks (its first VIP) and its peer's MAC.
const VIP: Ipv4Addr = Ipv4Addr::new(172, 17, 85, 56);
const MARK: u32 = 0x3;
const PEER: [u8; 6] = [0x00, 0x0c, 0x29, 0x57, 0x88, 0xce];
const CLIENT: [u8; 6] = [0x52, 0x54, 0x00, 0xc1, 0x1e, 0x07];

fn deb() -> Option<PathBuf> {
    let p = std::env::var_os("LVS_DEB").map(PathBuf::from);
    if p.is_none() {
        eprintln!("SKIP: LVS_DEB not set (cargo xtask package --test sets it)");
    }
    p
}

fn debian_root() -> Option<PathBuf> {
    let p = std::env::var_os("LVS_PKG_ROOT").map(PathBuf::from);
    if p.is_none() {
        eprintln!("SKIP: LVS_PKG_ROOT not set (cargo xtask package --test sets it)");
    }
    p
}

fn out(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tempdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("lvs-pkgtest-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `dpkg-deb -x`: the package's files under a temp dir.
fn extract(deb: &Path) -> TempDir {
    let d = TempDir(tempdir("x"));
    run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&d.0));
    d
}

/// Subcommands the binary lists in `--help` (its visible ones, without `help`).
fn subcommands(bin: &Path) -> Vec<String> {
    let help = run_ok(Command::new(bin).arg("--help"));
    let mut in_commands = false;
    let mut v = Vec::new();
    for line in help.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap_or_default();
            if name != "help" {
                v.push(name.to_owned());
            }
        }
    }
    assert!(!v.is_empty(), "no subcommands in --help:\n{help}");
    v
}

/// Long options (`--foo`) the binary's `--help` of `sub` lists.
fn long_options(bin: &Path, sub: Option<&str>) -> BTreeSet<String> {
    let mut cmd = Command::new(bin);
    cmd.args(sub).arg("--help");
    let help = run_ok(&mut cmd);
    // Option lines: `  -n, --netns <NAME>  help text`; only the part before the help.
    let mut opts = BTreeSet::new();
    for line in help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
    {
        let spec = line.split("  ").next().unwrap_or_default();
        for w in spec.split([' ', ',', '=', '[', '<']) {
            if let Some(name) = w.strip_prefix("--")
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                opts.insert(w.to_owned());
            }
        }
    }
    assert!(opts.contains("--help"), "no options parsed from:\n{help}");
    opts
}

fn gunzip(p: &Path) -> String {
    run_ok(Command::new("gzip").arg("-dc").arg(p))
}

#[test]
fn package_contents_metadata_and_scripts() {
    let Some(deb) = deb() else { return };
    // Control fields.
    let field = |f: &str| {
        run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f))
            .trim()
            .to_owned()
    };
    assert_eq!(field("Package"), DEB_NAME);
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Architecture"), "amd64");
    // Static binary: no libc6 or any other shared-library dependency. Only the tools the
    // maintainer scripts and the daemon unit call.
    assert_eq!(field("Depends"), "init-system-helpers (>= 1.54~), procps");
    let control = run_ok(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("control"));
    for f in [
        "Pre-Depends",
        "Recommends",
        "Conflicts",
        "Breaks",
        "Replaces",
        "Essential",
    ] {
        assert!(
            !control.lines().any(|l| l.starts_with(&format!("{f}:"))),
            "{f} set:\n{control}"
        );
    }

    // Files: exact list, owners and modes.
    let x = extract(&deb);
    let bin = x.0.join("usr/sbin/lvs-loader");
    let subs = subcommands(&bin);
    let mut want: BTreeMap<String, &str> = [
        ("./usr/sbin/lvs-loader", "-rwxr-xr-x"),
        ("./etc/lvs-ebpf/vips.toml.example", "-rw-r--r--"),
        ("./usr/lib/systemd/system/lvs-ebpf@.service", "-rw-r--r--"),
        ("./usr/lib/systemd/system/lvs-ebpf.service", "-rw-r--r--"),
        ("./usr/share/man/man8/lvs-loader.8.gz", "-rw-r--r--"),
        (
            "./usr/share/bash-completion/completions/lvs-loader",
            "-rw-r--r--",
        ),
        (
            "./usr/share/zsh/vendor-completions/_lvs-loader",
            "-rw-r--r--",
        ),
        (
            "./usr/share/fish/vendor_completions.d/lvs-loader.fish",
            "-rw-r--r--",
        ),
        ("./usr/share/doc/lvs-ebpf/README.md", "-rw-r--r--"),
        ("./usr/share/doc/lvs-ebpf/copyright", "-rw-r--r--"),
        ("./usr/share/doc/lvs-ebpf/changelog.Debian.gz", "-rw-r--r--"),
        ("./usr/share/lintian/overrides/lvs-ebpf", "-rw-r--r--"),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_owned(), m))
    .collect();
    for s in &subs {
        want.insert(
            format!("./usr/share/man/man8/lvs-loader-{s}.8.gz"),
            "-rw-r--r--",
        );
    }
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let mut got = BTreeMap::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols.len() >= 6, "odd dpkg-deb -c line: {line}");
        let (mode, owner, path) = (cols[0], cols[1], cols[5]);
        assert_eq!(owner, "0/0", "{path} not owned by root: {line}");
        if mode.starts_with('d') {
            assert_eq!(mode, "drwxr-xr-x", "{line}");
            continue;
        }
        got.insert(path.to_owned(), mode.to_owned());
    }
    let want: BTreeMap<String, String> = want.into_iter().map(|(p, m)| (p, m.to_owned())).collect();
    assert_eq!(got, want, "files and modes in the package:\n{listing}");

    // Control archive: conffiles and maintainer scripts.
    let ctl = TempDir(tempdir("ctl"));
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctl.0));
    let conffiles = std::fs::read_to_string(ctl.0.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.trim(), EXAMPLE, "only the example is a conffile");
    for script in ["postinst", "prerm", "postrm"] {
        let text =
            std::fs::read_to_string(ctl.0.join(script)).unwrap_or_else(|e| panic!("{script}: {e}"));
        check_maintainer_script(script, &text);
    }
    assert!(!ctl.0.join("preinst").exists(), "no preinst expected");

    // The changelog's top entry is this version.
    let changelog = gunzip(&x.0.join("usr/share/doc/lvs-ebpf/changelog.Debian.gz"));
    let top = changelog.lines().next().unwrap_or_default();
    assert!(
        top.starts_with(&format!("{DEB_NAME} ({}) ", field("Version"))),
        "changelog's first entry is not this version: {top}"
    );
}

#[test]
fn lintian_reports_no_error_and_no_warning() {
    let Some(deb) = deb() else { return };
    let o = Command::new("lintian")
        .args(["--fail-on", "error,warning"])
        .arg(&deb)
        .output()
        .expect("lintian (setup.sh package installs it)");
    assert!(o.status.success(), "lintian: {}", out(&o));
}

/// A maintainer script may reload systemd, and keep an admin's earlier enablement of the
/// daemon, and no more: nothing enabled fresh, started, attached, or network-related.
fn check_maintainer_script(name: &str, text: &str) {
    assert!(text.starts_with("#!/bin/sh\n"), "{name}: not a sh script");
    assert!(text.contains("set -e"), "{name}: no set -e");
    let status = Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(text)
        .status()
        .expect("sh");
    assert!(status.success(), "{name}: sh -n fails");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for (i, l) in lines.iter().enumerate() {
        for bad in [
            "lvs-loader",
            "systemctl start",
            "systemctl enable",
            "systemctl restart",
            "deb-systemd-invoke start",
            "deb-systemd-invoke restart",
            "lvs-ebpf@",
            "modprobe",
            "ip ",
            "tc ",
            "sysctl",
            "iptables",
        ] {
            assert!(!l.contains(bad), "{name}: forbidden `{bad}` in: {l}");
        }
        if l.contains("deb-systemd-helper enable") {
            // Only debhelper's "re-enable what the admin had enabled" branch.
            let guarded = lines[..i]
                .iter()
                .rev()
                .take(3)
                .any(|p| p.contains("was-enabled"));
            assert!(guarded, "{name}: unconditional enable: {l}");
        }
        if l.contains("deb-systemd-invoke") {
            let allowed = (name == "postinst" && l.contains("try-restart lvs-ebpf.service"))
                || (name == "prerm" && l.contains("stop lvs-ebpf.service"));
            assert!(allowed, "{name}: unexpected service action: {l}");
        }
    }
}

#[test]
fn man_pages_and_completions_match_the_binary() {
    let Some(deb) = deb() else { return };
    let x = extract(&deb);
    let bin = x.0.join("usr/sbin/lvs-loader");
    let man8 = x.0.join("usr/share/man/man8");
    let subs = subcommands(&bin);
    let mut pages: Vec<(Option<&str>, PathBuf)> = vec![(None, man8.join("lvs-loader.8.gz"))];
    pages.extend(
        subs.iter()
            .map(|s| (Some(s.as_str()), man8.join(format!("lvs-loader-{s}.8.gz")))),
    );
    for (sub, page) in pages {
        let text = gunzip(&page);
        let title = match sub {
            None => "lvs-loader".to_owned(),
            Some(s) => format!("lvs-loader-{s}"),
        };
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!(".TH {title} 8 "))),
            "{}: no `.TH {title} 8` line",
            page.display()
        );
        // Every option the binary accepts is documented (roff escapes '-' as '\-').
        for opt in long_options(&bin, sub) {
            let roff = opt.replace('-', "\\-");
            assert!(
                text.contains(&roff),
                "{}: option {opt} of `lvs-loader {}` missing",
                page.display(),
                sub.unwrap_or("")
            );
        }
        assert!(
            text.contains(".SH \"SEE ALSO\"") && text.contains(".SH FILES"),
            "{}: no FILES or SEE ALSO section",
            page.display()
        );
        assert_eq!(
            text.matches(".ds Aq").count(),
            2,
            "{}: one apostrophe preamble (.ie/.el pair)",
            page.display()
        );
        // Pages refer to each other by the names they are installed under.
        for s in subs.iter().filter(|s| Some(s.as_str()) != sub) {
            assert!(
                text.contains(&format!("lvs\\-loader\\-{s}(8)")),
                "{}: no reference to lvs-loader-{s}(8)",
                page.display()
            );
        }
    }
    // The hidden generator subcommands are not advertised.
    assert!(
        !subs.iter().any(|s| s == "man" || s == "completions"),
        "{subs:?}"
    );

    let read = |p: &str| std::fs::read_to_string(x.0.join(p)).expect(p);
    let bash = read("usr/share/bash-completion/completions/lvs-loader");
    let zsh = read("usr/share/zsh/vendor-completions/_lvs-loader");
    let fish = read("usr/share/fish/vendor_completions.d/lvs-loader.fish");
    assert!(
        bash.lines()
            .any(|l| l.trim().starts_with("complete -F ") && l.trim().ends_with(" lvs-loader")),
        "bash completion registers no function for lvs-loader"
    );
    assert!(zsh.starts_with("#compdef lvs-loader"), "zsh completion");
    assert!(fish.contains("complete -c lvs-loader"), "fish completion");
    for s in &subs {
        for (shell, text) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
            assert!(text.contains(s.as_str()), "{shell} completion lacks {s}");
        }
    }
    let st = Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(&bash)
        .status()
        .expect("bash");
    assert!(st.success(), "bash completion does not parse");
}

#[test]
fn binary_is_static_and_runs_in_an_empty_root() {
    let Some(deb) = deb() else { return };
    let x = extract(&deb);
    let bin = x.0.join("usr/sbin/lvs-loader");
    let file = run_ok(Command::new("file").arg("-b").arg(&bin));
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "file: {file}"
    );
    let headers = run_ok(Command::new("readelf").arg("-lW").arg(&bin));
    assert!(
        !headers.contains("INTERP"),
        "program interpreter:\n{headers}"
    );
    let dynamic = run_ok(Command::new("readelf").arg("-dW").arg(&bin));
    assert!(
        !dynamic.contains("(NEEDED)"),
        "shared libraries:\n{dynamic}"
    );
    let comment = run_ok(Command::new("readelf").args(["-p", ".comment"]).arg(&bin));
    assert!(
        !comment.contains("GLIBC"),
        "built against glibc:\n{comment}"
    );

    // A root with nothing but the binary and the example config: no libc, no loader.
    let empty = TempDir(tempdir("empty"));
    std::fs::copy(&bin, empty.0.join("lvs-loader")).expect("copy binary");
    std::fs::copy(
        x.0.join("etc/lvs-ebpf/vips.toml.example"),
        empty.0.join("vips.toml"),
    )
    .expect("copy example");
    let o = Command::new("chroot")
        .arg(&empty.0)
        .args(["/lvs-loader", "--version"])
        .output()
        .expect("chroot");
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("lvs-loader {}", env!("CARGO_PKG_VERSION"))
    );
    let o = Command::new("chroot")
        .arg(&empty.0)
        .args(["/lvs-loader", "check", "--config", "/vips.toml"])
        .output()
        .expect("chroot");
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("OK: 3 VIP(s), 1 peer(s)"),
        "{}",
        out(&o)
    );
}

/// `Key=` values of `[Service]`'s `key` in a unit file, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_owned())
        .collect()
}

/// One of the template unit's Exec lines for interface `dev`, as an argv.
fn exec_line(unit: &str, key: &str, dev: &str) -> Vec<String> {
    let v = unit_values(unit, key);
    assert_eq!(v.len(), 1, "{key}= lines: {v:?}");
    v[0].replace("%I", dev)
        .replace("%i", dev)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The unit's CapabilityBoundingSet as a `setpriv --bounding-set` argument.
fn setpriv_caps(unit: &str) -> String {
    let caps = unit_values(unit, "CapabilityBoundingSet");
    assert_eq!(caps.len(), 1, "{caps:?}");
    let mut arg = String::from("-all");
    for c in caps[0].split_whitespace() {
        let c = c
            .strip_prefix("CAP_")
            .expect("CAP_ name")
            .to_ascii_lowercase();
        arg.push_str(&format!(",+{c}"));
    }
    arg
}

/// A two-namespace lab for the installed binary: frames from `tx0` in one namespace
/// arrive on `lvs0` in the other, where netfilter counts the marks they carry.
struct Net {
    /// Kept for its lifetime: the sender socket lives in it.
    _tx: NetNs,
    director: NetNs,
    sender: Sender,
}

impl Net {
    fn new() -> Self {
        let tx = NetNs::new("pkgs");
        let director = NetNs::new("pkgd");
        veth(&tx, "tx0", &director, DEV);
        director.set_mac(DEV, DIRECTOR_MAC_STR);
        tx.run("sysctl", &["-qw", "net.ipv6.conf.tx0.disable_ipv6=1"]);
        let sender = Sender::open(&tx, "tx0");
        Self {
            _tx: tx,
            director,
            sender,
        }
    }

    fn send(&self, src_mac: [u8; 6], n: usize) {
        let f = Frame::v4(
            src_mac,
            Ipv4Addr::new(172, 17, 85, 100),
            VIP,
            IPPROTO_TCP,
            40000,
            80,
        )
        .with_dst_mac(DIRECTOR_MAC)
        .bytes();
        for _ in 0..n {
            self.sender.send(&f);
        }
    }

    /// `chroot ROOT ARGV...` inside the director's namespace.
    fn in_root(&self, root: &DebRoot, argv: &[String]) -> Output {
        self.director
            .command("chroot")
            .arg(&root.path)
            .args(argv)
            .env("LC_ALL", "C")
            .output()
            .expect("nsenter chroot")
    }
}

/// Pins under lvs-loader's default pin root, in the root's private bpffs (whose only other
/// entries are the kernel's own maps.debug and progs.debug).
fn pins(root: &DebRoot) -> Vec<String> {
    root.walk("/sys/fs/bpf/lvs-ebpf")
}

#[test]
fn installs_into_a_fresh_debian_root_and_runs_from_the_installed_files() {
    let (Some(deb), Some(base)) = (deb(), debian_root()) else {
        return;
    };
    let net = Net::new();
    let links_before = net.director.ip(&["-br", "link"]);
    with_root(&base, |root| {
        std::fs::copy(&deb, root.join("/tmp/lvs-ebpf.deb")).expect("copy .deb");
        // Installed the way the README says, in the director's namespace: if a maintainer
        // script touched the network, it would show there.
        let argv = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let o = net.in_root(root, &argv(&["dpkg", "-i", "/tmp/lvs-ebpf.deb"]));
        assert!(o.status.success(), "dpkg -i: {}", out(&o));
        let o = root.output("dpkg-query", &["-W", "-f=${Status}", DEB_NAME]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "install ok installed");

        // Nothing enabled, started or attached; the network untouched.
        for unit in ["lvs-ebpf.service", "lvs-ebpf@lvs0.service"] {
            let o = root.output("systemctl", &["is-enabled", unit]);
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim(),
                "disabled",
                "{unit}: {}",
                out(&o)
            );
        }
        let links = root.walk("/etc/systemd/system");
        assert!(
            !links.iter().any(|l| l.contains("lvs-ebpf")),
            "enabled by the package: {links:?}"
        );
        assert_eq!(pins(root), Vec::<String>::new(), "pins after install");
        assert_eq!(net.director.ip(&["-br", "link"]), links_before);
        assert!(
            !ingress_hooks(&net.director, DEV).contains("lvs_ingress"),
            "attached by the package"
        );

        // The units, against bookworm's own systemd (unit directories, the installed
        // binary, man pages for Documentation=). Warnings count as failures.
        let o = Command::new("systemd-analyze")
            .arg(format!("--root={}", root.path.display()))
            .args([
                "verify",
                "lvs-ebpf@lvs0.service",
                "lvs-ebpf@br\\x2dlan.service",
                "lvs-ebpf.service",
            ])
            .env("MANPATH", root.join("/usr/share/man"))
            .env("LC_ALL", "C")
            .output()
            .expect("systemd-analyze");
        assert!(
            o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
            "systemd-analyze verify: {}",
            out(&o)
        );

        // The example config is accepted by the installed binary.
        let check = root.run("/usr/sbin/lvs-loader", &["check", "--config", EXAMPLE]);
        assert!(check.contains("OK: 3 VIP(s), 1 peer(s)"), "{check}");

        // What `systemctl start lvs-ebpf@lvs0` runs, from the installed unit, with the
        // unit's capability bounding set, after the operator's cp of the example.
        root.run("cp", &[EXAMPLE, "/etc/lvs-ebpf/vips.toml"]);
        let unit = std::fs::read_to_string(root.join("/usr/lib/systemd/system").join(UNIT))
            .expect("installed unit");
        let caps = setpriv_caps(&unit);
        let as_unit = |key: &str| {
            let mut v = argv(&["setpriv", "--bounding-set", &caps, "--no-new-privs", "--"]);
            v.extend(exec_line(&unit, key, DEV));
            net.in_root(root, &v)
        };
        let o = as_unit("ExecStart");
        assert!(o.status.success(), "ExecStart: {}", out(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("lvs0: attached"),
            "{}",
            out(&o)
        );
        assert!(
            pins(root)
                .iter()
                .any(|p| p.starts_with("/sys/fs/bpf/lvs-ebpf/")),
            "pins under the default root of the private bpffs: {:?}",
            pins(root)
        );

        // It marks: client packets get the example's mark, the peer's stay unmarked.
        let vip: IpAddr = VIP.into();
        watch_marks(&net.director, &[vip], &[0, MARK]);
        net.send(CLIENT, 5);
        net.send(PEER, 3);
        assert_eq!(
            mark_count(&net.director, vip, MARK),
            5,
            "client packets marked"
        );
        assert_eq!(
            mark_count(&net.director, vip, 0),
            3,
            "peer packets unmarked"
        );

        // status (plain for now; `status --check` is coming) and stats.
        let loader = |args: &[&str]| {
            let mut v = argv(&["/usr/sbin/lvs-loader"]);
            v.extend(argv(args));
            let o = net.in_root(root, &v);
            assert!(o.status.success(), "lvs-loader {args:?}: {}", out(&o));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let status: serde_json::Value =
            serde_json::from_str(&loader(&["status", "--json"])).expect("status JSON");
        let entries = status.as_array().expect("status array");
        assert_eq!(entries.len(), 1, "{status}");
        assert_eq!(entries[0]["interface"], DEV, "{status}");
        assert_eq!(entries[0]["state"], "ok", "{status}");
        let stats: serde_json::Value =
            serde_json::from_str(&loader(&["stats", DEV, "--json"])).expect("stats JSON");
        assert_eq!(stats["totals"]["marked"], 5, "{stats}");
        assert_eq!(stats["totals"]["peer"], 3, "{stats}");

        // `systemctl reload` and `systemctl stop`.
        let o = as_unit("ExecReload");
        assert!(o.status.success(), "ExecReload: {}", out(&o));
        let o = as_unit("ExecStop");
        assert!(o.status.success(), "ExecStop: {}", out(&o));
        assert!(
            !ingress_hooks(&net.director, DEV).contains("lvs_ingress"),
            "still hooked after ExecStop"
        );
        assert!(
            !pins(root).iter().any(|p| p.contains(DEV)),
            "pins left after ExecStop: {:?}",
            pins(root)
        );
        let status = loader(&["status"]);
        assert!(status.contains("no interface attached"), "{status}");

        // Purge: the package's files go, the operator's config stays.
        let o = net.in_root(root, &argv(&["dpkg", "--purge", DEB_NAME]));
        assert!(o.status.success(), "dpkg --purge: {}", out(&o));
        for gone in [
            "/usr/sbin/lvs-loader",
            EXAMPLE,
            "/usr/lib/systemd/system/lvs-ebpf@.service",
            "/usr/share/man/man8/lvs-loader.8.gz",
        ] {
            assert!(!root.join(gone).exists(), "{gone} left after purge");
        }
        assert!(
            root.join("/etc/lvs-ebpf/vips.toml").exists(),
            "operator's config removed"
        );
    });
    drop(net);
}
