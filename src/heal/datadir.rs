//! The data dir's durability: the per-data-dir lock, the durable backup of the saved file that lives
//! as long as a repair does, putting the old bytes back, the `-backend-config` settings file, and the
//! recovery that puts things right after a repair was killed (issue #12). `repair.rs` decides what to
//! run and what to check; this module owns every write tfshim makes in the data dir.
//!
//! Terraform rewrites `<data dir>/terraform.tfstate` in place: it opens the file read-write, truncates
//! it, writes the new JSON and fsyncs (docs/saved-backend-writes.md). A process-group kill between the
//! truncate and the write leaves an empty file, and the old bytes would live only in tfshim's memory.
//! So, for the duration of a repair:
//!
//! 1. Before terraform starts, the old bytes are written to [`BACKUP_FILE`] next to the saved file
//!    (created exclusively, mode 0600 — it holds the same secrets — owned like the saved file,
//!    fsynced, and the directory fsynced). No backup, no repair.
//! 2. The settings file is created after the backup and removed before it ([`SETTINGS_PREFIX`],
//!    random suffix, 0600, in the data dir), so a settings file never exists without a backup.
//! 3. Putting the old bytes back happens only when the saved file's bytes differ, so a file terraform
//!    did not touch keeps its inode, hard links, owner and mode. It is atomic — the backup itself is
//!    given the saved file's owner and mode and renamed over it (a rename needs no free space, so a
//!    full disk cannot stop it), then the directory is fsynced — and never an in-place write: if it
//!    fails, the saved file is left as it is, the backup stays, and the user is told.
//! 4. The backup is deleted only once the outcome is settled (verified, or put back).
//! 5. Recovery: a backup found while holding the exclusive lock belongs to a repair that was killed
//!    (a live repair holds that lock). Under the lock, [`recovery_step`] decides, from the two files'
//!    bytes alone: an unreadable backup was never complete, so terraform never ran — delete it; a
//!    saved file that is missing, empty or not a saved backend is replaced by the backup; one
//!    identical to the backup needs nothing; one that is a valid saved backend but different is what
//!    terraform wrote before tfshim could check it, and is checked against the backup with the
//!    repair's invariants — same type, same hash, same settings; its credentials may differ, since
//!    they never select the state — kept if it passes, else replaced by the backup. Either way the
//!    state addressed is the one the backup addressed. Leftover settings files and restore temporaries
//!    are deleted. Recovery runs before every backend-loading proxied run (`TFSHIM_MODE=fix` or
//!    `warn`: it only undoes tfshim's own interrupted change) and whenever the lock is taken to repair.
//!
//! Long on purpose: every write in the data dir is here, so that the durability rules (fsync, atomic
//! rename, recovery) are read together; the unit tests follow the code.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::backends::saved::{SavedBackend, SAVED_FILE};
use crate::heal::repair::check_invariants;
use crate::log;

/// The per-data-dir lock file (kept: removing a lock file others may have open is a race).
pub const LOCK_FILE: &str = "tfshim.lock";
/// The backup of the saved file while a repair runs: a fixed name, so the next run finds it.
pub const BACKUP_FILE: &str = "terraform.tfstate.tfshim-backup";
/// The `-backend-config` settings files: this prefix and a random suffix (never a value).
pub const SETTINGS_PREFIX: &str = "tfshim-settings-";
/// Temporaries of a restore into another directory (the saved file is a symlink to it).
const RESTORE_PREFIX: &str = ".tfshim-restore-";

