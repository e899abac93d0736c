//! Gathering what the decision needs: the saved backend, its static key, and — only when asked — the
//! STS verdicts on that key and on the credentials terraform would fall back to. Shared by the proxy's
//! preflight (which asks lazily, so a directory without a saved key costs no request) and by
//! `shim doctor` (which shows the same facts instead of acting on them).

use std::env;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::aws::chain::{Generation, ProfileEndpoint, ProfileSettings};
use crate::aws::sts::{Ambient, Session, Target};
use crate::aws::verdict::Verdict;
use crate::backends::saved::{SavedBackend, StaticCredentials};
use crate::backends::tf_block;
use crate::backends::warnings::{self, Warning};
use crate::heal::datadir::Lock;
use crate::heal::decide::Saved;
use crate::log;

/// Default for `TFSHIM_STS_TIMEOUT` (seconds): long enough for a slow link to STS, short enough that
/// an unreachable endpoint costs the user little.
const DEFAULT_TIMEOUT_SECS: f64 = 5.0;
/// The timeout of checks made after terraform itself has reached STS.
const PATIENT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn env_var(name: &str) -> Option<String> {
    env::var(name).ok()
}

/// `TFSHIM_STS_TIMEOUT` in seconds (fractions allowed).
pub fn sts_timeout() -> Duration {
    let secs = env_var("TFSHIM_STS_TIMEOUT")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    Duration::from_secs_f64(secs.min(300.0))
}

/// Where terraform in `work_dir` would send the STS call for backend `b` (see [`Target`]).
pub fn target_of(b: &SavedBackend, work_dir: &Path) -> Result<Target, String> {
    let profiles = ProfileSettings::from_backend(b, env_var).anchored(work_dir);
    // The AWS config files can only name STS when nothing before them does (and only for
    // terraform 1.6+); reading them is skipped otherwise, and where there is no key to check.
    let set = |k: &str| env_var(k).is_some_and(|v| !v.is_empty());
    let needs_files = profiles.generation == Generation::Current
        && b.s3_static_credentials().is_some()
        && b.sts_endpoint().is_none()
        && !["AWS_ENDPOINT_URL_STS", "AWS_STS_ENDPOINT"]
            .iter()
            .any(|k| set(k));
    let endpoint = if needs_files {
        ProfileEndpoint::load(&profiles)
    } else {
        ProfileEndpoint::default()
    };
    Target::from_backend(b, env_var, profiles.generation, &endpoint, sts_timeout())
        .map(|t| t.anchored(work_dir))
}

/// The facts about one data dir, gathered so far.
pub struct Findings {
    /// The directory terraform runs in (relative paths in the backend are read from there).
    pub work_dir: PathBuf,
    pub data_dir: PathBuf,
    pub saved: Saved,
    pub backend: Option<SavedBackend>,
    pub creds: Option<StaticCredentials>,
    pub target: Option<Result<Target, String>>,
    pub saved_verdict: Option<Verdict>,
    pub ambient: Option<Ambient>,
    /// The root's file whose `.tf` backend block writes the saved key itself (so no re-initialising
    /// can remove it); `None` when the key came from `-backend-config` (or none is saved).
    pub key_in_config: Option<PathBuf>,
    session: Option<Session>,
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
        let creds = backend
            .as_ref()
            .and_then(SavedBackend::s3_static_credentials);
        let target = backend
            .as_ref()
            .filter(|b| b.kind == "s3")
            .map(|b| target_of(b, work_dir));
        let saved = match (saved, &target) {
            (Saved::StaticKey, Some(Err(why))) => Saved::Uncheckable(why.clone()),
            (fact, _) => fact,
        };
        // Only a saved S3 key makes the root's own files worth reading.
        let key_in_config = creds
            .as_ref()
            .and_then(|_| tf_block::credentials_in_configuration(work_dir));
        Findings {
            work_dir: work_dir.to_path_buf(),
            data_dir,
            saved,
            backend,
            creds,
            target,
            saved_verdict: None,
            ambient: None,
            key_in_config,
            session: None,
        }
    }

    /// The saved key, redacted (`AKIA…QXGR`), or empty.
    pub fn key(&self) -> String {
        self.creds
            .as_ref()
            .map(|c| c.access_key.redacted())
            .unwrap_or_default()
    }

    /// The profile settings of the saved backend.
    pub fn profiles(&self) -> Option<ProfileSettings> {
        self.backend
            .as_ref()
            .map(|b| ProfileSettings::from_backend(b, env_var).anchored(&self.work_dir))
    }

    fn session(&mut self) -> Result<&Session, String> {
        if self.session.is_none() {
            let target = match &self.target {
                Some(Ok(t)) => t.clone(),
                Some(Err(why)) => return Err(why.clone()),
                None => return Err("no S3 backend".into()),
            };
            self.session = Some(Session::new(target)?);
        }
        Ok(self.session.as_ref().expect("set above"))
    }

    /// Gives later checks a long timeout: after terraform itself reached STS, a slow STS is not a
    /// reason to give up (the reactive fallback).
    pub fn be_patient(&mut self) {
        if let Some(Ok(target)) = &mut self.target {
            target.timeout = target.timeout.max(PATIENT_TIMEOUT);
        }
        self.session = None;
    }

    /// Asks STS about the saved key (once).
    pub fn check_saved(&mut self) -> Verdict {
        if let Some(v) = &self.saved_verdict {
            return v.clone();
        }
        let verdict = match self.creds.clone() {
            None => Verdict::Missing,
            Some(creds) => match self.session() {
                Ok(s) => s.check_static(&creds),
                Err(why) => Verdict::unknown(why),
            },
        };
        log::debug(|| format!("saved key {}: {verdict}", self.key()));
        self.saved_verdict = Some(verdict.clone());
        verdict
    }

    /// Asks STS about the credentials terraform would fall back to (once).
    pub fn check_ambient(&mut self) -> Ambient {
        if let Some(a) = &self.ambient {
            return a.clone();
        }
        let profiles = self.profiles().unwrap_or_default();
        let ambient = match self.session() {
            Ok(s) => s.check_ambient(&profiles),
            Err(why) => Ambient {
                verdict: Verdict::unknown(why),
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
            let fact = match (
                b.s3_static_credentials(),
                b.flag("skip_credentials_validation"),
            ) {
                (None, _) => Saved::NothingToCheck,
                (Some(_), true) => Saved::ValidationSkipped,
                (Some(_), false) => Saved::StaticKey,
            };
            log::debug(|| format!("saved backend: {b:?} → {fact:?}"));
            (fact, Some(b))
        }
    }
}
