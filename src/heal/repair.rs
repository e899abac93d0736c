//! The repair: re-initialise the backend so that terraform stops using a saved key, without changing
//! which state is addressed.
//!
//! A bare `terraform init -reconfigure` is not safe (docs/terraform-backend.md, measured): it throws
//! the whole saved config away, so values that came from earlier `-backend-config` flags are lost,
//! and values an earlier flag had overridden silently revert to the `.tf` ones — terraform would then
//! address different state. So the repair hands every saved non-credential attribute back to terraform through a `-backend-config`
//! file and lets terraform rebuild the saved backend from it.
//!
//! Invariants, checked after every reconfigure (and the old file put back, byte for byte, when any of
//! them fails):
//! 1. The new saved `backend.type` and `backend.config` equal the old ones, except the credential
//!    attributes (S3 `access_key`, `secret_key`, `token`; http `password`, … — what the backend's
//!    `credentials::Credential` removes), which hold exactly the expected values: unset after a
//!    repair, the user's new ones after a credential-only `init`.
//! 2. `backend.hash` is unchanged (the `.tf` backend block is the one the old file was made from),
//!    unless the file was saved by another terraform version than the one that reconfigured it: a
//!    new version hashes the same block anew, and 1 alone must hold (#11 item 4).
//! 3. If the reconfigure fails, is interrupted, or breaks 1–2, the saved file's bytes are restored —
//!    only if they differ, atomically, keeping owner and mode, never by an in-place write; if that
//!    cannot be done, the file is left as terraform left it and the user told (`datadir/`).
//! 4. No rewrite without a durable copy: a backup of the old bytes (0600, fsynced) and a journal of
//!    what this repair changes exist in the data dir from before terraform starts until the outcome
//!    of 1–3 is settled; a run that finds them left by a killed repair recovers under the lock,
//!    putting back only what the repair could have written (a broken file, or one with every setting
//!    it handed terraform that breaks 1–2) and keeping anything else — its intended result, or a
//!    deliberate change made since — so the state addressed never changes (`datadir/recover.rs`).
//!    1–2 themselves are pure functions in `invariants.rs`, which the data dir uses too.
//! 5. The settings file holds no credential, lives in the data dir (0600, a random name with a fixed
//!    prefix), exists only while the backup does, and is removed when terraform is done; a killed
//!    repair's leftovers are removed under the lock.
//! 6. One repair at a time per data dir: an exclusive lock on `<data dir>/tfshim.lock` is held from
//!    re-reading the file to verifying the result; readers take it shared. A run that finds the
//!    repair already done proceeds. Waits are bounded; past them tfshim runs terraform unchanged.
//! 7. Terminating signals cannot cut 1–5 short: they are caught for the whole repair (`exec.rs`);
//!    SIGKILL can, and 4 covers it.
//!
//! Over 500 lines only because its unit tests are kept beside the code.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

use crate::aws::sts::Ambient;
use crate::backends::saved::SavedBackend;
use crate::backends::secrets::url_has_password;
use crate::credentials::{self, Credential};
use crate::heal::datadir::{self, Backup, Intent, Journal, Lock, Restored};
use crate::heal::invariants::{check_invariants, kept_settings, HASH_CHANGED};
use crate::log;
use crate::proxy::exec::{killed_by, run_child, signal_exit_code, ChildRun, Signals};

/// The name of the first sensitive attribute set anywhere in `value`: a name in `sensitive` (the
/// backend's non-credential secrets, `credentials::sensitive_settings`: they would have to be written to
/// the settings file, which must hold no secret, so a backend that saved one is not repaired
/// automatically), or a URL carrying a password (`http_proxy = "http://user:pw@proxy"`).
fn sensitive_in(value: &Value, sensitive: &[&str]) -> Option<String> {
    match value {
        Value::Object(m) => m.iter().find_map(|(k, v)| {
            if v.is_null() {
                return None;
            }
            if sensitive.contains(&k.as_str()) || v.as_str().is_some_and(url_has_password) {
                return Some(k.clone());
            }
            sensitive_in(v, sensitive)
        }),
        Value::Array(a) => a.iter().find_map(|v| sensitive_in(v, sensitive)),
        _ => None,
    }
}