/// How long a run waits for another tfshim's repair of the same directory before giving up (and
/// running terraform unchanged): a repair is one `init`, normally seconds.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// Holds the per-data-dir lock while alive (the lock is released when the file is closed).
pub struct Lock(#[allow(dead_code)] File);

/// Polls `try` until it succeeds or `LOCK_WAIT` has passed; says once that it is waiting.
fn wait_for(
    what: &str,
    mut attempt: impl FnMut() -> Result<(), fs::TryLockError>,
) -> io::Result<bool> {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut said = false;
    loop {
        match attempt() {
            Ok(()) => return Ok(true),
            Err(fs::TryLockError::Error(e)) => return Err(e),
            Err(fs::TryLockError::WouldBlock) if Instant::now() >= deadline => return Ok(false),
            Err(fs::TryLockError::WouldBlock) => {
                if !said {
                    log::say(&format!(
                        "another tfshim is repairing this directory; waiting {what}"
                    ));
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Lock {
    /// A shared hold on an existing lock file, so that a reader never sees the saved file half-way
    /// through another tfshim's repair. No lock file (no repair ever ran here), no access, or a
    /// repair that takes too long: `None`, and the caller reads anyway (a half-written file then
    /// fails to parse, and tfshim fails open).
    pub fn shared_if_exists(data_dir: &Path) -> Option<Lock> {
        let file = File::open(data_dir.join(LOCK_FILE)).ok()?;
        match wait_for("to read the saved backend", || file.try_lock_shared()) {
            Ok(true) => Some(Lock(file)),
            _ => None,
        }
    }

    /// Takes `<data dir>/tfshim.lock`, waiting (and saying so) while another tfshim holds it, for
    /// at most two minutes, then recovers from a repair that was killed (module comment, 5). An
    /// error means no repair may start: the lock is not to be had, or a killed repair's backup
    /// could not be dealt with (the message says what to do).
    pub fn acquire(data_dir: &Path) -> Result<Lock> {
        let path = data_dir.join(LOCK_FILE);
        // flock(2) needs no write access: holding the lock read-only leaves no file of tfshim's
        // open for writing while terraform runs.
        let file = File::open(&path)
            .or_else(|_| {
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .and_then(|_| File::open(&path))
            })
            .and_then(|f| match f.metadata()?.is_file() {
                true => Ok(f),
                false => Err(io::Error::other("something else is in its place")),
            })
            .with_context(|| format!("cannot create the lock file {}", path.display()))?;
        let locked = wait_for("for it to finish", || file.try_lock())
            .with_context(|| format!("cannot lock {}", path.display()))?;
        if !locked {
            bail!(
                "another tfshim has held {} for {} s; if none is running, delete that file",
                path.display(),
                LOCK_WAIT.as_secs()
            );
        }
        let lock = Lock(file);
        recover(data_dir)?;
        Ok(lock)
    }
}

/// Before a backend-loading run reads the saved file: if a killed repair left its backup, take the
/// lock (which recovers) and let it go again. One `stat` when there is nothing to do.
pub fn recover_if_interrupted(data_dir: &Path) {
    if fs::symlink_metadata(data_dir.join(BACKUP_FILE)).is_err() {
        return;
    }
    if let Err(e) = Lock::acquire(data_dir) {
        log::say(&format!("{e:#}"));
    }
}

/// What `shim doctor` says about a backup a killed repair left: what the next proxied run's recovery
/// will do with it, decided by [`recovery_step`] as recovery itself decides. Read-only: recovery
/// belongs to a run that takes the lock. `None`: no backup.
pub fn interrupted_repair(data_dir: &Path) -> Option<String> {
    let backup_path = data_dir.join(BACKUP_FILE);
    fs::symlink_metadata(&backup_path).ok()?;
    let backup = backup_path.display();
    let saved_path = data_dir.join(SAVED_FILE);
    let saved = saved_path.display();
    // Held while the files are read, so that a repair starting meanwhile is not misread.
    let _shared = match File::open(data_dir.join(LOCK_FILE)).map(|f| (f.try_lock_shared(), f)) {
        Ok((Err(fs::TryLockError::WouldBlock), _)) => {
            return Some(format!(
                "a tfshim repair is running in {} now ({backup} is its backup)",
                data_dir.display()
            ))
        }
        Ok((Ok(()), f)) => Some(f),
        _ => None,
    };
    let next = "the next backend-loading command run through tfshim (`plan`, `apply`, `init`, …; \
                not with TFSHIM_MODE=off), or `tfshim shim sweep --fix`,";
    let what = match fs::read(&backup_path) {
        Err(e) => format!("it cannot be read ({e}): move it away once {saved} is as you want it"),
        Ok(bytes) => match recovery_step(&bytes, fs::read(&saved_path).ok().as_deref()) {
            RecoveryStep::DiscardIncompleteBackup => {
                format!("it is incomplete, so terraform never ran; {next} deletes it")
            }
            RecoveryStep::Unchanged => format!("{saved} is unchanged; {next} deletes it"),
            RecoveryStep::KeepRepaired => {
                format!("the repair had completed {saved}; {next} keeps it and deletes the backup")
            }
            RecoveryStep::PutBack(why) => {
                format!("{next} puts it back over {saved} ({why})")
            }
        },
    };
    Some(format!(
        "{backup} was left by a tfshim repair that was killed; {what}"
    ))
}

/// The saved file's owner and mode, to give back to whatever replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    #[cfg(unix)]
    uid: u32,
    #[cfg(unix)]
    gid: u32,
    #[cfg(unix)]
    mode: u32,
}

impl Owner {
    fn of(meta: &fs::Metadata) -> Owner {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Owner {
                uid: meta.uid(),
                gid: meta.gid(),
                mode: meta.mode() & 0o7777,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Owner {}
        }
    }

    /// Gives `file` this owner and mode. Changing the owner needs privileges; without them the file
    /// stays the runner's (who could then not have been locked out of it).
    fn apply(&self, file: &File) -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::os::unix::fs::fchown(file, Some(self.uid), Some(self.gid));
            file.set_permissions(fs::Permissions::from_mode(self.mode))
        }
        #[cfg(not(unix))]
        {
            let _ = file;
            Ok(())
        }
    }

    /// Only the owner, with mode 0600: for the backup, which holds the saved file's secrets.
    fn apply_private(&self, file: &File) -> io::Result<()> {
        #[cfg(unix)]
        {
            Owner {
                mode: 0o600,
                ..*self
            }
            .apply(file)
        }
        #[cfg(not(unix))]
        {
            let _ = file;
            Ok(())
        }
    }
}

/// The mode terraform creates the saved file with (0666 less the umask), for a saved file that has
/// vanished and is recreated from the backup.
#[cfg(unix)]
fn terraform_creation_mode() -> u32 {
    // umask(2) can only be read by setting it; this runs before any other thread creates files.
    let mask = unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    };
    0o666 & !(mask as u32)
}

/// Makes a rename or deletion in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file; NTFS journals renames itself.
        let _ = dir;
        Ok(())
    }
}

