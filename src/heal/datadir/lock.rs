//! The per-data-dir lock (`<data dir>/tfshim.lock`): one repair at a time (invariant 6 of
//! `repair.rs`), and readers that never see the saved file half-way through another tfshim's repair.
//! Only the lock itself: recovering from a killed repair once it is held is `recover.rs`'s
//! [`Lock::acquire`].

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{because, Error, LOCK_FILE};
use crate::log;

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

    /// A shared hold taken at once or not at all: `Err(())` while another tfshim holds the lock
    /// exclusively (a repair is running); `Ok(None)` without a lock file.
    pub(super) fn shared_now(data_dir: &Path) -> Result<Option<Lock>, ()> {
        match File::open(data_dir.join(LOCK_FILE)).map(|f| (f.try_lock_shared(), f)) {
            Ok((Err(fs::TryLockError::WouldBlock), _)) => Err(()),
            Ok((Ok(()), f)) => Ok(Some(Lock(f))),
            _ => Ok(None),
        }
    }

    /// Takes `<data dir>/tfshim.lock` exclusively, waiting (and saying so) while another tfshim
    /// holds it, for at most two minutes. Nothing else: [`Lock::acquire`] also recovers.
    pub(super) fn exclusive(data_dir: &Path) -> Result<Lock, Error> {
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
            .map_err(|e| {
                Error::Lock(because(
                    format_args!("cannot create the lock file {}", path.display()),
                    e,
                ))
            })?;
        let locked = wait_for("for it to finish", || file.try_lock())
            .map_err(|e| Error::Lock(because(format_args!("cannot lock {}", path.display()), e)))?;
        if !locked {
            return Err(Error::Lock(format!(
                "another tfshim has held {} for {} s; if none is running, delete that file",
                path.display(),
                LOCK_WAIT.as_secs()
            )));
        }
        Ok(Lock(file))
    }
}
