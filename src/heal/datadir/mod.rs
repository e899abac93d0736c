//! The data dir's durability: every write tfshim makes in `<data dir>` (issue #12), so that the
//! rules — fsync, atomic rename, recovery — are read together. `repair.rs` decides what to run and
//! what to check; this module owns the files. It never imports the repair: the pure checks both use
//! are in `heal::invariants`.
//!
//! Terraform rewrites `<data dir>/terraform.tfstate` in place: it opens the file read-write, truncates
//! it, writes the new JSON and fsyncs (docs/saved-backend-writes.md). A process-group kill between the
//! truncate and the write leaves an empty file, and the old bytes would live only in tfshim's memory.
//! So, for the duration of a repair:
//!
//! 1. Before terraform starts, the old bytes are written to [`BACKUP_FILE`] next to the saved file
//!    (created exclusively, mode 0600 — it holds the same secrets — owned like the saved file,
//!    fsynced, and the directory fsynced), then the [`JOURNAL_FILE`] beside it: what the repair
//!    intends (which credential attributes it changes; every other setting stays), bound to the
//!    backup by its digest, no secret in it. No backup and journal, no repair (`backup.rs`).
//! 2. The settings file is created after them and removed before them ([`SETTINGS_PREFIX`], random
//!    suffix, 0600, in the data dir), so a settings file never exists without a backup.
//! 3. Putting the old bytes back happens only when the saved file's bytes differ, so a file terraform
//!    did not touch keeps its inode, hard links, owner and mode. It is atomic — the backup itself is
//!    given the saved file's owner and mode and renamed over it (a rename needs no free space, so a
//!    full disk cannot stop it), then the directory is fsynced — and never an in-place write: if it
//!    fails, the saved file is left as it is, the backup stays, and the user is told.
//! 4. The backup and its journal are deleted only once the outcome is settled (verified, or put back).
//! 5. Recovery (`recover.rs`): a backup found while holding the exclusive lock (`lock.rs`) belongs to
//!    a repair that was killed. It puts back only what that repair itself could have written: a file
//!    terraform was writing (missing, empty, truncated, unparsable), or a complete one that holds
//!    every setting the repair handed terraform but breaks the invariants. The repair's intended
//!    result is kept. Any other valid saved file is somebody's deliberate change made since (`terraform
//!    init -reconfigure` to other state, by hand, Atlantis or `TFSHIM_MODE=off`): it is kept, the
//!    backup deleted, one line said, and the backup's backend never contacted (issue #20 item 2).

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

mod backup;
mod lock;
mod recover;

pub use backup::{Backup, Intent, Journal, Restored};
pub use lock::Lock;
pub use recover::{interrupted_repair, recover_if_interrupted};

/// The per-data-dir lock file (kept: removing a lock file others may have open is a race).
pub const LOCK_FILE: &str = "tfshim.lock";
/// The backup of the saved file while a repair runs: a fixed name, so the next run finds it.
pub const BACKUP_FILE: &str = "terraform.tfstate.tfshim-backup";
/// What the repair that made the backup intends (module comment, 1): a fixed name beside it.
pub const JOURNAL_FILE: &str = "terraform.tfstate.tfshim-journal";
/// The `-backend-config` settings files: this prefix and a random suffix (never a value).
pub const SETTINGS_PREFIX: &str = "tfshim-settings-";
/// Temporaries of a restore into another directory (the saved file is a symlink to it).
const RESTORE_PREFIX: &str = ".tfshim-restore-";

/// What went wrong in the data dir; each says what to do next, in one line, with no secret.
#[derive(Debug)]
pub enum Error {
    /// The lock could not be created or taken: no repair may start.
    Lock(String),
    /// The backup, its journal or the settings file could not be written: no repair may start.
    Backup(String),
    /// The old bytes could not be put back: the saved file is as terraform left it, the backup
    /// stays (the next run's recovery tries again).
    Restore(String),
    /// A killed repair's backup could not be read: it stays, and no repair may start.
    Recovery(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Lock(m) | Error::Backup(m) | Error::Restore(m) | Error::Recovery(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for Error {}

/// "`what`: `err`", the way every message here ends with the OS's reason.
fn because(what: impl fmt::Display, err: impl fmt::Display) -> String {
    format!("{what}: {err}")
}

/// Makes a rename or deletion in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file; NTFS journals renames itself.
        let _ = dir;
        Ok(())
    }
}

/// The saved file a repair may rewrite: where it really is (through a symlink, the file it points
/// to, so that the link stays a link).
fn real_path(saved: &Path) -> PathBuf {
    std::fs::canonicalize(saved).unwrap_or_else(|_| saved.to_path_buf())
}

/// Writes the `-backend-config` settings file: JSON (terraform reads such files as HCL or JSON),
/// 0600, `SETTINGS_PREFIX` + a random suffix, in the data dir (module comment, 2). It is closed at
/// once and deleted when the returned path is dropped. Its path is absolute, because `-chdir`
/// changes terraform's directory. (Terraform 1.11 would take the values as `-backend-config=KEY=VALUE`
/// too — measured, nested `endpoints={…}` included — but a command line is readable by every local
/// user in the process list, and bucket, key, role ARNs and KMS ids are not for them.)
pub fn write_settings(
    settings: &Map<String, Value>,
    data_dir: &Path,
) -> Result<tempfile::TempPath, Error> {
    let text = serde_json::to_vec_pretty(settings)
        .map_err(|e| Error::Backup(because("cannot encode the backend settings", e)))?;
    let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let write = || -> io::Result<tempfile::TempPath> {
        let mut f = tempfile::Builder::new()
            .prefix(SETTINGS_PREFIX)
            .suffix(".json")
            .tempfile_in(&dir)?;
        f.write_all(&text)?;
        f.flush()?;
        Ok(f.into_temp_path())
    };
    write().map_err(|e| {
        Error::Backup(because(
            format_args!(
                "cannot write the backend settings file in {}",
                data_dir.display()
            ),
            e,
        ))
    })
}