/// The saved file a repair may rewrite: where it really is (through a symlink, the file it points
/// to, so that the link stays a link) and its owner.
fn real_path(saved: &Path) -> PathBuf {
    fs::canonicalize(saved).unwrap_or_else(|_| saved.to_path_buf())
}

/// The durable copy of the saved file while a repair runs (module comment, 1–4).
#[derive(Debug)]
pub struct Backup {
    path: PathBuf,
    /// The saved file as named in the data dir.
    saved: PathBuf,
    owner: Option<Owner>,
}

/// What [`Backup::restore`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Restored {
    /// The saved file already held the old bytes: nothing was written.
    Unchanged,
    /// The old bytes were put back.
    PutBack,
}

impl Backup {
    /// Writes `old.raw` to `<data dir>/BACKUP_FILE`, durably. Fails if a backup is already there (the
    /// lock's recovery removes or resolves it first) or anything cannot be written; the caller then
    /// must not start the repair.
    pub fn create(data_dir: &Path, old: &SavedBackend) -> Result<Backup> {
        let path = data_dir.join(BACKUP_FILE);
        let owner = fs::metadata(&old.path).ok().map(|m| Owner::of(&m));
        let write = || -> io::Result<()> {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            if let Some(owner) = owner {
                owner.apply_private(&file)?;
            }
            file.write_all(&old.raw)?;
            file.sync_all()?;
            sync_dir(data_dir)
        };
        if let Err(e) = write() {
            // An incomplete backup must not outlive this run (a complete one may not exist here).
            if e.kind() != io::ErrorKind::AlreadyExists {
                let _ = fs::remove_file(&path);
            }
            return Err(e).with_context(|| {
                format!(
                    "cannot keep a copy of the saved backend as {} while terraform rewrites it",
                    path.display()
                )
            });
        }
        Ok(Backup {
            path,
            saved: old.path.clone(),
            owner,
        })
    }

    /// Deletes the backup: the repair's outcome is settled (module comment, 4). A backup that cannot
    /// be deleted is harmless (the next run's recovery finds the saved file checks out), so this
    /// only logs.
    pub fn discard(self) {
        if let Err(e) = fs::remove_file(&self.path)
            .and_then(|()| sync_dir(self.path.parent().unwrap_or(Path::new("."))))
        {
            log::debug(|| format!("could not delete {}: {e}", self.path.display()));
        }
    }

