//! Recovery after a killed repair (`datadir` module comment, 5; issue #12, issue #20 item 2): under
//! the exclusive lock, a backup left beside the saved file is resolved by [`recovery_step`], a pure
//! function of the backup, its journal and the saved file's bytes. It puts back only what the killed
//! repair itself could have written, and never touches a deliberate change made since — the user
//! may have re-pointed the root with plain terraform (`init -reconfigure -backend-config=…`),
//! Atlantis or `TFSHIM_MODE=off` while the backup lay there, and putting it back would switch the
//! root back to the old state and plan against it.
//!
//! Recovery runs before every backend-loading proxied run (`TFSHIM_MODE=fix` or `warn`: it only
//! undoes tfshim's own interrupted change) and whenever the lock is taken to repair; `shim doctor`
//! says what it would do ([`interrupted_repair`]) without doing it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{
    because, real_path, Backup, Error, Journal, Lock, BACKUP_FILE, JOURNAL_FILE, RESTORE_PREFIX,
    SETTINGS_PREFIX,
};
use crate::backends::saved::{SavedBackend, SAVED_FILE};
use crate::heal::invariants::{check_invariants, settings_changed};
use crate::log;

impl Lock {
    /// Takes `<data dir>/tfshim.lock`, waiting (and saying so) while another tfshim holds it, for
    /// at most two minutes, then recovers from a repair that was killed. An error means no repair
    /// may start: the lock is not to be had, or a killed repair's backup could not be dealt with
    /// (the message says what to do).
    pub fn acquire(data_dir: &Path) -> Result<Lock, Error> {
        let lock = Lock::exclusive(data_dir)?;
        recover(data_dir)?;
        Ok(lock)
    }
}

/// Before a backend-loading run reads the saved file: if a killed repair left its backup, take the
/// lock (which recovers) and let it go again; a journal alone (a repair killed just after it
/// deleted its backup) is removed the same way. Two `stat`s when there is nothing to do.
pub fn recover_if_interrupted(data_dir: &Path) {
    let left = |name| fs::symlink_metadata(data_dir.join(name)).is_ok();
    if !left(BACKUP_FILE) && !left(JOURNAL_FILE) {
        return;
    }
    if let Err(e) = Lock::acquire(data_dir) {
        log::say(&e.to_string());
    }
}

/// What recovery does with a killed repair's backup.
#[derive(Debug, PartialEq, Eq)]
pub enum RecoveryStep {
    /// The backup is not a complete saved backend: it was being written when the repair was killed,
    /// before terraform started. Delete it.
    DiscardIncompleteBackup,
    /// The saved file holds the backup's bytes. Delete the backup.
    Unchanged,
    /// The saved file is the killed repair's intended result. Keep it; delete the backup.
    KeepRepaired,
    /// The saved file is a valid one the killed repair could not have written: somebody changed the
    /// backend since (these settings, by name, differ). Keep it; delete the backup; say so.
    KeepChanged(String),
    /// The saved file is one the killed repair's terraform was writing, or wrote and would have
    /// undone: put the backup back, for this reason.
    PutBack(String),
}

/// Module comment; pure. `journal` is the backup's own (see [`Journal::read`]); `saved` is `None`
/// when the saved file is missing or unreadable.
///
/// - backup incomplete → discard it (terraform never ran);
/// - saved file missing, empty, truncated or unparsable → put back (terraform was writing it);
/// - saved file identical → nothing to undo;
/// - a valid file without a backend (terraform wrote it, but never a repair's `init` of a backend)
///   → somebody's change: keep;
/// - a valid backend that holds every setting the repair handed terraform, as it was: the repair's
///   → keep if it passes the invariants (credentials as they are: they never select the state),
///   else put back, as the repair would have;
/// - any other valid backend → somebody's change: keep.
///
/// Without a journal (a backup left by a tfshim from before journals, or by a repair killed
/// between its backup and its journal, when terraform had not started) nothing says what the
/// repair intended, so no valid file is ever replaced: one that passes the invariants with every
/// credential attribute free is the repair's; any other is kept as somebody's change. The only
/// files put back are the ones no terraform could have meant (missing, empty, broken).
pub fn recovery_step(
    backup: &[u8],
    journal: Option<&Journal>,
    saved: Option<&[u8]>,
) -> RecoveryStep {
    let parse = |raw: &[u8]| SavedBackend::parse(PathBuf::from(SAVED_FILE), raw.to_vec());
    let Ok(Some(old)) = parse(backup) else {
        return RecoveryStep::DiscardIncompleteBackup;
    };
    let Some(saved) = saved else {
        return RecoveryStep::PutBack("it is missing".into());
    };
    if saved == backup {
        return RecoveryStep::Unchanged;
    }
    let new = match parse(saved) {
        Ok(Some(new)) => new,
        Ok(None) => return RecoveryStep::KeepChanged("it no longer holds a backend".into()),
        Err(e) => return RecoveryStep::PutBack(e.to_string()),
    };
    // Whatever credentials it holds, they do not select the state: accept them as they are.
    // `value`, not `string`: a credential saved as "" is a value the invariants compare as such.
    let as_saved = |name: &str| new.value(name).map(str::to_owned);
    let all_credentials = crate::credentials::credential_attrs(&old.kind);
    let changes = journal.map_or(all_credentials.to_vec(), Journal::changes);
    let moved = settings_changed(&old, &new, &changes);
    if !moved.is_empty() {
        return RecoveryStep::KeepChanged(format!(
            "{} {}",
            moved.join(", "),
            if moved.len() == 1 {
                "differs"
            } else {
                "differ"
            }
        ));
    }
    match (check_invariants(&old, &new, &changes, &as_saved), journal) {
        (Ok(()), _) => RecoveryStep::KeepRepaired,
        (Err(why), Some(_)) => RecoveryStep::PutBack(why),
        (Err(why), None) => RecoveryStep::KeepChanged(why),
    }
}

