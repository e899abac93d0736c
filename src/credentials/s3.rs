//! The S3 backend behind [`Credential`]: the static key terraform saved (`access_key`, `secret_key`,
//! `token`), checked with one `sts:GetCallerIdentity` aimed where terraform aims it (`aws::sts`);
//! the fallback is the AWS credential chain with the backend's profile settings (`aws::chain`).

use std::any::Any;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::aws::chain::{Generation, ProfileEndpoint, ProfileSettings};
use crate::aws::sts::{Ambient, Session, Target};
use crate::aws::verdict::Verdict;
use crate::backends::saved::{SavedBackend, StaticCredentials};
use crate::credentials::{Checkable, Credential, Env};

/// The S3 attributes that carry the static credentials terraform saved (and that a repair removes).
pub const CREDENTIAL_ATTRS: &[&str] = crate::backends::secrets::S3_CREDENTIAL_ATTRS;

/// The timeout of checks made after terraform itself has reached STS.
const PATIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// An S3 backend's saved key (if any) and where STS is. It exists for every S3 backend, key or
/// not, because `shim doctor` also shows the fallback credentials of a backend without a key.
pub struct S3Key {
    pub creds: Option<StaticCredentials>,
    /// Where terraform's STS call goes, or why tfshim cannot reproduce it.
    pub target: Result<Target, String>,
    pub profiles: ProfileSettings,
    skip_validation: bool,
    /// Built on the first check and reused by the second (building it is the expensive part).
    session: OnceLock<Result<Session, String>>,
    /// When the root's check must be over, set by its first check: the saved key's call and the
    /// fallback's loading and call share one `TFSHIM_STS_TIMEOUT` (#20).
    deadline: OnceLock<Instant>,
}

impl std::fmt::Debug for S3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Key")
            .field("creds", &self.creds)
            .field("target", &self.target)
            .field("profiles", &self.profiles)
            .finish_non_exhaustive()
    }
}

/// Where terraform in `work_dir` would send the STS call for backend `b` (see [`Target`]).
pub fn target_of(
    b: &SavedBackend,
    work_dir: &Path,
    env: Env,
    timeout: Duration,
) -> Result<Target, String> {
    let profiles = ProfileSettings::from_backend(b, env).anchored(work_dir);
    // The AWS config files can only name STS when nothing before them does (and only for
    // terraform 1.6+); reading them is skipped otherwise, and where there is no key to check.
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    // An attribute set to "" names no endpoint and keeps terraform from reading AWS_STS_ENDPOINT.
    let vars: &[&str] = match b.sts_endpoint_attr() {
        Some("") => &["AWS_ENDPOINT_URL_STS"],
        _ => &["AWS_ENDPOINT_URL_STS", "AWS_STS_ENDPOINT"],
    };
    let needs_files = profiles.generation == Generation::Current
        && b.s3_static_credentials().is_some()
        && b.sts_endpoint_attr().is_none_or(str::is_empty)
        && !vars.iter().any(|k| set(k));
    let endpoint = if needs_files {
        ProfileEndpoint::load(&profiles)
    } else {
        ProfileEndpoint::default()
    };
    Target::from_backend(b, env, profiles.generation, &endpoint, timeout)
        .map(|t| t.anchored(work_dir))
}

impl S3Key {
    pub fn from_backend(
        b: &SavedBackend,
        work_dir: &Path,
        env: Env,
        timeout: Duration,
    ) -> Option<S3Key> {
        if b.kind != "s3" {
            return None;
        }
        Some(S3Key {
            creds: b.s3_static_credentials(),
            target: target_of(b, work_dir, env, timeout),
            profiles: ProfileSettings::from_backend(b, env).anchored(work_dir),
            skip_validation: b.flag("skip_credentials_validation"),
            session: OnceLock::new(),
            deadline: OnceLock::new(),
        })
    }

    fn deadline(&self) -> Instant {
        *self.deadline.get_or_init(|| {
            let timeout = self.target.as_ref().map_or(Duration::ZERO, |t| t.timeout);
            Instant::now() + timeout
        })
    }

    fn session(&self) -> Result<&Session, String> {
        self.session
            .get_or_init(|| self.target.clone().and_then(Session::new))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Credential for S3Key {
    fn kind(&self) -> &'static str {
        "s3"
    }
    fn present(&self) -> bool {
        self.creds.is_some()
    }
    fn shown(&self) -> String {
        self.creds
            .as_ref()
            .map(|c| c.access_key.redacted())
            .unwrap_or_default()
    }
    fn label(&self) -> String {
        format!("key {}", self.shown())
    }
    fn noun(&self) -> &'static str {
        "S3 backend"
    }
    fn judge(&self) -> &'static str {
        "STS"
    }
    fn checkable(&self) -> Checkable {
        match (&self.target, self.skip_validation) {
            (_, true) => Checkable::Skipped,
            (Err(why), false) => Checkable::No(why.clone()),
            (Ok(_), false) => Checkable::Yes,
        }
    }
    fn fallback_checkable(&self) -> bool {
        self.target.is_ok()
    }
    fn check(&self) -> Verdict {
        let Some(creds) = &self.creds else {
            return Verdict::Missing;
        };
        let deadline = self.deadline();
        match self.session() {
            Ok(s) => s.check_static(creds, deadline),
            Err(why) => Verdict::unknown(why),
        }
    }
    fn check_fallback(&self) -> Ambient {
        let deadline = self.deadline();
        match self.session() {
            Ok(s) => s.check_ambient(&self.profiles, deadline),
            Err(why) => Ambient {
                verdict: Verdict::unknown(why),
                source: "not checked".into(),
            },
        }
    }
    fn looked(&self, env: Env) -> String {
        self.profiles.describe(env)
    }
    fn advice(&self) -> &'static str {
        "Put the rotated key where terraform finds it — e.g. `~/.aws/credentials` or \
         AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY — and run the command again"
    }
    fn note_running_terraform(&mut self, version: &dyn Fn() -> Option<String>) {
        // A file saved by ≤ 1.5 may now be used by 1.6+ (an upgrade, before the next `init`), whose
        // credential order differs (`chain::Generation`). Only a legacy file raises the question,
        // and only the fallback check (the repair path) pays for asking.
        if self.profiles.generation == Generation::Legacy {
            if let Some(v) = version() {
                self.profiles.generation = Generation::of_terraform(Some(&v));
            }
        }
    }
    fn be_patient(&mut self) {
        if let Ok(target) = &mut self.target {
            target.timeout = target.timeout.max(PATIENT_TIMEOUT);
        }
        self.session = OnceLock::new();
        // A new check, with a budget of its own.
        self.deadline = OnceLock::new();
    }
    fn removes(&self, _fallback: Option<&Ambient>) -> Vec<&'static str> {
        CREDENTIAL_ATTRS.to_vec()
    }
    fn still_saved(&self, current: &SavedBackend) -> bool {
        let Some(rejected) = &self.creds else {
            return false;
        };
        current.s3_static_credentials().is_some_and(|c| {
            c.access_key == rejected.access_key && c.secret_key == rejected.secret_key
        })
    }
    fn same_check(&self, other: &dyn Credential) -> bool {
        other
            .as_any()
            .downcast_ref::<S3Key>()
            .is_some_and(|o| o.creds == self.creds && o.target == self.target)
    }
    fn same_fallback(&self, other: &dyn Credential) -> bool {
        other
            .as_any()
            .downcast_ref::<S3Key>()
            .is_some_and(|o| o.target == self.target && o.profiles == self.profiles)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