/// The settings to hand back to terraform: every saved attribute that is set and is not in `removes`
/// (the credential attributes), with nulls dropped inside nested objects too. Pure.
pub fn preserved_settings(
    b: &SavedBackend,
    removes: &[&str],
) -> Result<Map<String, Value>, String> {
    let config = &b.config;
    // A removed attribute never reaches the file, whatever it holds.
    let kept: Map<String, Value> = config
        .iter()
        .filter(|(k, _)| !removes.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let sensitive = credentials::sensitive_settings(&b.kind);
    if let Some(name) = sensitive_in(&Value::Object(kept), &sensitive) {
        return Err(format!(
            "the saved backend also holds `{name}`, a secret tfshim will not write to a file"
        ));
    }
    Ok(kept_settings(b, removes))
}

/// What went wrong in a repair, by kind, so that the caller decides what the user's command does
/// next (`main` runs terraform unchanged unless the user's own command already ran). Each says one
/// line, with no secret.
#[derive(Debug)]
pub enum Error {
    /// terraform could not be started: nothing was changed.
    CouldNotRun(String),
    /// terraform's reconfigure succeeded but broke an invariant; the old file was put back.
    Unverified(String),
    /// The old file could not be put back: the saved file is as terraform left it, the backup
    /// stays, and the next run's recovery tries again.
    Restore(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::CouldNotRun(m) | Error::Unverified(m) | Error::Restore(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// How to run terraform for a reconfigure.
pub struct Reconfigure<'a> {
    pub terraform: &'a Path,
    /// The data dir holding the saved file (and the lock).
    pub data_dir: &'a Path,
    /// The attributes this reconfigure changes (invariant 1).
    pub credential_attrs: &'a [&'a str],
    /// Environment to add to the child (the recursion counter, `TFSHIM_MODE=off`).
    pub env: &'a [(OsString, OsString)],
    /// Environment variables the child must not see.
    pub remove_env: &'a [&'a str],
    /// The user's own init (its stdin, stdout and output are theirs), or the repair's own (stdin
    /// closed, stdout to stderr, output held back unless `show_output`).
    pub users_command: bool,
    /// Stream terraform's output (CI, debug); otherwise it is captured and shown only if it fails.
    pub show_output: bool,
}

/// How a reconfigure runs beyond [`Reconfigure`]'s fields (`shim reinit`, #21).
#[derive(Debug, Default, Clone, Copy)]
pub struct RunOptions<'a> {
    /// Invariant 2 waived: the user asked for a reconfigure after a terraform upgrade, which may
    /// hash the same `.tf` block anew (0.12 → 0.13 does, recording no version); invariant 1 still
    /// proves that the same state is addressed.
    pub new_hash_expected: bool,
    /// Run terraform in this directory (0.12–0.14 have no `-chdir`).
    pub dir: Option<&'a Path>,
}

/// What became of a reconfigure.
#[derive(Debug)]
pub enum Outcome {
    /// Terraform succeeded and the invariants hold.
    Done,
    /// Terraform exited non-zero (the old file is back); the exit code to pass on.
    Failed(u8),
    /// A signal arrived while terraform ran; the file is either repaired or back as it was.
    Interrupted(i32),
    /// Terraform was not run, and why (no backup or settings file could be written): nothing changed.
    NotStarted(String),
}

