//! The durable copy of the saved file while a repair runs, and the journal beside it that says what
//! the repair intends (module comment of `datadir`, 1–4): created before terraform starts, deleted
//! once the outcome is settled, and the atomic put-back of the old bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{because, real_path, sync_dir, Error, BACKUP_FILE, JOURNAL_FILE, RESTORE_PREFIX};
use crate::backends::saved::SavedBackend;
use crate::log;

/// Whose `init` the repair runs, which says what becomes of the credential attributes it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    /// tfshim's own `init -reconfigure`: they are removed.
    Remove,
    /// The user's credential-only `init`, with `-reconfigure` added: they take the user's values.
    Replace,
}

/// What a repair intends, written beside its backup before terraform starts (module comment, 1):
/// which credential attributes it changes — every other set attribute is handed back to terraform
/// unchanged — bound to its backup by the backup's length and digest, so a journal is never read
/// against another backup. No value in it, only attribute names: it is no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The format's version (the field's name also says what the file is).
    pub tfshim_repair_journal: u32,
    pub intent: Intent,
    /// The credential attributes the repair changes.
    pub changes: Vec<String>,
    pub backup_len: u64,
    /// FNV-1a (64 bits, hex) of the backup's bytes: a check that the two belong together, not a
    /// secret's digest (the backup holds more than the credentials; nothing is derived from them).
    pub backup_fnv1a: String,
}

/// FNV-1a, 64 bits: stable across Rust versions and builds (unlike `DefaultHasher`), a few lines.
fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Journal {
    /// The journal of a repair that backs up `backup` and changes `changes`.
    pub fn new(backup: &[u8], intent: Intent, changes: &[&str]) -> Journal {
        Journal {
            tfshim_repair_journal: 1,
            intent,
            changes: changes.iter().map(|c| (*c).to_owned()).collect(),
            backup_len: backup.len() as u64,
            backup_fnv1a: fnv1a(backup),
        }
    }

    /// The journal in `data_dir` that belongs to the backup `backup`; `None` if there is none, it is
    /// unreadable or incomplete (the repair was killed while writing it: terraform never ran), or it
    /// belongs to another backup.
    pub fn read(data_dir: &Path, backup: &[u8]) -> Option<Journal> {
        let bytes = fs::read(data_dir.join(JOURNAL_FILE)).ok()?;
        Journal::parse(&bytes, backup)
    }

    /// Pure part of [`Journal::read`].
    pub fn parse(bytes: &[u8], backup: &[u8]) -> Option<Journal> {
        let journal: Journal = serde_json::from_slice(bytes).ok()?;
        let ours = journal.tfshim_repair_journal == 1
            && journal.backup_len == backup.len() as u64
            && journal.backup_fnv1a == fnv1a(backup);
        ours.then_some(journal)
    }

    /// The changed attributes, as the invariants take them.
    pub fn changes(&self) -> Vec<&str> {
        self.changes.iter().map(String::as_str).collect()
    }
}

