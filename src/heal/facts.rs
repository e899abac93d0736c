//! Gathering what the decision needs: the saved backend, its saved credential (`credentials::Credential`:
//! an S3 key, an http password), and — only when asked — the verdicts on that credential and on the
//! credentials terraform would fall back to. Shared by the proxy's
//! preflight (which asks lazily, so a directory without a saved key costs no request) and by
//! `shim doctor` (which shows the same facts instead of acting on them).

use std::env;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::aws::sts::Ambient;
use crate::aws::verdict::Verdict;
use crate::backends::saved::SavedBackend;
use crate::backends::tf_block;
use crate::backends::warnings::{self, Warning};
use crate::credentials::{self, Checkable, Credential};
use crate::heal::datadir::Lock;
use crate::heal::decide::Saved;
use crate::log;

pub fn env_var(name: &str) -> Option<String> {
    env::var(name).ok()
}

/// `TFSHIM_STS_TIMEOUT` in seconds (fractions allowed): the deadline of a root's whole credential
/// check, the saved credential's and its fallback's requests together (README, "How long a check
/// can take"). Checked once, in `settings`.
pub fn sts_timeout() -> Duration {
    crate::settings::get().sts_timeout
}

/// The facts about one data dir, gathered so far. What was read from disk is fixed by
/// [`Findings::gather`]; the verdicts are asked for ([`Findings::check_saved`],
/// [`Findings::check_ambient`]) or, when reached elsewhere (a sweep checks each distinct key once for
/// many roots), recorded.
pub struct Findings {
    pub data_dir: PathBuf,
    pub saved: Saved,
    pub backend: Option<SavedBackend>,
    /// The saved credential and how to check it (`credentials::Credential`), for the backend types
    /// tfshim heals.
    pub cred: Option<Box<dyn Credential>>,
    saved_verdict: Option<Verdict>,
    ambient: Option<Ambient>,
    /// The root's file whose `.tf` backend block writes the saved key itself (so no re-initialising
    /// can remove it); `None` when the key came from `-backend-config` (or none is saved).
    pub key_in_config: Option<PathBuf>,
    /// The terraform that will run, where the caller knows it: the fallback check asks its version
    /// when the saved file's cannot tell which rules apply.
    pub terraform: Option<PathBuf>,
}

impl Findings {
    /// The warnings about what the saved backend exposes (and git's view of it when it holds secrets).
    pub fn security_warnings(&self, work_dir: &Path) -> Vec<Warning> {
        let Some(b) = &self.backend else {
            return Vec::new();
        };
        let mut out = warnings::backend_warnings(b, self.key_in_config.as_deref());
        if !out.is_empty() {
            out.extend(warnings::git_warnings(work_dir, &b.path));
        }
        out
    }

    /// Reads the saved backend in `data_dir` of the root `work_dir` (no network).
    pub fn gather(work_dir: &Path, data_dir: PathBuf) -> Findings {
        let (saved, backend) = read_saved(&data_dir);
        let cred = backend
            .as_ref()
            .and_then(|b| credentials::credential_of(b, work_dir, &env_var, sts_timeout()));
        let saved = match (saved, cred.as_deref()) {
            (Saved::Unreadable(why), _) => Saved::Unreadable(why),
            (_, Some(c)) if c.present() => match c.checkable() {
                Checkable::Yes => Saved::StaticKey,
                Checkable::Skipped => Saved::ValidationSkipped,
                Checkable::No(why) => Saved::Uncheckable(why),
            },
            (fact, _) => fact,
        };
        // Only a saved S3 key makes the root's own files worth reading.
        let key_in_config = cred
            .as_deref()
            .filter(|c| c.kind() == "s3" && c.present())
            .and_then(|_| tf_block::credentials_in_configuration(work_dir));
        log::debug(|| format!("saved credential: {cred:?} → {saved:?}"));
        Findings {
            data_dir,
            saved,
            backend,
            cred,
            saved_verdict: None,
            ambient: None,
            key_in_config,
            terraform: None,
        }
    }

    /// The verdict on the saved credential, once known.
    pub fn saved_verdict(&self) -> Option<&Verdict> {
        self.saved_verdict.as_ref()
    }

