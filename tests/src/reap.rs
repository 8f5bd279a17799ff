//! Leftovers of test processes that died without cleaning up (a `kill -9`, a guest's
//! timeout, a panic inside a `Drop`): namespaces `lvst-<tag>-<pid>-<n>` and pin roots
//! `/sys/fs/bpf/lvs-test-<tag>-<pid>-<n>` whose process is gone. They hold programs,
//! maps and veths in the kernel and pile up on a machine that runs the tests often, so
//! the first namespace or pin root a test process creates removes them first. A live
//! process's leftovers (another test binary running now) are never touched: its pid
//! still exists.

use std::{path::Path, process::Command, sync::Once};

static ONCE: Once = Once::new();

/// The pid in `<prefix><tag>-<pid>-<n>`, if `name` has that form.
fn pid_of(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let mut parts = rest.rsplitn(3, '-');
    let n = parts.next()?;
    let pid = parts.next()?;
    let tag = parts.next()?;
    if tag.is_empty() || n.parse::<u32>().is_err() {
        return None;
    }
    pid.parse().ok()
}

fn dead(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the leftovers of dead test processes; what it removed.
pub fn stale_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if pid_of(&name, "lvst-").is_some_and(dead)
                && Command::new("ip")
                    .args(["netns", "del", &name])
                    .status()
                    .is_ok_and(|s| s.success())
            {
                removed.push(format!("netns {name}"));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/sys/fs/bpf") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if pid_of(&name, "lvs-test-").is_some_and(dead)
                && std::fs::remove_dir_all(e.path()).is_ok()
            {
                removed.push(format!("pins {name}"));
            }
        }
    }
    removed
}

/// [`stale_leftovers`], once per test process.
pub fn once() {
    ONCE.call_once(|| {
        for r in stale_leftovers() {
            eprintln!("removed a dead test process's leftover: {r}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(pid_of("lvst-racetcd-4401-7", "lvst-"), Some(4401));
        assert_eq!(pid_of("lvst-a-b-12-3", "lvst-"), Some(12));
        assert_eq!(pid_of("lvs-test-crtc-13367-2", "lvs-test-"), Some(13367));
        assert_eq!(pid_of("lvst-12-3", "lvst-"), None);
        assert_eq!(pid_of("lvst-x-12-y", "lvst-"), None);
        assert_eq!(pid_of("lvs-ebpf", "lvs-test-"), None);
        assert_eq!(pid_of("dumpns", "lvst-"), None);
    }
}
