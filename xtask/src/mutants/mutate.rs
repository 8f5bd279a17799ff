//! Mutating a file in place: the pristine copy kept in `target/mutants/` first, the guard
//! that puts it back, and recovery from a run that was killed while a file was mutated.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::list::Mutation;

/// Puts the pristine file back when dropped (after the mutation's run, on an error, on a
/// panic), then removes the backup copy.
pub(super) struct Restore {
    path: PathBuf,
    backup: PathBuf,
    original: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        match std::fs::write(&self.path, &self.original) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.backup);
            }
            Err(e) => eprintln!(
                "[mutants] RESTORING {} FAILED: {e}; the original is in {}",
                self.path.display(),
                self.backup.display()
            ),
        }
    }
}

/// The backup copy of `file` in `dir`.
fn backup_path(dir: &Path, file: &Path) -> PathBuf {
    dir.join(file.to_string_lossy().replace('/', "__"))
}

/// Restores every file an interrupted run (SIGKILL, power loss) left mutated.
pub(super) fn recover(root: &Path, dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rel) = name.strip_suffix(".orig") else {
            continue;
        };
        let target = root.join(rel.replace("__", "/"));
        let text =
            std::fs::read(e.path()).with_context(|| format!("reading {}", e.path().display()))?;
        std::fs::write(&target, text).with_context(|| format!("restoring {}", target.display()))?;
        std::fs::remove_file(e.path())?;
        eprintln!(
            "[mutants] restored {} left mutated by an interrupted run",
            target.display()
        );
    }
    Ok(())
}

/// Applies `m` to its file and returns the guard that undoes it.
pub(super) fn apply(root: &Path, dir: &Path, m: &Mutation) -> Result<Restore> {
    let path = root.join(&m.file);
    let original =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let count = original.matches(&m.from).count();
    if count != 1 {
        bail!(
            "mutation {:?}: the snippet {:?} occurs {count} times in {} (must be once)",
            m.name,
            m.from,
            m.file.display()
        );
    }
    let mut backup = backup_path(dir, &m.file);
    backup.as_mut_os_string().push(".orig");
    std::fs::create_dir_all(dir)?;
    std::fs::write(&backup, &original).with_context(|| format!("writing {}", backup.display()))?;
    let guard = Restore {
        path: path.clone(),
        backup,
        original: original.clone(),
    };
    std::fs::write(&path, original.replacen(&m.from, &m.to, 1))
        .with_context(|| format!("mutating {}", path.display()))?;
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mutation_is_undone_by_its_guard_and_recovered_after_a_kill() {
        let root = std::env::temp_dir().join(format!("xtask-mutants-{}", std::process::id()));
        let dir = root.join("target/mutants");
        std::fs::create_dir_all(root.join("src")).expect("dir");
        std::fs::write(root.join("src/a.rs"), "let x = 1 + 2;\n").expect("write");
        let m = Mutation {
            name: "plus".into(),
            file: "src/a.rs".into(),
            from: "1 + 2".into(),
            to: "1 - 2".into(),
        };
        {
            let _g = apply(&root, &dir, &m).expect("apply");
            let now = std::fs::read_to_string(root.join("src/a.rs")).expect("read");
            assert_eq!(now, "let x = 1 - 2;\n");
        }
        let back = std::fs::read_to_string(root.join("src/a.rs")).expect("read");
        assert_eq!(back, "let x = 1 + 2;\n");
        // A run killed while mutated: the guard never ran.
        std::mem::forget(apply(&root, &dir, &m).expect("apply"));
        recover(&root, &dir).expect("recover");
        let back = std::fs::read_to_string(root.join("src/a.rs")).expect("read");
        assert_eq!(back, "let x = 1 + 2;\n");
        let _ = std::fs::remove_dir_all(&root);
    }
}