impl<'a> Reconfigure<'a> {
    /// Backs the saved file up, writes `settings` (from [`preserved_settings`]) to the settings file,
    /// runs the terraform command line `args` builds from the file's path, then verifies the
    /// invariants, restoring the old file when they fail. The caller holds the [`Lock`] and passes
    /// the saved backend it read under it. Terminating signals are caught from before the backup
    /// exists until the end, so that the check and the restore always run.
    pub fn run(
        &self,
        old: &SavedBackend,
        settings: &Map<String, Value>,
        args: impl FnOnce(OsString) -> Vec<OsString>,
        expected_credentials: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Outcome, Error> {
        self.run_with(
            RunOptions::default(),
            old,
            settings,
            args,
            expected_credentials,
        )
    }

    /// [`Reconfigure::run`] with `opts`.
    pub fn run_with(
        &self,
        opts: RunOptions,
        old: &SavedBackend,
        settings: &Map<String, Value>,
        args: impl FnOnce(OsString) -> Vec<OsString>,
        expected_credentials: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Outcome, Error> {
        let signals = Signals::catch();
        // Invariant 4: no rewrite without a durable copy, and a journal of what this repair
        // intends, so that a recovery after a kill tells its result from somebody else's change.
        let intent = match self.users_command {
            true => Intent::Replace,
            false => Intent::Remove,
        };
        let journal = Journal::new(&old.raw, intent, self.credential_attrs);
        let backup = match Backup::create(self.data_dir, old, &journal) {
            Ok(b) => b,
            Err(e) => return Ok(Outcome::NotStarted(e.to_string())),
        };
        let file = match datadir::write_settings(settings, self.data_dir) {
            Ok(f) => f,
            Err(e) => {
                backup.discard();
                return Ok(Outcome::NotStarted(e.to_string()));
            }
        };
        let mut cmd = Command::new(self.terraform);
        cmd.args(args(file.as_os_str().to_owned()))
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        for name in self.remove_env {
            cmd.env_remove(name);
        }
        if let Some(dir) = opts.dir {
            cmd.current_dir(dir);
        }
        if !self.users_command {
            // The repair's own init must not write to the user's stdout (which may be a
            // `plan -json` piped elsewhere) nor wait for input.
            cmd.stdin(Stdio::null()).stdout(Stdio::from(io::stderr()));
        }
        if self.users_command {
            crate::proxy::exec::starting_users_command();
        }
        let capture = !self.users_command && !self.show_output;
        let run = run_child(cmd, capture, &signals);
        drop(file); // invariant 5: gone before anything else can fail
        crate::boundary::injected("repair", || {
            "after terraform's init, before the check".into()
        });
        let ChildRun { status, output } = match run {
            Ok(r) => r,
            Err(e) => {
                // terraform never started: the saved file is as it was.
                backup.discard();
                return Err(Error::CouldNotRun(format!(
                    "could not run {}: {e}",
                    self.terraform.display()
                )));
            }
        };
        if !status.success() && !output.is_empty() {
            let _ = io::stderr().write_all(&output);
        }
        let verified = SavedBackend::read(self.data_dir)
            .map_err(|e| e.to_string())
            .and_then(|new| new.ok_or_else(|| "the saved backend is gone".to_owned()))
            .map(|new| {
                if opts.new_hash_expected {
                    // Invariant 2 waived: only the hash is taken as the old one's.
                    SavedBackend {
                        hash: old.hash.clone(),
                        ..new
                    }
                } else {
                    new
                }
            })
            .and_then(|new| {
                check_invariants(old, &new, self.credential_attrs, expected_credentials)
            });
        // The user's own init ends as terraform ended (its code, or the signal it died of, as
        // without tfshim); the repair's init is tfshim's, and a signal tfshim received stops the run.
        let interrupted = if self.users_command {
            killed_by(&status)
        } else {
            signals.received().or_else(|| killed_by(&status))
        };
        let failed_code = || match killed_by(&status) {
            Some(sig) => signal_exit_code(sig),
            None => status.code().unwrap_or(1).clamp(1, 255) as u8,
        };
        let outcome = match (status.success(), verified) {
            // Repaired and verified: keep it, even if a signal came in meanwhile.
            (true, Ok(())) => {
                backup.discard();
                match interrupted {
                    None => Outcome::Done,
                    Some(sig) => Outcome::Interrupted(sig),
                }
            }
            (false, Ok(())) if interrupted.is_some() => {
                backup.discard();
                Outcome::Interrupted(interrupted.unwrap_or(0))
            }
            (succeeded, verdict) => {
                // Invariant 3. On failure the backup stays and the error says what to do.
                let why = match (&interrupted, &verdict) {
                    (Some(sig), _) => format!("the repair was interrupted by signal {sig}"),
                    (None, Err(why)) if succeeded => {
                        format!("terraform's reconfigure succeeded but {why}")
                    }
                    (None, _) => format!("the repair's init failed (exit {})", failed_code()),
                };
                let restored = backup
                    .restore()
                    .map_err(|e| Error::Restore(format!("{why}: {e}")))?;
                let how = match restored {
                    Restored::Unchanged => "is unchanged",
                    Restored::PutBack => "was put back as it was",
                };
                log::say(&format!("the saved backend {} {how}", old.path.display()));
                match (interrupted, verdict) {
                    (Some(sig), _) => Outcome::Interrupted(sig),
                    (None, Err(why)) if succeeded => {
                        return Err(Error::Unverified(format!(
                            "terraform's reconfigure succeeded but {why}; the saved backend {} \
                             {how}, so the root addresses the same state as before and nothing \
                             else was changed.{}",
                            old.path.display(),
                            next_step(&why)
                        )))
                    }
                    (None, _) => Outcome::Failed(failed_code()),
                }
            }
        };
        drop(signals);
        Ok(outcome)
    }
}

/// What to do after a reconfigure that broke an invariant, where a command is safe to name. A
/// changed hash is what a terraform upgrade that records no version brings (0.12 → 0.13): `shim
/// reinit` is the careful fix then, with every saved setting kept (a bare `init -reconfigure` would
/// drop them), #21. Otherwise no command is named: none is safe without knowing what changed.
fn next_step(why: &str) -> String {
    if why == HASH_CHANGED {
        format!(
            " If terraform was upgraded since the last init, run `{}` (init -reconfigure with \
             every saved backend setting, the stale key removed)",
            crate::report::command::shim("reinit", None, "")
        )
    } else {
        String::new()
    }
}

/// `-backend-config=FILE`.
pub fn backend_config_arg(file: OsString) -> OsString {
    let mut a = OsString::from("-backend-config=");
    a.push(file);
    a
}

/// The environment of a terraform that tfshim runs and checks: `base` (the recursion counter), and
/// `TFSHIM_MODE=off`, so that a tfshim found again as that `terraform` (a second copy on PATH, a
/// wrapper script) passes straight through instead of waiting for the lock this run holds.
pub fn child_env(base: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    let mut env = base.to_vec();
    env.push(("TFSHIM_MODE".into(), "off".into()));
    env
}

/// The repair itself: `terraform [-chdir=…] init -reconfigure -input=false -backend-config=FILE`
/// in one data dir, under its lock, so that the rejected saved credential is gone and nothing else
/// changed.
/// Used by the proxy (before the user's command) and by `shim sweep` (for every stale root).
pub struct KeyRemoval<'a> {
    pub terraform: &'a Path,
    /// Global options for terraform (`-chdir=ROOT`).
    pub global_args: Vec<OsString>,
    pub data_dir: &'a Path,
    /// Environment for the child (recursion counter, `TFSHIM_MODE=off`).
    pub env: &'a [(OsString, OsString)],
    pub no_color: bool,
    /// Stream terraform's output instead of holding it back (shown anyway if it fails).
    pub show_output: bool,
}

/// What became of a [`KeyRemoval`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Re-initialised and verified.
    Done,
    /// Another run had already removed that key (found under the lock).
    AlreadyDone,
    /// Not attempted, and why (the lock, or a secret that cannot go into the settings file).
    Skipped(String),
    /// terraform's init failed; the old file is back. Its exit code.
    Failed(u8),
    /// A signal arrived; the file is either as before or fully repaired.
    Interrupted(i32),
}