    /// Puts the backup's bytes back over the saved file if they differ (module comment, 3), then
    /// deletes the backup. On failure the saved file is as it was before this call, the backup is
    /// kept, and the error says what to do.
    pub fn restore(self) -> Result<Restored> {
        let old = fs::read(&self.path)
            .with_context(|| format!("cannot read tfshim's backup {}", self.path.display()))?;
        if fs::read(&self.saved).ok().as_deref() == Some(&old[..]) {
            self.discard();
            return Ok(Restored::Unchanged);
        }
        let owner = self.owner;
        self.put_back(&old, owner).map(|()| Restored::PutBack)
    }

    /// Replaces the saved file with the backup's bytes, atomically, giving it `owner` (or the
    /// current saved file's, or terraform's defaults), then reads it back.
    fn put_back(self, old: &[u8], owner: Option<Owner>) -> Result<()> {
        let target = real_path(&self.saved);
        let dir = target.parent().unwrap_or(Path::new(".")).to_path_buf();
        // The owner recorded before the repair, else the current file's (terraform rewrites in
        // place, so it has kept them), else the backup's owner with terraform's creation mode.
        let owner = owner
            .or_else(|| fs::metadata(&target).ok().map(|m| Owner::of(&m)))
            .or_else(|| {
                let backup = fs::metadata(&self.path).ok()?;
                #[cfg(unix)]
                return Some(Owner {
                    mode: terraform_creation_mode(),
                    ..Owner::of(&backup)
                });
                #[cfg(not(unix))]
                Some(Owner::of(&backup))
            });
        let same_dir =
            fs::canonicalize(self.path.parent().unwrap_or(Path::new("."))).is_ok_and(|d| d == dir);
        let result = if same_dir {
            self.rename_over(&target, owner)
        } else {
            copy_over(&target, &dir, old, owner)
        };
        result.and_then(|()| sync_dir(&dir)).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "could not put the previous saved backend back over {}, so it was left as terraform \
                 left it; tfshim's copy of the previous one is {}. Once the directory is writable \
                 again (with free space), the next tfshim run restores it; or copy it back yourself",
                self.saved.display(),
                self.path.display()
            ))
        })?;
        if fs::read(&self.saved).ok().as_deref() != Some(old) {
            bail!(
                "put the previous saved backend back over {}, but it reads back differently",
                self.saved.display()
            );
        }
        if !same_dir {
            self.discard();
        }
        Ok(())
    }

    /// The backup becomes the saved file: no new data blocks, so a full disk cannot stop it.
    fn rename_over(&self, target: &Path, owner: Option<Owner>) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(&self.path)?;
        if let Some(owner) = owner {
            owner.apply(&file)?;
        }
        file.sync_all()?;
        rename_patiently(&self.path, target).inspect_err(|_| {
            // Still a backup: private again.
            if let Some(owner) = owner {
                let _ = owner.apply_private(&file);
            }
        })
    }
}

/// A restore into another directory (the saved file is a symlink there): a temporary beside the
/// target, renamed over it. The backup stays until this has succeeded.
fn copy_over(target: &Path, dir: &Path, old: &[u8], owner: Option<Owner>) -> io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(RESTORE_PREFIX)
        .tempfile_in(dir)?;
    tmp.write_all(old)?;
    if let Some(owner) = owner {
        owner.apply(tmp.as_file())?;
    }
    tmp.as_file().sync_all()?;
    let tmp = tmp.into_temp_path();
    rename_patiently(&tmp, target)?;
    // Renamed away: nothing is left for the temporary's drop to delete.
    tmp.keep().map(drop).map_err(|e| e.error)
}

/// How long a restore waits for another process to let go of the saved file. On Windows a file that
/// is open without delete sharing cannot be replaced (an antivirus scanner or an editor holding it,
/// usually for well under a second); on Unix a rename never fails that way.
const HELD_OPEN_PATIENCE: Duration = Duration::from_secs(5);

/// Whether a failed rename may succeed once another process closes the target: Windows'
/// `ERROR_ACCESS_DENIED` (the target is open without delete sharing, or being deleted),
/// `ERROR_SHARING_VIOLATION` and `ERROR_LOCK_VIOLATION`.
fn held_open(err: &io::Error) -> bool {
    cfg!(windows) && matches!(err.raw_os_error(), Some(5 | 32 | 33))
}

