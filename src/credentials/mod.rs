//! One module per backend type whose saved configuration can hold a credential that goes stale,
//! behind one small abstraction, a [`Credential`] made from the saved backend by [`credential_of`]
//! (issue #13):
//! - what is saved that can go stale: [`CREDENTIAL_ATTRS`] per type, and the credential itself
//!   (shown only redacted);
//! - how to check it cheaply: [`Credential::check`], one request aimed where terraform aims it, with
//!   exactly the saved credential (S3: `sts:GetCallerIdentity`; http: one request to `address`;
//!   gcs: one listing of the bucket with the bearer token, issue #23);
//! - what terraform falls back to once it is gone: [`Credential::check_fallback`] (S3: the AWS
//!   credential chain; http: `TF_HTTP_PASSWORD`; gcs: `GOOGLE_OAUTH_ACCESS_TOKEN`, key files, Google's
//!   default credentials), checked the same way before anything is touched;
//! - what the repair removes: [`Credential::removes`] (S3: the keys and session token; http: the
//!   password, the mTLS private key if saved, the username where only the variable's works; gcs:
//!   `access_token`, a saved `credentials` with it).
//!
//! Everything else is shared and sees backends only through this trait: the decision
//! (`heal::decide`), the repair with its lock, invariants and rollback (`heal::repair`), doctor,
//! sweep, the reports and the warnings. `s3.rs`, `http.rs`, `gcs.rs` and `azurerm.rs` implement it
//! on top of `aws/` (STS) and `net/` (one HTTP request under the root's deadline), reading what
//! `backends/` read.

pub mod azurerm;
pub mod gcs;
pub mod http;
pub mod s3;

use std::any::Any;
use std::path::Path;
use std::time::Duration;

use crate::aws::sts::Ambient;
use crate::aws::verdict::Verdict;
use crate::backends::saved::SavedBackend;
use crate::backends::secrets;

/// Per backend type, the saved attributes that hold credentials: what a credential-only `init` may
/// change (and the invariants then expect the user's values in).
pub const CREDENTIAL_ATTRS: &[(&str, &[&str])] = &[
    ("s3", s3::CREDENTIAL_ATTRS),
    ("http", http::CREDENTIAL_ATTRS),
    ("gcs", gcs::CREDENTIAL_ATTRS),
    ("azurerm", azurerm::CREDENTIAL_ATTRS),
];

/// The credential attributes of backend type `kind` (none for a type tfshim does not heal).
pub fn credential_attrs(kind: &str) -> &'static [&'static str] {
    CREDENTIAL_ATTRS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, a)| *a)
        .unwrap_or(&[])
}

/// Saved attributes of backend type `kind` that are secrets (`secrets.rs`) other than S3's static
/// credentials: the repair's settings file must never hold one, so a backend that kept one after
/// the repair's removals is not repaired automatically.
pub fn sensitive_settings(kind: &str) -> Vec<&'static str> {
    secrets::other_secret_attrs(kind).collect()
}

/// The credential attributes a credential-only `init` replaces, given those it sets (`given`): an S3
/// key pair is replaced as a whole (a saved session token belongs to the old key), an http password
/// alone keeps the saved username.
pub fn init_replaces(kind: &str, given: &dyn Fn(&str) -> bool) -> Vec<&'static str> {
    let attrs = credential_attrs(kind);
    match kind {
        "s3" => attrs.to_vec(),
        _ => attrs.iter().copied().filter(|a| given(a)).collect(),
    }
}

/// Whether terraform would check the saved credential, and whether tfshim can do it as terraform
/// would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkable {
    Yes,
    /// terraform itself never validates it (S3 `skip_credentials_validation`).
    Skipped,
    /// tfshim cannot reproduce terraform's request; why.
    No(String),
}

/// How the environment is read (a function, so that tests and the golden files pass their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One saved credential of one root, with what is needed to check it and its fallback. `Debug`
/// must redact (the types that hold the secrets do).
pub trait Credential: Send + Sync + std::fmt::Debug {
    /// `backend.type`.
    fn kind(&self) -> &'static str;
    /// Whether a credential is saved at all (an S3 backend without a key still has a fallback to
    /// show).
    fn present(&self) -> bool;
    /// The credential as tfshim shows it: `AKIA…QXGR`, `user gitlab-ci-token`. Never a secret.
    fn shown(&self) -> String;
    /// The credential in a sentence: `key AKIA…QXGR`, `password (user gitlab-ci-token)`.
    fn label(&self) -> String;
    /// Whose it is: "S3 backend", "http backend".
    fn noun(&self) -> &'static str;
    /// Who judges it: "STS", "the state server".
    fn judge(&self) -> &'static str;
    fn checkable(&self) -> Checkable;
    /// Whether the fallback can be checked at all (doctor asks even without a saved credential).
    fn fallback_checkable(&self) -> bool;
    /// One request with exactly the saved credential.
    fn check(&self) -> Verdict;
    /// The credentials terraform falls back to once the saved one is removed, checked the same way.
    fn check_fallback(&self) -> Ambient;
    /// Where the fallback was looked for, in words (for the refusal).
    fn looked(&self, env: Env) -> String;
    /// What the user should do when no fallback works.
    fn advice(&self) -> &'static str;
    /// Later checks wait longer (terraform itself reached the server).
    fn be_patient(&mut self);
    /// The terraform that will run, for a credential whose fallback depends on its version more
    /// than the saved file can tell (`version` runs `terraform version`: call it only if needed).
    fn note_running_terraform(&mut self, _version: &dyn Fn() -> Option<String>) {}
    /// The saved attributes the repair removes, given the fallback found to work (http drops the
    /// saved username too when only `TF_HTTP_USERNAME`'s works).
    fn removes(&self, fallback: Option<&Ambient>) -> Vec<&'static str>;
    /// Whether `current` (re-read under the lock) still holds this very credential.
    fn still_saved(&self, current: &SavedBackend) -> bool;
    /// Whether one check answers for both (same credential, same target): a sweep checks once.
    fn same_check(&self, other: &dyn Credential) -> bool;
    /// Whether one fallback check answers for both.
    fn same_fallback(&self, other: &dyn Credential) -> bool;
    fn as_any(&self) -> &dyn Any;
}

/// The saved credential of `b`, for the backend types tfshim heals; `None` when nothing that can go
/// stale is saved. `work_dir` anchors relative paths as terraform would (`-chdir`).
pub fn credential_of(
    b: &SavedBackend,
    work_dir: &Path,
    env: Env,
    timeout: Duration,
) -> Option<Box<dyn Credential>> {
    match b.kind.as_str() {
        "s3" => s3::S3Key::from_backend(b, work_dir, env, timeout)
            .map(|c| Box::new(c) as Box<dyn Credential>),
        "http" => http::HttpPassword::from_backend(b, env, timeout)
            .map(|c| Box::new(c) as Box<dyn Credential>),
        "gcs" => {
            gcs::GcsToken::from_backend(b, env, timeout).map(|c| Box::new(c) as Box<dyn Credential>)
        }
        "azurerm" => azurerm::AzureKey::from_backend(b, env, timeout)
            .map(|c| Box::new(c) as Box<dyn Credential>),
        _ => None,
    }
}
