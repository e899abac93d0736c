//! Finding the Terraform roots under a directory: the directories that hold a saved backend.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::backends::saved::{DEFAULT_DATA_DIR, SAVED_FILE};
use crate::log;

/// The data dir name a sweep looks for. `TF_DATA_DIR` is per invocation, not per tree, so it is not
/// honoured here: a root is a directory holding `.terraform/terraform.tfstate`.
pub(super) const DATA_DIR: &str = DEFAULT_DATA_DIR;
/// Directories never descended into: version control internals, JavaScript dependencies (huge, and
/// never a root), and data dirs themselves (their `modules/` holds downloaded copies of modules —
/// possibly with their authors' `.terraform` — and `providers/` holds large binaries).
const SKIPPED_DIRS: &[&str] = &[".git", "node_modules", DATA_DIR];

/// Every root under `dir` (`dir` included), sorted. Symbolic links are not followed (a link back up
/// the tree would loop, and a linked root is swept where it really is); unreadable directories are
/// passed over. `found` hears of each root as it is found (for the progress line).
pub fn find_roots(dir: &Path, found: &mut dyn FnMut(&Path)) -> Vec<PathBuf> {
    find_roots_noting(dir, found, &mut |_, _| {})
}

/// [`find_roots`], and `unreadable` hears of each directory that could not be searched (a root
/// there would be missed: `sweep` says so and exits non-zero, issue #20 item 12).
pub fn find_roots_noting(
    dir: &Path,
    found: &mut dyn FnMut(&Path),
    unreadable: &mut dyn FnMut(&Path, &io::Error),
) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let data_dir = current.join(DATA_DIR);
        // Denied: `.terraform` (or the directory) cannot be searched, so whether it is a root is
        // unknown; said once, for the directory when that cannot be read either.
        let mut denied = None;
        match fs::metadata(data_dir.join(SAVED_FILE)) {
            Ok(m) if m.is_file() => {
                found(&current);
                roots.push(current.clone());
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied = Some(e),
            _ => {}
        }
        let entries = match fs::read_dir(&current) {
            Ok(e) => e,
            Err(e) => {
                log::debug(|| format!("sweep: cannot read {}: {e}", current.display()));
                unreadable(&current, &e);
                continue;
            }
        };
        if let Some(e) = denied {
            unreadable(&data_dir, &e);
        }
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let name = entry.file_name();
            if is_dir && !SKIPPED_DIRS.iter().any(|s| name == *s) {
                pending.push(entry.path());
            }
        }
    }
    roots.sort();
    roots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::sweep::tests::saved_file;

    #[test]
    fn walking_finds_roots_and_skips_caches() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for root in ["", "a", "a/nested", "b/c d", "x/broken"] {
            saved_file(&d.join(root), "{}");
        }
        // Not roots: no saved file, or inside skipped directories.
        fs::create_dir_all(d.join("empty/.terraform")).unwrap();
        for skipped in [
            ".git/modules/m",
            "node_modules/pkg",
            "a/.terraform/modules/m",
            "a/.terraform/providers/p",
        ] {
            saved_file(&d.join(skipped), "{}");
        }
        let mut seen = 0;
        let roots = find_roots(d, &mut |_| seen += 1);
        // Paths compare by component, so `a/nested` is also Windows' `a\nested`.
        let rel: Vec<&Path> = roots.iter().map(|r| r.strip_prefix(d).unwrap()).collect();
        let want = ["", "a", "a/nested", "b/c d", "x/broken"].map(Path::new);
        assert_eq!(rel, want);
        assert_eq!(seen, 5);
    }

    #[cfg(unix)]
    #[test]
    fn walking_does_not_follow_links() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        saved_file(&d.join("real"), "{}");
        std::os::unix::fs::symlink(d, d.join("real/loop")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("alias")).unwrap();
        let roots = find_roots(d, &mut |_| {});
        assert_eq!(roots, vec![d.join("real")]);
    }
}