/// `fs::rename` (`MoveFileExW` with `MOVEFILE_REPLACE_EXISTING` on Windows), retried with growing
/// pauses while the target is held open, for at most [`HELD_OPEN_PATIENCE`].
fn rename_patiently(from: &Path, to: &Path) -> io::Result<()> {
    let deadline = Instant::now() + HELD_OPEN_PATIENCE;
    let mut pause = Duration::from_millis(20);
    loop {
        match fs::rename(from, to) {
            Err(e) if held_open(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

/// Writes the `-backend-config` settings file: JSON (terraform reads such files as HCL or JSON),
/// 0600, `SETTINGS_PREFIX` + a random suffix, in the data dir (module comment, 2). It is closed at
/// once and deleted when the returned path is dropped. Its path is absolute, because `-chdir` changes terraform's
/// directory. (Terraform 1.11 would take the values as `-backend-config=KEY=VALUE` too — measured,
/// nested `endpoints={…}` included — but a command line is readable by every local user in the
/// process list, and bucket, key, role ARNs and KMS ids are not for them.)
pub fn write_settings(
    settings: &Map<String, Value>,
    data_dir: &Path,
) -> Result<tempfile::TempPath> {
    let text = serde_json::to_vec_pretty(settings).context("cannot encode the backend settings")?;
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
    write().with_context(|| {
        format!(
            "cannot write the backend settings file in {}",
            data_dir.display()
        )
    })
}

/// What recovery does with a killed repair's backup, decided from the bytes alone (pure).
#[derive(Debug, PartialEq, Eq)]
pub enum RecoveryStep {
    /// The backup is not a complete saved backend: it was being written when the repair was killed,
    /// before terraform started. Delete it.
    DiscardIncompleteBackup,
    /// The saved file holds the backup's bytes. Delete the backup.
    Unchanged,
    /// The saved file is what the killed repair's terraform wrote, and it passes the invariants.
    /// Keep it; delete the backup.
    KeepRepaired,
    /// Put the backup back, for this reason.
    PutBack(String),
}

/// Module comment, 5. `saved` is `None` when the saved file is missing or unreadable.
pub fn recovery_step(backup: &[u8], saved: Option<&[u8]>) -> RecoveryStep {
    let parse = |raw: &[u8]| {
        SavedBackend::parse(PathBuf::from(SAVED_FILE), raw.to_vec())
            .ok()
            .flatten()
    };
    let Some(old) = parse(backup) else {
        return RecoveryStep::DiscardIncompleteBackup;
    };
    let Some(saved) = saved else {
        return RecoveryStep::PutBack("it is missing".into());
    };
    if saved == backup {
        return RecoveryStep::Unchanged;
    }
    let new = match SavedBackend::parse(PathBuf::from(SAVED_FILE), saved.to_vec()) {
        Ok(Some(new)) => new,
        Ok(None) => return RecoveryStep::PutBack("it no longer holds a backend".into()),
        Err(e) => return RecoveryStep::PutBack(e.to_string()),
    };
    // Whatever credentials it holds, they do not select the state: accept them as they are.
    // `value`, not `string`: a credential saved as "" is a value the invariants compare as such.
    let as_saved = |name: &str| new.value(name).map(str::to_owned);
    let credentials = crate::credentials::credential_attrs(&old.kind);
    match check_invariants(&old, &new, credentials, &as_saved) {
        Ok(()) => RecoveryStep::KeepRepaired,
        Err(why) => RecoveryStep::PutBack(why),
    }
}

/// Module comment, 5: under the exclusive lock. Err: the backup is still there and could not be
/// resolved (the message says what to do).
fn recover(data_dir: &Path) -> Result<()> {
    let backup_path = data_dir.join(BACKUP_FILE);
    let saved_path = data_dir.join(SAVED_FILE);
    remove_leftovers(data_dir, &saved_path);
    let backup_bytes = match fs::read(&backup_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot read {}, the backup an interrupted tfshim repair left; move it away \
                     once {} is as you want it",
                    backup_path.display(),
                    saved_path.display()
                )
            })
        }
    };
    let saved_bytes = fs::read(&saved_path).ok();
    let backup = Backup {
        path: backup_path,
        saved: saved_path.clone(),
        owner: None,
    };
    match recovery_step(&backup_bytes, saved_bytes.as_deref()) {
        RecoveryStep::DiscardIncompleteBackup => {
            log::debug(|| "removing the incomplete backup of a killed repair".into());
            backup.discard();
        }
        RecoveryStep::Unchanged => backup.discard(),
        RecoveryStep::KeepRepaired => {
            log::say(&format!(
                "an interrupted repair had already re-initialised {}; it checks out, so it was kept",
                saved_path.display()
            ));
            backup.discard();
        }
        RecoveryStep::PutBack(why) => {
            log::say(&format!(
                "a repair that was interrupted left {} behind ({why}); putting back the copy \
                 tfshim kept",
                saved_path.display()
            ));
            backup.put_back(&backup_bytes, None)?;
        }
    }
    Ok(())
}