    /// The verdict on the fallback credentials, once known.
    pub fn ambient(&self) -> Option<&Ambient> {
        self.ambient.as_ref()
    }

    /// Records the saved credential's verdict, reached elsewhere for the same credential and target.
    pub fn record_saved(&mut self, verdict: Verdict) {
        self.saved_verdict = Some(verdict);
    }

    /// Records the fallback credentials' verdict, reached elsewhere for the same target and profiles.
    pub fn record_ambient(&mut self, ambient: Ambient) {
        self.ambient = Some(ambient);
    }

    /// Forgets the saved credential's verdict, so that the next [`Findings::check_saved`] asks again.
    pub fn forget_saved_verdict(&mut self) {
        self.saved_verdict = None;
    }

    /// The saved credential, redacted (`AKIA…QXGR`), or empty.
    pub fn key(&self) -> String {
        self.cred
            .as_ref()
            .filter(|c| c.present())
            .map(|c| c.shown())
            .unwrap_or_default()
    }

    /// The saved credential in words (`key AKIA…QXGR`, `password (user ci)`), or empty.
    pub fn label(&self) -> String {
        self.cred
            .as_ref()
            .filter(|c| c.present())
            .map(|c| c.label())
            .unwrap_or_default()
    }

    /// Whether a credential is saved (checkable or not).
    pub fn has_saved_credential(&self) -> bool {
        self.cred.as_ref().is_some_and(|c| c.present())
    }

    /// Whether the fallback credentials can be asked about.
    pub fn fallback_checkable(&self) -> bool {
        self.cred.as_ref().is_some_and(|c| c.fallback_checkable())
    }

    /// Where the fallback credentials were looked for, in words.
    pub fn looked(&self) -> String {
        self.cred
            .as_ref()
            .map(|c| c.looked(&env_var))
            .unwrap_or_else(|| "nowhere".into())
    }

    /// Gives later checks a long timeout: after terraform itself reached the server, a slow server
    /// is not a reason to give up (the reactive fallback).
    pub fn be_patient(&mut self) {
        if let Some(c) = &mut self.cred {
            c.be_patient();
        }
    }

    /// Asks about the saved credential (once).
    pub fn check_saved(&mut self) -> Verdict {
        if let Some(v) = &self.saved_verdict {
            return v.clone();
        }
        let verdict = match &self.cred {
            Some(c) if c.present() => c.check(),
            _ => Verdict::Missing,
        };
        log::debug(|| format!("saved credential {}: {verdict}", self.key()));
        self.saved_verdict = Some(verdict.clone());
        verdict
    }

    /// Asks about the credentials terraform would fall back to (once).
    pub fn check_ambient(&mut self) -> Ambient {
        if let Some(a) = &self.ambient {
            return a.clone();
        }
        if let (Some(c), Some(tf)) = (self.cred.as_mut(), &self.terraform) {
            c.note_running_terraform(&|| crate::proxy::locate::version_of(tf));
        }
        let ambient = match &self.cred {
            Some(c) => c.check_fallback(),
            None => Ambient {
                verdict: Verdict::unknown("no backend tfshim can check"),
                source: "not checked".into(),
            },
        };
        log::debug(|| {
            format!(
                "ambient credentials ({}): {}",
                ambient.source, ambient.verdict
            )
        });
        self.ambient = Some(ambient.clone());
        ambient
    }
}

/// Reads the saved backend and says what it offers.
fn read_saved(data_dir: &Path) -> (Saved, Option<SavedBackend>) {
    let read = {
        let _reading = Lock::shared_if_exists(data_dir);
        SavedBackend::read(data_dir)
    };
    match read {
        Ok(None) => {
            log::debug(|| format!("no saved backend in {}", data_dir.display()));
            (Saved::NothingToCheck, None)
        }
        Err(e) => (
            Saved::Unreadable(format!(
                "{}: {e}",
                data_dir.join(crate::backends::saved::SAVED_FILE).display()
            )),
            None,
        ),
        Ok(Some(b)) => {
            log::debug(|| format!("saved backend: {b:?}"));
            // What the saved credential offers is decided in `gather`, by its backend.
            (Saved::NothingToCheck, Some(b))
        }
    }
}