/// Creates `path` exclusively with `bytes`, 0600 and owned like the saved file, fsynced.
fn write_private(path: &Path, bytes: &[u8], owner: Option<Owner>) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    if let Some(owner) = owner {
        owner.apply_private(&file)?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// The saved file's owner and mode, to give back to whatever replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner {
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

/// The durable copy of the saved file while a repair runs (`datadir` module comment, 1–4).
#[derive(Debug)]
pub struct Backup {
    pub(super) path: PathBuf,
    /// The saved file as named in the data dir.
    pub(super) saved: PathBuf,
    pub(super) owner: Option<Owner>,
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
    /// Writes `old.raw` to `<data dir>/BACKUP_FILE`, then `journal` to `JOURNAL_FILE`, durably.
    /// Fails if a backup is already there (the lock's recovery removes or resolves it first) or
    /// anything cannot be written; the caller then must not start the repair.
    pub fn create(data_dir: &Path, old: &SavedBackend, journal: &Journal) -> Result<Backup, Error> {
        let path = data_dir.join(BACKUP_FILE);
        let journal_path = data_dir.join(JOURNAL_FILE);
        let owner = fs::metadata(&old.path).ok().map(|m| Owner::of(&m));
        let text = serde_json::to_vec(journal).map_err(io::Error::other);
        let write = || -> io::Result<()> {
            write_private(&path, &old.raw, owner)?;
            // A journal left by a repair killed before its backup was complete: not this one's.
            let _ = fs::remove_file(&journal_path);
            write_private(&journal_path, &text?, owner)?;
            sync_dir(data_dir)
        };
        if let Err(e) = write() {
            // An incomplete backup must not outlive this run (a complete one may not exist here).
            if e.kind() != io::ErrorKind::AlreadyExists {
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(&journal_path);
            }
            return Err(Error::Backup(because(
                format_args!(
                    "cannot keep a copy of the saved backend as {} while terraform rewrites it",
                    path.display()
                ),
                e,
            )));
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
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if let Err(e) = fs::remove_file(&self.path).and_then(|()| sync_dir(dir)) {
            log::debug(|| format!("could not delete {}: {e}", self.path.display()));
        }
        self.discard_journal();
    }

    /// Deletes the journal, after the backup (a journal without its backup is ignored and removed
    /// by the next recovery; the other way round, recovery would lose what the repair intended).
    fn discard_journal(&self) {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let journal = dir.join(JOURNAL_FILE);
        match fs::remove_file(&journal).and_then(|()| sync_dir(dir)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                log::debug(|| format!("could not delete {}: {e}", journal.display()))
            }
            _ => {}
        }
    }

    /// Puts the backup's bytes back over the saved file if they differ (module comment, 3), then
    /// deletes the backup. On failure the saved file is as it was before this call, the backup is
    /// kept, and the error says what to do.
    pub fn restore(self) -> Result<Restored, Error> {
        let old = fs::read(&self.path).map_err(|e| {
            Error::Restore(because(
                format_args!("cannot read tfshim's backup {}", self.path.display()),
                e,
            ))
        })?;
        if fs::read(&self.saved).ok().as_deref() == Some(&old[..]) {
            self.discard();
            return Ok(Restored::Unchanged);
        }
        let owner = self.owner;
        self.put_back(&old, owner).map(|()| Restored::PutBack)
    }

    /// Replaces the saved file with the backup's bytes, atomically, giving it `owner` (or the
    /// current saved file's, or terraform's defaults), then reads it back.
    pub(super) fn put_back(self, old: &[u8], owner: Option<Owner>) -> Result<(), Error> {
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
            Error::Restore(because(
                format_args!(
                    "could not put the previous saved backend back over {}, so it was left as \
                     terraform left it; tfshim's copy of the previous one is {}. Once the directory \
                     is writable again (with free space), the next tfshim run restores it; or copy \
                     it back yourself",
                    self.saved.display(),
                    self.path.display()
                ),
                e,
            ))
        })?;
        if fs::read(&self.saved).ok().as_deref() != Some(old) {
            return Err(Error::Restore(format!(
                "put the previous saved backend back over {}, but it reads back differently",
                self.saved.display()
            )));
        }
        if same_dir {
            // The backup was renamed over the saved file: only its journal is left.
            self.discard_journal();
        } else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::SAVED_FILE;

    const OLD: &str = r#"{"version":3,"backend":{"type":"s3","config":{"access_key":"AKIAOLD",
        "secret_key":"S","bucket":"b","key":"k","region":"r"},"hash":7}}"#;

    fn journal(old: &SavedBackend) -> Journal {
        Journal::new(&old.raw, Intent::Remove, &["access_key", "secret_key"])
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
        let backup = Backup::create(dir.path(), &old, &journal(&old)).unwrap();
        let backup_path = dir.path().join(BACKUP_FILE);
        assert_eq!(meta(&backup_path).1, 0o600);
        assert_eq!(fs::read(&backup_path).unwrap(), OLD.as_bytes());
        // A second backup is refused, never overwritten.
        assert!(Backup::create(dir.path(), &old, &journal(&old)).is_err());
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
        let backup = Backup::create(dir.path(), &old, &journal(&old)).unwrap();
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
        let backup = Backup::create(dir.path(), &old, &journal(&old)).unwrap();
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
    fn the_journal_belongs_to_its_backup_and_holds_no_value() {
        let dir = tempfile::tempdir().unwrap();
        let old = saved_in(dir.path(), OLD);
        let backup = Backup::create(dir.path(), &old, &journal(&old)).unwrap();
        let text = fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        assert!(
            !text.contains("AKIAOLD") && !text.contains("\"b\""),
            "{text}"
        );
        assert_eq!(
            Journal::read(dir.path(), OLD.as_bytes()),
            Some(journal(&old))
        );
        // Read against another backup (one byte differs), it is not this one's.
        let other = OLD.replace("AKIAOLD", "AKIAOLE");
        assert_eq!(Journal::read(dir.path(), other.as_bytes()), None);
        assert_eq!(Journal::parse(&text.as_bytes()[..10], OLD.as_bytes()), None);
        #[cfg(unix)]
        assert_eq!(meta(&dir.path().join(JOURNAL_FILE)).1, 0o600);
        backup.discard();
        assert!(!dir.path().join(JOURNAL_FILE).exists());
        assert!(!dir.path().join(BACKUP_FILE).exists());
    }
}