/// Deletes the settings files and restore temporaries a killed repair left (never a secret's
/// only copy: the saved file or the backup holds everything they do).
fn remove_leftovers(data_dir: &Path, saved: &Path) {
    let real_dir = real_path(saved).parent().map(Path::to_path_buf);
    let dirs = [Some(data_dir.to_path_buf()), real_dir];
    for dir in dirs.iter().flatten() {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = (dir == data_dir && name.starts_with(SETTINGS_PREFIX))
                || name.starts_with(RESTORE_PREFIX);
            if ours {
                log::debug(|| format!("removing {name}, left by a killed repair"));
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"{"version":3,"backend":{"type":"s3","config":{"access_key":"AKIAOLD",
        "secret_key":"S","bucket":"b","key":"k","region":"r"},"hash":7}}"#;

    fn with(config: &str, hash: u64) -> String {
        format!(r#"{{"version":3,"backend":{{"type":"s3","config":{config},"hash":{hash}}}}}"#)
    }

    #[test]
    fn doctor_says_what_recovery_will_do_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(interrupted_repair(d), None);
        fs::write(d.join(BACKUP_FILE), OLD).unwrap();
        fs::write(d.join(SAVED_FILE), "").unwrap();
        let said = interrupted_repair(d).unwrap();
        assert!(
            said.contains("was left by a tfshim repair that was killed"),
            "{said}"
        );
        assert!(said.contains("puts it back over"), "{said}");
        assert_eq!(fs::read(d.join(SAVED_FILE)).unwrap(), b"");
        assert_eq!(fs::read_to_string(d.join(BACKUP_FILE)).unwrap(), OLD);
        fs::write(d.join(SAVED_FILE), OLD).unwrap();
        assert!(interrupted_repair(d)
            .unwrap()
            .contains("is unchanged; the next"));
        fs::write(d.join(BACKUP_FILE), &OLD[..20]).unwrap();
        assert!(interrupted_repair(d).unwrap().contains("incomplete"));
        // A repair holding the lock now is running, not killed (flock and LockFileEx hold per open
        // file, so this process's own second open sees the conflict).
        let lock = File::create(d.join(LOCK_FILE)).unwrap();
        lock.lock().unwrap();
        let running = interrupted_repair(d).unwrap();
        assert!(running.contains("is running"), "{running}");
    }

    #[test]
    fn recovery_decisions() {
        let old = OLD.as_bytes();
        let step = |saved: Option<&str>| recovery_step(old, saved.map(str::as_bytes));
        // The backup was being written when the run was killed: terraform never ran.
        assert_eq!(
            recovery_step(&old[..old.len() / 2], Some(old)),
            RecoveryStep::DiscardIncompleteBackup
        );
        assert_eq!(
            recovery_step(b"", None),
            RecoveryStep::DiscardIncompleteBackup
        );
        assert_eq!(step(Some(OLD)), RecoveryStep::Unchanged);
        // Killed inside terraform's write (truncated), or before it wrote anything.
        assert!(matches!(step(Some("")), RecoveryStep::PutBack(_)));
        assert!(matches!(step(Some(&OLD[..40])), RecoveryStep::PutBack(_)));
        assert!(matches!(step(None), RecoveryStep::PutBack(_)));
        assert!(matches!(
            step(Some(r#"{"version":3}"#)),
            RecoveryStep::PutBack(_)
        ));
        // terraform finished the repair: only the credentials differ.
        let repaired = with(
            r#"{"access_key":null,"secret_key":null,"bucket":"b","key":"k","region":"r"}"#,
            7,
        );
        assert_eq!(step(Some(&repaired)), RecoveryStep::KeepRepaired);
        // A credential-only init had written the user's new key.
        let new_key = with(
            r#"{"access_key":"AKIANEW","secret_key":"T","bucket":"b","key":"k","region":"r"}"#,
            7,
        );
        assert_eq!(step(Some(&new_key)), RecoveryStep::KeepRepaired);
        // Anything that would address other state is undone.
        let moved = with(r#"{"bucket":"b","key":"elsewhere","region":"r"}"#, 7);
        let RecoveryStep::PutBack(why) = step(Some(&moved)) else {
            panic!("kept a moved backend")
        };
        assert!(why.contains("key") && !why.contains("elsewhere"), "{why}");
        let rehashed = with(r#"{"bucket":"b","key":"k","region":"r"}"#, 8);
        assert!(matches!(step(Some(&rehashed)), RecoveryStep::PutBack(_)));
    }

    fn saved_in(dir: &Path, text: &str) -> SavedBackend {
        let path = dir.join(SAVED_FILE);
        fs::write(&path, text).unwrap();
        SavedBackend::read(dir).unwrap().unwrap()
    }

    #[cfg(unix)]
    fn meta(path: &Path) -> (u64, u32, u32, u32, u64) {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path).unwrap();
        (m.ino(), m.mode() & 0o7777, m.uid(), m.gid(), m.nlink())
    }

    #[cfg(unix)]
    #[test]
    fn backup_is_private_and_an_untouched_file_is_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let old = saved_in(dir.path(), OLD);
        fs::set_permissions(&old.path, fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(&old.path, dir.path().join("link")).unwrap();
        let before = meta(&old.path);
        let backup = Backup::create(dir.path(), &old).unwrap();
        let backup_path = dir.path().join(BACKUP_FILE);
        assert_eq!(meta(&backup_path).1, 0o600);
        assert_eq!(fs::read(&backup_path).unwrap(), OLD.as_bytes());
        // A second backup is refused, never overwritten.
        assert!(Backup::create(dir.path(), &old).is_err());
        assert!(backup_path.exists());
        assert_eq!(backup.restore().unwrap(), Restored::Unchanged);
        assert_eq!(meta(&old.path), before);
        assert!(!backup_path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_changed_file_is_put_back_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let old = saved_in(dir.path(), OLD);
        fs::set_permissions(&old.path, fs::Permissions::from_mode(0o640)).unwrap();
        let backup = Backup::create(dir.path(), &old).unwrap();
        // terraform's in-place rewrite, cut short.
        fs::write(&old.path, "").unwrap();
        assert_eq!(backup.restore().unwrap(), Restored::PutBack);
        assert_eq!(fs::read(&old.path).unwrap(), OLD.as_bytes());
        assert_eq!(meta(&old.path).1, 0o640);
        assert!(!dir.path().join(BACKUP_FILE).exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_file_is_put_back_where_it_lives() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let real = elsewhere.path().join("saved.json");
        fs::write(&real, OLD).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join(SAVED_FILE)).unwrap();
        let old = SavedBackend::read(dir.path()).unwrap().unwrap();
        let backup = Backup::create(dir.path(), &old).unwrap();
        fs::write(&real, "{").unwrap();
        assert_eq!(backup.restore().unwrap(), Restored::PutBack);
        assert_eq!(fs::read(&real).unwrap(), OLD.as_bytes());
        assert!(
            dir.path().join(SAVED_FILE).is_symlink(),
            "the link stays a link"
        );
        assert!(!dir.path().join(BACKUP_FILE).exists());
        assert_eq!(
            fs::read_dir(elsewhere.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn recovery_sweeps_and_restores_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let old = saved_in(dir.path(), OLD);
        let backup = Backup::create(dir.path(), &old).unwrap();
        let settings = write_settings(&Map::new(), dir.path()).unwrap();
        let settings_path = settings.keep().unwrap();
        std::mem::forget(backup); // killed: neither deleted nor restored
        fs::write(&old.path, "").unwrap();
        recover_if_interrupted(dir.path());
        assert_eq!(fs::read(&old.path).unwrap(), OLD.as_bytes());
        assert!(!settings_path.exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}"); // the saved file and the lock file
    }
}