impl KeyRemoval<'_> {
    /// Removes `rejected` from the saved backend, if it is still the one saved; `fallback` is what
    /// terraform will use instead (checked to work).
    pub fn run(
        &self,
        rejected: &dyn Credential,
        fallback: Option<&Ambient>,
    ) -> Result<Removal, Error> {
        self.run_in(None, rejected, fallback)
    }

    /// [`KeyRemoval::run`] with terraform run in `dir` (`shim forget-keys`, `shim sweep --fix`:
    /// 0.12–0.14 have no `-chdir`, #21).
    pub fn run_in(
        &self,
        dir: Option<&Path>,
        rejected: &dyn Credential,
        fallback: Option<&Ambient>,
    ) -> Result<Removal, Error> {
        let _lock = match Lock::acquire(self.data_dir) {
            Ok(l) => l,
            Err(e) => return Ok(Removal::Skipped(e.to_string())),
        };
        // Re-read under the lock: another tfshim may have repaired it while we waited.
        let current = match SavedBackend::read(self.data_dir) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Removal::Skipped("the saved backend is gone".into())),
            Err(e) => return Ok(Removal::Skipped(format!("the saved backend changed: {e}"))),
        };
        if !rejected.still_saved(&current) {
            return Ok(Removal::AlreadyDone);
        }
        let removes = rejected.removes(fallback);
        let settings = match preserved_settings(&current, &removes) {
            Ok(s) => s,
            Err(why) => return Ok(Removal::Skipped(why)),
        };
        let reconfigure = Reconfigure {
            terraform: self.terraform,
            data_dir: self.data_dir,
            credential_attrs: &removes,
            env: self.env,
            // The repair's init is tfshim's, not the user's: their extra init flags (`-upgrade`,
            // `-migrate-state`, `-backend-config=…`) would change what it does.
            remove_env: &["TF_CLI_ARGS", "TF_CLI_ARGS_init"],
            users_command: false,
            show_output: self.show_output,
        };
        let opts = RunOptions {
            dir,
            ..RunOptions::default()
        };
        let outcome = reconfigure.run_with(
            opts,
            &current,
            &settings,
            |file| {
                let mut args = self.global_args.clone();
                args.extend(["init", "-reconfigure", "-input=false"].map(OsString::from));
                if self.no_color {
                    args.push("-no-color".into());
                }
                args.push(backend_config_arg(file));
                args
            },
            &|_| None,
        )?;
        Ok(match outcome {
            Outcome::Done => Removal::Done,
            Outcome::Failed(code) => Removal::Failed(code),
            Outcome::Interrupted(sig) => Removal::Interrupted(sig),
            Outcome::NotStarted(why) => Removal::Skipped(why),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const S3: &[&str] = crate::credentials::s3::CREDENTIAL_ATTRS;

    fn saved(config: &str, hash: u64) -> SavedBackend {
        crate::backends::saved::testing::saved("s3", config, hash)
    }

    const OLD: &str = r#"{"access_key":"AKIAOLD","secret_key":"S","token":null,"bucket":"b","key":"k",
        "region":"us-east-1","endpoints":{"sts":"http://x","s3":null},"encrypt":null,"use_path_style":true}"#;

    #[test]
    fn settings_keep_everything_but_credentials_and_nulls() {
        let s = preserved_settings(&saved(OLD, 1), S3).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"bucket":"b","key":"k","region":"us-east-1","endpoints":{"sts":"http://x"},"use_path_style":true}"#
        );
        assert!(!text.contains("AKIAOLD"));
    }

    #[test]
    fn settings_refuse_other_secrets() {
        let b = saved(r#"{"access_key":"A","sse_customer_key":"c2VjcmV0"}"#, 1);
        let err = preserved_settings(&b, S3).unwrap_err();
        assert!(err.contains("sse_customer_key") && !err.contains("c2VjcmV0"));
        let b = saved(
            r#"{"assume_role_with_web_identity":{"web_identity_token":"tok"}}"#,
            1,
        );
        assert!(preserved_settings(&b, S3).is_err());
        let b = saved(
            r#"{"assume_role_with_web_identity":[{"web_identity_token":"tok"}]}"#,
            1,
        );
        assert!(preserved_settings(&b, S3).is_err());
        let b = saved(r#"{"https_proxy":"http://me:pw@proxy:3128"}"#, 1);
        let err = preserved_settings(&b, S3).unwrap_err();
        assert!(err.contains("https_proxy") && !err.contains("pw@"), "{err}");
        let b = saved(
            r#"{"https_proxy":"http://proxy:3128","endpoints":{"sts":"https://a@b"}}"#,
            1,
        );
        assert!(preserved_settings(&b, S3).is_ok());
        let b = saved(r#"{"sse_customer_key":null}"#, 1);
        assert!(preserved_settings(&b, S3).is_ok());
    }

    /// A saved file written by `version`.
    fn saved_by(version: &str, config: &str, hash: u64) -> SavedBackend {
        let text = format!(
            r#"{{"version":3,"terraform_version":"{version}","backend":{{"type":"s3","config":{config},"hash":{hash}}}}}"#
        );
        SavedBackend::parse(PathBuf::from("t"), text.into_bytes())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_new_terraform_version_may_change_the_hash_and_nothing_else() {
        let unset = |_: &str| None;
        let old = saved_by("1.0.3", OLD, 1);
        let repaired = OLD
            .replace(r#""AKIAOLD""#, "null")
            .replace(r#""S""#, "null");
        // Upgraded: a new hash is expected when every setting is the same but the keys.
        assert_eq!(
            check_invariants(&old, &saved_by("1.11.4", &repaired, 2), S3, &unset),
            Ok(())
        );
        // The same version: a new hash still means another .tf block.
        assert!(
            check_invariants(&old, &saved_by("1.0.3", &repaired, 2), S3, &unset)
                .unwrap_err()
                .contains("hash")
        );
        // Upgraded, but a setting changed too: still a violation.
        let moved = repaired.replace(r#""key":"k""#, r#""key":"other""#);
        assert!(
            check_invariants(&old, &saved_by("1.11.4", &moved, 2), S3, &unset)
                .unwrap_err()
                .contains("key")
        );
        // 1.0.3 recorded no version: a file that comes back with one was written by another version.
        assert_eq!(
            check_invariants(
                &saved(OLD, 1),
                &saved_by("1.11.4", &repaired, 2),
                S3,
                &unset
            ),
            Ok(())
        );
        // Neither says: no exception.
        let bare = saved(&repaired, 2);
        assert!(check_invariants(&saved(OLD, 1), &bare, S3, &unset).is_err());
    }

    /// #20 item 11: a terraform that cannot start is an error of its own kind (the caller runs
    /// terraform unchanged), and leaves nothing behind: no backup, no journal, no settings file.
    #[test]
    fn a_terraform_that_cannot_start_is_typed_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{"version":3,"backend":{"type":"s3","config":{"access_key":"AKIAOLD","bucket":"b"},"hash":1}}"#;
        std::fs::write(dir.path().join("terraform.tfstate"), text).unwrap();
        let old = SavedBackend::read(dir.path()).unwrap().unwrap();
        let reconfigure = Reconfigure {
            terraform: Path::new("/nonexistent/terraform"),
            data_dir: dir.path(),
            credential_attrs: S3,
            env: &[],
            remove_env: &[],
            users_command: false,
            show_output: false,
        };
        let settings = preserved_settings(&old, S3).unwrap();
        let err = reconfigure
            .run(&old, &settings, |f| vec![f], &|_| None)
            .unwrap_err();
        assert!(matches!(err, Error::CouldNotRun(_)), "{err:?}");
        assert!(err
            .to_string()
            .contains("could not run /nonexistent/terraform"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["terraform.tfstate"]);
        assert_eq!(std::fs::read_to_string(&old.path).unwrap(), text);
    }

    #[test]
    fn invariants() {
        let old = saved(OLD, 1);
        let unset = |_: &str| None;
        let repaired = saved(
            r#"{"access_key":null,"secret_key":null,"token":null,"bucket":"b","key":"k",
            "region":"us-east-1","endpoints":{"sts":"http://x","s3":null,"iam":null},"use_path_style":true}"#,
            1,
        );
        assert_eq!(check_invariants(&old, &repaired, S3, &unset), Ok(()));
        // The key must really be gone.
        assert!(check_invariants(&old, &old, S3, &unset).is_err());
        // A changed hash or a changed setting is a violation, named without values.
        let moved = saved(
            &OLD.replace(r#""key":"k""#, r#""key":"other""#)
                .replace("AKIAOLD", "null"),
            1,
        );
        let err = check_invariants(&old, &moved, S3, &unset).unwrap_err();
        assert!(err.contains("key") && !err.contains("other"), "{err}");
        assert!(
            check_invariants(&old, &saved(r#"{"bucket":"b"}"#, 2), S3, &unset)
                .unwrap_err()
                .contains("hash")
        );
        // A credential-only init: the new key is expected.
        let new_key = saved(
            &OLD.replace("AKIAOLD", "AKIANEW")
                .replace(r#""S""#, r#""T""#),
            1,
        );
        let expect = |k: &str| match k {
            "access_key" => Some("AKIANEW".to_owned()),
            "secret_key" => Some("T".to_owned()),
            _ => None,
        };
        assert_eq!(check_invariants(&old, &new_key, S3, &expect), Ok(()));
        assert!(check_invariants(&old, &repaired, S3, &expect).is_err());
    }
}