/// The backup, its journal and the saved file as recovery reads them.
struct Found {
    backup: Vec<u8>,
    journal: Option<Journal>,
    saved: Option<Vec<u8>>,
}

/// Reads what [`recovery_step`] decides from. `Ok(None)`: no backup.
fn read(data_dir: &Path) -> io::Result<Option<Found>> {
    let backup = match fs::read(data_dir.join(BACKUP_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(Found {
        journal: Journal::read(data_dir, &backup),
        saved: fs::read(data_dir.join(SAVED_FILE)).ok(),
        backup,
    }))
}

/// What `shim doctor` says about a backup a killed repair left: what the next proxied run's recovery
/// will do with it, decided by [`recovery_step`] as recovery itself decides. Read-only: recovery
/// belongs to a run that takes the lock. `None`: no backup.
pub fn interrupted_repair(data_dir: &Path) -> Option<String> {
    let backup_path = data_dir.join(BACKUP_FILE);
    fs::symlink_metadata(&backup_path).ok()?;
    let backup = backup_path.display();
    let saved = data_dir.join(SAVED_FILE);
    let saved = saved.display();
    // Held while the files are read, so that a repair starting meanwhile is not misread.
    let Ok(_shared) = Lock::shared_now(data_dir) else {
        return Some(format!(
            "a tfshim repair is running in {} now ({backup} is its backup)",
            data_dir.display()
        ));
    };
    let next = "the next backend-loading command run through tfshim (`plan`, `apply`, `init`, …; \
                not with TFSHIM_MODE=off), or `tfshim shim sweep --fix`,";
    let what = match read(data_dir) {
        Err(e) => format!("it cannot be read ({e}): move it away once {saved} is as you want it"),
        Ok(None) => return None,
        Ok(Some(found)) => match recovery_step(
            &found.backup,
            found.journal.as_ref(),
            found.saved.as_deref(),
        ) {
            RecoveryStep::DiscardIncompleteBackup => {
                format!("it is incomplete, so terraform never ran; {next} deletes it")
            }
            RecoveryStep::Unchanged => format!("{saved} is unchanged; {next} deletes it"),
            RecoveryStep::KeepRepaired => {
                format!("the repair had completed {saved}; {next} keeps it and deletes the backup")
            }
            RecoveryStep::KeepChanged(why) => format!(
                "{saved} was re-initialised since ({why}); {next} keeps it as it is and deletes \
                 the backup"
            ),
            RecoveryStep::PutBack(why) => {
                format!("{next} puts it back over {saved} ({why})")
            }
        },
    };
    Some(format!(
        "{backup} was left by a tfshim repair that was killed; {what}"
    ))
}

/// Module comment: under the exclusive lock. Err: the backup is still there and could not be
/// resolved (the message says what to do).
fn recover(data_dir: &Path) -> Result<(), Error> {
    let backup_path = data_dir.join(BACKUP_FILE);
    let saved_path = data_dir.join(SAVED_FILE);
    remove_leftovers(data_dir, &saved_path);
    let found = match read(data_dir) {
        Ok(Some(found)) => found,
        Ok(None) => {
            // A journal without its backup: the repair was killed before the backup was complete
            // (terraform never ran), or after it was settled.
            let _ = fs::remove_file(data_dir.join(JOURNAL_FILE));
            return Ok(());
        }
        Err(e) => {
            return Err(Error::Recovery(because(
                format_args!(
                    "cannot read {}, the backup an interrupted tfshim repair left; move it away \
                     once {} is as you want it",
                    backup_path.display(),
                    saved_path.display()
                ),
                e,
            )))
        }
    };
    crate::boundary::injected("recovery", || {
        format!("recovering {}", String::from_utf8_lossy(&found.backup))
    });
    let backup = Backup {
        path: backup_path,
        saved: saved_path.clone(),
        owner: None,
    };
    match recovery_step(
        &found.backup,
        found.journal.as_ref(),
        found.saved.as_deref(),
    ) {
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
        RecoveryStep::KeepChanged(why) => {
            log::say(&format!(
                "{} was re-initialised since a repair here was interrupted ({why}); keeping it \
                 as it is and deleting the old copy tfshim kept",
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
            backup.put_back(&found.backup, None)?;
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
    use super::super::{write_settings, Intent, LOCK_FILE};
    use super::*;
    use serde_json::Map;
    use std::fs::File;

    const OLD: &str = r#"{"version":3,"backend":{"type":"s3","config":{"access_key":"AKIAOLD",
        "secret_key":"S","bucket":"b","key":"k","region":"r"},"hash":7}}"#;
    const S3: &[&str] = &["access_key", "secret_key", "token"];

    fn with(config: &str, hash: u64) -> String {
        format!(r#"{{"version":3,"backend":{{"type":"s3","config":{config},"hash":{hash}}}}}"#)
    }

    fn journal(intent: Intent) -> Journal {
        Journal::new(OLD.as_bytes(), intent, S3)
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
        fs::write(d.join(BACKUP_FILE), OLD).unwrap();
        let moved = with(r#"{"bucket":"b2","key":"k","region":"r"}"#, 7);
        fs::write(d.join(SAVED_FILE), &moved).unwrap();
        let said = interrupted_repair(d).unwrap();
        assert!(
            said.contains("was re-initialised since (bucket differs)")
                && said.contains("keeps it as it is"),
            "{said}"
        );
        assert_eq!(fs::read_to_string(d.join(SAVED_FILE)).unwrap(), moved);
        // A repair holding the lock now is running, not killed (flock and LockFileEx hold per open
        // file, so this process's own second open sees the conflict).
        let lock = File::create(d.join(LOCK_FILE)).unwrap();
        lock.lock().unwrap();
        let running = interrupted_repair(d).unwrap();
        assert!(running.contains("is running"), "{running}");
    }

    #[test]
    fn recovery_decisions() {
        use RecoveryStep::*;
        let old = OLD.as_bytes();
        let removal = journal(Intent::Remove);
        let replace = journal(Intent::Replace);
        // Every case with each journal, and without one (a backup from before journals).
        let step = |j: Option<&Journal>, saved: Option<&str>| {
            recovery_step(old, j, saved.map(str::as_bytes))
        };
        let all = [Some(&removal), Some(&replace), None];
        // The backup was being written when the run was killed: terraform never ran.
        assert_eq!(
            recovery_step(&old[..old.len() / 2], None, Some(old)),
            DiscardIncompleteBackup
        );
        assert_eq!(recovery_step(b"", None, None), DiscardIncompleteBackup);
        let repaired = with(
            r#"{"access_key":null,"secret_key":null,"bucket":"b","key":"k","region":"r"}"#,
            7,
        );
        let new_key = with(
            r#"{"access_key":"AKIANEW","secret_key":"T","bucket":"b","key":"k","region":"r"}"#,
            7,
        );
        // Re-pointed with plain terraform since: another key, another bucket, another type.
        let moved = with(r#"{"bucket":"b","key":"elsewhere","region":"r"}"#, 9);
        let other_bucket = with(
            r#"{"access_key":"AKIAOLD","secret_key":"S","bucket":"b2","key":"k2","region":"r"}"#,
            7,
        );
        let local = r#"{"version":3,"serial":2,"lineage":"x"}"#;
        let http =
            r#"{"version":3,"backend":{"type":"http","config":{"address":"http://h"},"hash":1}}"#;
        for j in all {
            let case = format!("{j:?}");
            assert_eq!(step(j, Some(OLD)), Unchanged, "{case}");
            // Killed inside terraform's write (truncated), or before it wrote anything.
            assert!(matches!(step(j, Some("")), PutBack(_)), "{case}");
            assert!(matches!(step(j, Some(&OLD[..40])), PutBack(_)), "{case}");
            assert!(matches!(step(j, None), PutBack(_)), "{case}");
            // terraform finished the repair, or the user's credential-only init.
            assert_eq!(step(j, Some(&repaired)), KeepRepaired, "{case}");
            assert_eq!(step(j, Some(&new_key)), KeepRepaired, "{case}");
            // Somebody's deliberate change: kept, named without values.
            let KeepChanged(why) = step(j, Some(&moved)) else {
                panic!("{case}: a re-pointed backend was not kept")
            };
            assert_eq!(why, "key differs", "{case}");
            let KeepChanged(why) = step(j, Some(&other_bucket)) else {
                panic!("{case}: a re-pointed backend was not kept")
            };
            assert_eq!(why, "bucket, key differ", "{case}");
            assert!(matches!(step(j, Some(local)), KeepChanged(_)), "{case}");
            assert!(matches!(step(j, Some(http)), KeepChanged(_)), "{case}");
        }
        // Every setting the repair handed terraform, but another hash (the .tf block changed): the
        // repair's terraform wrote it and would have undone it — unless nothing says so.
        let rehashed = with(r#"{"bucket":"b","key":"k","region":"r"}"#, 8);
        let rehashed_more = with(r#"{"bucket":"b","key":"k","region":"r","encrypt":true}"#, 8);
        for j in [&removal, &replace] {
            assert!(matches!(step(Some(j), Some(&rehashed)), PutBack(why) if why.contains("hash")));
            assert!(matches!(step(Some(j), Some(&rehashed_more)), PutBack(_)));
        }
        assert!(matches!(step(None, Some(&rehashed)), KeepChanged(_)));
        // A repair that changes only the password (http) keeps the username: a file without it
        // is not that repair's.
        let user = r#"{"version":3,"backend":{"type":"http","config":{"address":"http://h/a","username":"u","password":"p"},"hash":1}}"#;
        let j = Journal::new(user.as_bytes(), Intent::Remove, &["password"]);
        let no_user =
            r#"{"version":3,"backend":{"type":"http","config":{"address":"http://h/a"},"hash":1}}"#;
        assert_eq!(
            recovery_step(user.as_bytes(), Some(&j), Some(no_user.as_bytes())),
            KeepChanged("username differs".into())
        );
        let repaired = r#"{"version":3,"backend":{"type":"http","config":{"address":"http://h/a","username":"u","password":null},"hash":1}}"#;
        assert_eq!(
            recovery_step(user.as_bytes(), Some(&j), Some(repaired.as_bytes())),
            KeepRepaired
        );
    }

    fn saved_in(dir: &Path, text: &str) -> SavedBackend {
        let path = dir.join(SAVED_FILE);
        fs::write(&path, text).unwrap();
        SavedBackend::read(dir).unwrap().unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn recovery_sweeps_and_restores_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let old = saved_in(dir.path(), OLD);
        let backup = Backup::create(dir.path(), &old, &journal(Intent::Remove)).unwrap();
        let settings = write_settings(&Map::new(), dir.path()).unwrap();
        let settings_path = settings.keep().unwrap();
        std::mem::forget(backup); // killed: neither deleted nor restored
        fs::write(&old.path, "").unwrap();
        recover_if_interrupted(dir.path());
        assert_eq!(fs::read(&old.path).unwrap(), OLD.as_bytes());
        assert!(!settings_path.exists());
        assert_eq!(names(dir.path()), [SAVED_FILE, "tfshim.lock"]);
    }

    #[test]
    fn recovery_keeps_a_re_pointed_backend_and_forgets_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let old = saved_in(dir.path(), OLD);
        std::mem::forget(Backup::create(dir.path(), &old, &journal(Intent::Remove)).unwrap());
        let moved = with(r#"{"bucket":"b2","key":"k","region":"r"}"#, 7);
        fs::write(&old.path, &moved).unwrap();
        recover_if_interrupted(dir.path());
        assert_eq!(fs::read_to_string(&old.path).unwrap(), moved);
        assert_eq!(names(dir.path()), [SAVED_FILE, "tfshim.lock"]);
        // A journal whose backup is gone is removed too.
        fs::write(dir.path().join(JOURNAL_FILE), "{").unwrap();
        recover_if_interrupted(dir.path());
        assert_eq!(names(dir.path()), [SAVED_FILE, "tfshim.lock"]);
    }
}
