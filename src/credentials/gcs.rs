//! The gcs backend behind [`Credential`] (issue #23): a saved `access_token`
//! (`init -backend-config=access_token=$(gcloud auth print-access-token)`) dies within the hour.
//!
//! Facts from terraform's `internal/backend/remote-state/gcs/backend.go` (1.11) and Google's auth
//! libraries it links (`/work/shared/notes/FACTS.md`, "gcs backend"):
//! - `access_token` falls back to `GOOGLE_OAUTH_ACCESS_TOKEN`, and while one of the two is set it is
//!   the only credential used; then the saved `credentials`, `GOOGLE_BACKEND_CREDENTIALS`,
//!   `GOOGLE_CREDENTIALS` (each a path or the JSON itself, `readPathOrContents`), then Google's
//!   default credentials: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
//!   `application_default_credentials.json`, the GCE metadata server; nothing → "could not find
//!   default credentials";
//! - the storage endpoint is `storage_custom_endpoint` (else `GOOGLE_BACKEND_STORAGE_CUSTOM_ENDPOINT`,
//!   `GOOGLE_STORAGE_CUSTOM_ENDPOINT`), else `https://storage.googleapis.com/storage/v1/`; the
//!   prefix loses its leading `/` and gains a trailing one;
//! - values taken from the environment are never saved, so a repair that drops `access_token`
//!   leaves terraform reading exactly the fallback checked here.
//!
//! The check is one request, the listing terraform makes for its workspaces:
//! `GET <endpoint>b/<bucket>/o?prefix=<prefix>&maxResults=1` with the bearer token. 401 → rejected;
//! 200 → valid; 403 → valid (the token works, it lacks permission: not stale, no repair); anything
//! else → no verdict. The fallback is checked the way terraform would get its token: a token from
//! the environment is the same GET; a service-account key signs a JWT (RS256, `ring`) exchanged at
//! its `token_uri`; a gcloud user credential posts its refresh token; on GCE one metadata GET; each
//! token so obtained then makes the same GET. A fallback whose token is refused (401) or forbidden
//! (403) does not work: a repair would not help.
//!
//! What the repair removes: `access_token`, and a saved `credentials` (a secret the settings file
//! must never hold: terraform then reads the fallback checked here instead). A saved
//! `encryption_key` is removed only when `GOOGLE_ENCRYPTION_KEY` (its environment default) holds the
//! same key; otherwise it stays in the settings and the shared repair refuses to write it.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use url::Url;

use crate::aws::chain::home_dir;
use crate::aws::proxy::ProxySettings;
use crate::aws::sts::Ambient;
use crate::aws::verdict::Verdict;
use crate::backends::saved::{SavedBackend, Secret};
use crate::credentials::{Checkable, Credential, Env};
use crate::net::client::{self, Call, Request, Tls};

/// The saved attributes that hold credentials (a credential-only `init` may change them).
pub const CREDENTIAL_ATTRS: &[&str] = &["access_token", "credentials"];

const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com/storage/v1/";
/// Google's token endpoint: a key's `token_uri` when it names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The scopes `storage.NewClient` asks for.
const SCOPES: &str =
    "https://www.googleapis.com/auth/devstorage.full_control https://www.googleapis.com/auth/cloud-platform";
const METADATA_HOST: &str = "169.254.169.254";
/// A token answer is small; anything longer is no answer.
const LONGEST_ANSWER: usize = 64 * 1024;
/// The timeout of checks made after terraform itself has reached the server.
const PATIENT_TIMEOUT: Duration = Duration::from_secs(30);
const USER_AGENT: &str = concat!("tfshim/", env!("CARGO_PKG_VERSION"));

/// Where terraform's credentials come from once the saved token is gone, in its order.
#[derive(Clone, PartialEq, Eq)]
enum Fallback {
    /// `GOOGLE_OAUTH_ACCESS_TOKEN`.
    Token(Secret),
    /// A JSON credential (key file, gcloud user credential) from `from`, or why it cannot be read
    /// (terraform would fail to read it too).
    Json {
        from: String,
        json: Result<Secret, String>,
    },
    /// The GCE metadata server at this host.
    Metadata(String),
    /// Nothing: terraform says "could not find default credentials".
    Nothing,
}

impl Fallback {
    fn source(&self) -> String {
        match self {
            Fallback::Token(_) => "GOOGLE_OAUTH_ACCESS_TOKEN".into(),
            Fallback::Json { from, .. } => from.clone(),
            Fallback::Metadata(host) => format!("the GCE metadata server ({host})"),
            Fallback::Nothing => "no Google credentials found".into(),
        }
    }
}

/// A gcs backend's saved access token, and how to reach the bucket as terraform would.
pub struct GcsToken {
    token: Secret,
    bucket: String,
    prefix: String,
    /// The listing URL, or why there is none.
    list: Result<Url, String>,
    /// `impersonate_service_account`: the token is then spent at IAM, not at the bucket.
    impersonated: bool,
    credentials_saved: bool,
    /// A saved `encryption_key` that `GOOGLE_ENCRYPTION_KEY` does not replace (it stays).
    encryption_key_kept: bool,
    encryption_key_saved: bool,
    proxies: ProxySettings,
    fallback: Fallback,
    timeout: Duration,
    /// One deadline for the whole check, saved token and fallback together (#20).
    deadline: OnceLock<Instant>,
}

impl std::fmt::Debug for GcsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsToken")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("token", &self.token)
            .field("impersonated", &self.impersonated)
            .field("fallback", &self.fallback.source())
            .finish_non_exhaustive()
    }
}

/// `prefix` as terraform uses it: no leading `/`, a trailing one unless empty.
fn normalized_prefix(prefix: &str) -> String {
    let p = prefix.trim_start_matches('/');
    if p.is_empty() || p.ends_with('/') {
        p.to_owned()
    } else {
        format!("{p}/")
    }
}

/// The listing terraform makes, at most one object.
fn list_url(endpoint: &str, bucket: &str, prefix: &str) -> Result<Url, String> {
    let base = Url::parse(endpoint).map_err(|_| "the storage endpoint is not a URL".to_owned())?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err("the storage endpoint is not http or https".into());
    }
    let mut base = base;
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    let mut url = base
        .join(&format!("b/{}/o", urlencode(bucket)))
        .map_err(|_| "the bucket name does not fit in a URL".to_owned())?;
    url.query_pairs_mut()
        .append_pair("prefix", prefix)
        .append_pair("maxResults", "1");
    Ok(url)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `readPathOrContents`: a value that names a file (`~` expanded) is the file's contents, anything
/// else is the contents itself.
fn path_or_contents(value: &str, env: Env) -> Result<String, String> {
    let path = if value.starts_with('~') {
        crate::aws::chain::expand_home(value, &env)
    } else {
        PathBuf::from(value)
    };
    if path.is_file() {
        return std::fs::read_to_string(&path).map_err(|e| format!("cannot read it: {e}"));
    }
    Ok(value.to_owned())
}

/// gcloud's ADC file: `%APPDATA%\gcloud\…` on Windows, `~/.config/gcloud/…` elsewhere.
fn well_known_file(env: Env) -> Option<PathBuf> {
    const FILE: &str = "application_default_credentials.json";
    if cfg!(windows) {
        return env("APPDATA")
            .filter(|v| !v.is_empty())
            .map(|a| Path::new(&a).join("gcloud").join(FILE));
    }
    home_dir(&env).map(|h| h.join(".config").join("gcloud").join(FILE))
}

/// Whether this machine says it is a GCE VM (Google's `metadata.OnGCE` asks the metadata server
/// only then, or when `GCE_METADATA_HOST` names one).
fn on_gce() -> bool {
    std::fs::read_to_string("/sys/class/dmi/id/product_name")
        .is_ok_and(|p| p.trim().starts_with("Google"))
}

/// What terraform falls back to once the saved token (and a saved `credentials`, which the repair
/// removes too) is gone, in its order. `gce` says whether the machine is a GCE VM.
fn fallback_of(env: Env, gce: bool) -> Fallback {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(t) = var("GOOGLE_OAUTH_ACCESS_TOKEN") {
        return Fallback::Token(Secret::new(t));
    }
    for name in ["GOOGLE_BACKEND_CREDENTIALS", "GOOGLE_CREDENTIALS"] {
        if let Some(v) = var(name) {
            return Fallback::Json {
                from: name.into(),
                json: path_or_contents(&v, env).map(Secret::new),
            };
        }
    }
    if let Some(path) = var("GOOGLE_APPLICATION_CREDENTIALS") {
        return Fallback::Json {
            from: "GOOGLE_APPLICATION_CREDENTIALS".into(),
            json: std::fs::read_to_string(&path)
                .map(Secret::new)
                .map_err(|e| format!("cannot read it: {e}")),
        };
    }
    if let Some(file) = well_known_file(env).filter(|f| f.is_file()) {
        return Fallback::Json {
            from: format!("gcloud's default credentials ({})", file.display()),
            json: std::fs::read_to_string(&file)
                .map(Secret::new)
                .map_err(|e| format!("cannot read it: {e}")),
        };
    }
    if let Some(host) = var("GCE_METADATA_HOST") {
        return Fallback::Metadata(host);
    }
    if gce {
        return Fallback::Metadata(METADATA_HOST.into());
    }
    Fallback::Nothing
}

impl GcsToken {
    /// `None` unless the backend is gcs and saved an access token.
    pub fn from_backend(b: &SavedBackend, env: Env, timeout: Duration) -> Option<GcsToken> {
        if b.kind != "gcs" {
            return None;
        }
        let token = Secret::new(b.string("access_token")?);
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let bucket = b.string("bucket").unwrap_or_default().to_owned();
        let prefix = normalized_prefix(b.string("prefix").unwrap_or_default());
        let endpoint = b
            .string("storage_custom_endpoint")
            .map(str::to_owned)
            .or_else(|| var("GOOGLE_BACKEND_STORAGE_CUSTOM_ENDPOINT"))
            .or_else(|| var("GOOGLE_STORAGE_CUSTOM_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let list = if bucket.is_empty() {
            Err("no bucket is saved".to_owned())
        } else {
            list_url(&endpoint, &bucket, &prefix)
        };
        let impersonated = b.string("impersonate_service_account").is_some()
            || var("GOOGLE_BACKEND_IMPERSONATE_SERVICE_ACCOUNT").is_some()
            || var("GOOGLE_IMPERSONATE_SERVICE_ACCOUNT").is_some();
        let encryption_key_saved = b.string("encryption_key").is_some();
        let encryption_key_kept = b
            .string("encryption_key")
            .is_some_and(|k| var("GOOGLE_ENCRYPTION_KEY").as_deref() != Some(k));
        Some(GcsToken {
            token,
            bucket,
            prefix,
            list,
            impersonated,
            credentials_saved: b.string("credentials").is_some(),
            encryption_key_kept,
            encryption_key_saved,
            proxies: ProxySettings::resolve(env, None, None, None),
            fallback: fallback_of(env, on_gce()),
            timeout,
            deadline: OnceLock::new(),
        })
    }

    fn deadline(&self) -> Instant {
        *self.deadline.get_or_init(|| Instant::now() + self.timeout)
    }

    /// One request the way terraform's Go client would send it (proxies from the environment).
    fn call(&self, method: &str, url: &Url, call: &Call) -> Result<(u16, Vec<u8>), String> {
        // Go's proxy rules (`aws::proxy`), `Err` where Go would fail the request.
        let proxy = match self.proxies.proxy_for(url.as_str())? {
            None => None,
            Some(p) => {
                Some(Url::parse(&p).map_err(|_| "the proxy variable is not a URL".to_owned())?)
            }
        };
        let tls = Tls::default();
        client::call(
            &Request {
                method,
                url,
                basic_auth: None,
                tls: &tls,
                proxy: proxy.as_ref(),
                deadline: self.deadline(),
                user_agent: USER_AGENT,
            },
            call,
        )
    }

    /// The listing with `token`: the verdict on it.
    fn list_with(&self, token: &Secret) -> Verdict {
        let url = match &self.list {
            Ok(u) => u,
            Err(why) => return Verdict::unknown(why.clone()),
        };
        let answer = self.call(
            "GET",
            url,
            &Call {
                bearer: Some(token),
                ..Call::default()
            },
        );
        verdict_of(answer.map(|(code, _)| code))
    }

    /// The verdict on a fallback's token: one that lacks permission does not work either.
    fn fallback_verdict(&self, token: &Secret) -> Verdict {
        match self.list_with(token) {
            Verdict::Valid { arn } if arn == FORBIDDEN => Verdict::Rejected {
                code: "HTTP 403".into(),
            },
            v => v,
        }
    }

    /// A token for a JSON credential, as Google's library gets it; `Err` is the verdict.
    fn token_of_json(&self, json: &Secret) -> Result<Secret, Verdict> {
        let v: Value = serde_json::from_str(json.expose()).map_err(|_| {
            Verdict::unknown("the credentials are neither valid JSON nor a file's path")
        })?;
        let field = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        // A key names its token endpoint; a gcloud user credential is refreshed at Google's
        // (Google's Go library reads no `token_uri` from it).
        let mut token_uri = field("token_uri").unwrap_or(DEFAULT_TOKEN_URI);
        let form = match field("type") {
            Some("service_account") => {
                let (Some(email), Some(key)) = (field("client_email"), field("private_key")) else {
                    return Err(Verdict::unknown(
                        "the service-account key lacks client_email or private_key",
                    ));
                };
                let assertion = jwt::assertion(
                    email,
                    field("private_key_id"),
                    &Secret::new(key),
                    token_uri,
                    now(),
                )
                .map_err(Verdict::unknown)?;
                format!(
                    "grant_type={}&assertion={}",
                    urlencode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    urlencode(assertion.expose())
                )
            }
            Some("authorized_user") => {
                let (Some(id), Some(secret), Some(refresh)) = (
                    field("client_id"),
                    field("client_secret"),
                    field("refresh_token"),
                ) else {
                    return Err(Verdict::unknown(
                        "the user credential lacks client_id, client_secret or refresh_token",
                    ));
                };
                token_uri = DEFAULT_TOKEN_URI;
                format!(
                    "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
                    urlencode(id),
                    urlencode(secret),
                    urlencode(refresh)
                )
            }
            Some(other) => {
                return Err(Verdict::unknown(format!(
                    "a credential of type {other}, which tfshim does not check"
                )))
            }
            None => return Err(Verdict::unknown("the credentials name no type")),
        };
        let url = Url::parse(token_uri)
            .map_err(|_| Verdict::unknown("the credential's token_uri is not a URL"))?;
        let form = Secret::new(form);
        let answer = self.call(
            "POST",
            &url,
            &Call {
                form: Some(&form),
                read_body: Some(LONGEST_ANSWER),
                ..Call::default()
            },
        );
        token_answer(answer)
    }

    /// The metadata server's token for the VM's default service account.
    fn token_of_metadata(&self, host: &str) -> Result<Secret, Verdict> {
        let url = Url::parse(&format!(
            "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
        ))
        .map_err(|_| Verdict::unknown("GCE_METADATA_HOST is not a host"))?;
        let answer = self.call(
            "GET",
            &url,
            &Call {
                headers: &[("Metadata-Flavor", "Google")],
                read_body: Some(LONGEST_ANSWER),
                ..Call::default()
            },
        );
        token_answer(answer)
    }
}

/// The `arn` of a [`Verdict::Valid`] for a token that works but may not read the bucket.
const FORBIDDEN: &str = "(HTTP 403: the token lacks permission)";

/// The verdict a listing's answer gives. Pure.
pub fn verdict_of(answer: Result<u16, String>) -> Verdict {
    match answer {
        Ok(401) => Verdict::Rejected {
            code: "HTTP 401".into(),
        },
        Ok(200) => Verdict::Valid { arn: String::new() },
        // Google authenticated the token: it is not stale, whatever it may do.
        Ok(403) => Verdict::Valid {
            arn: FORBIDDEN.into(),
        },
        Ok(code) => Verdict::unknown(format!("HTTP {code}")),
        Err(why) => Verdict::unknown(why),
    }
}

/// A token endpoint's answer: the token, or the verdict on the credential. 400 and 401 are the
/// OAuth errors of a credential that no longer works (`invalid_grant`: a key deleted, a refresh
/// token revoked). Pure.
fn token_answer(answer: Result<(u16, Vec<u8>), String>) -> Result<Secret, Verdict> {
    match answer {
        Ok((200, body)) => serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("access_token")?.as_str().map(Secret::new))
            .ok_or_else(|| Verdict::unknown("the token endpoint's answer holds no token")),
        Ok((code @ (400 | 401), body)) => {
            let error = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_owned));
            Err(match error.as_deref() {
                Some(e @ ("invalid_grant" | "invalid_client" | "unauthorized_client")) => {
                    Verdict::Rejected { code: e.to_owned() }
                }
                _ => Verdict::unknown(format!("HTTP {code} from the token endpoint")),
            })
        }
        Ok((code, _)) => Err(Verdict::unknown(format!(
            "HTTP {code} from the token endpoint"
        ))),
        Err(why) => Err(Verdict::unknown(why)),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Credential for GcsToken {
    fn kind(&self) -> &'static str {
        "gcs"
    }
    fn present(&self) -> bool {
        true
    }
    fn shown(&self) -> String {
        format!("token for gs://{}/{}", self.bucket, self.prefix)
    }
    fn label(&self) -> String {
        format!("access token (gs://{}/{})", self.bucket, self.prefix)
    }
    fn noun(&self) -> &'static str {
        "gcs backend"
    }
    fn judge(&self) -> &'static str {
        "Cloud Storage"
    }
    fn checkable(&self) -> Checkable {
        if self.impersonated {
            return Checkable::No(
                "the token is spent at IAM to impersonate a service account, which tfshim does \
                 not ask"
                    .into(),
            );
        }
        match &self.list {
            Ok(_) => Checkable::Yes,
            Err(why) => Checkable::No(why.clone()),
        }
    }
    fn fallback_checkable(&self) -> bool {
        self.checkable() == Checkable::Yes
    }
    fn check(&self) -> Verdict {
        self.list_with(&self.token)
    }
    fn check_fallback(&self) -> Ambient {
        let source = self.fallback.source();
        let verdict = match &self.fallback {
            Fallback::Nothing => Verdict::Missing,
            Fallback::Token(t) => self.fallback_verdict(t),
            Fallback::Json { json: Err(why), .. } => Verdict::unknown(why.clone()),
            Fallback::Json { json: Ok(json), .. } => match self.token_of_json(json) {
                Ok(t) => self.fallback_verdict(&t),
                Err(v) => v,
            },
            Fallback::Metadata(host) => match self.token_of_metadata(host) {
                Ok(t) => self.fallback_verdict(&t),
                Err(v) => v,
            },
        };
        Ambient { verdict, source }
    }
    fn looked(&self, _env: Env) -> String {
        "GOOGLE_OAUTH_ACCESS_TOKEN, GOOGLE_BACKEND_CREDENTIALS, GOOGLE_CREDENTIALS and Google's \
         default credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's \
         application_default_credentials.json, the GCE metadata server)"
            .into()
    }
    fn advice(&self) -> &'static str {
        "Set GOOGLE_OAUTH_ACCESS_TOKEN to a fresh token (gcloud auth print-access-token), or \
         GOOGLE_CREDENTIALS to a key file, or run gcloud auth application-default login, and run \
         the command again"
    }
    fn be_patient(&mut self) {
        self.timeout = self.timeout.max(PATIENT_TIMEOUT);
        self.deadline = OnceLock::new();
    }
    fn removes(&self, _fallback: Option<&Ambient>) -> Vec<&'static str> {
        let mut out = vec!["access_token"];
        if self.credentials_saved {
            out.push("credentials");
        }
        if self.encryption_key_saved && !self.encryption_key_kept {
            out.push("encryption_key");
        }
        out
    }
    fn still_saved(&self, current: &SavedBackend) -> bool {
        current.kind == "gcs" && current.string("access_token") == Some(self.token.expose())
    }
    fn same_check(&self, other: &dyn Credential) -> bool {
        other.as_any().downcast_ref::<GcsToken>().is_some_and(|o| {
            o.list == self.list
                && o.token == self.token
                && o.impersonated == self.impersonated
                && o.proxies == self.proxies
        })
    }
    fn same_fallback(&self, other: &dyn Credential) -> bool {
        other.as_any().downcast_ref::<GcsToken>().is_some_and(|o| {
            o.list == self.list
                && o.fallback == self.fallback
                && o.impersonated == self.impersonated
                && o.proxies == self.proxies
        })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The JWT a service-account key signs to get a token (RFC 7523, as `golang.org/x/oauth2/jws`).
mod jwt {
    use ring::rand::SystemRandom;
    use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivatePkcs8KeyDer;

    use super::SCOPES;
    use crate::backends::saved::Secret;

    /// `header.claims.signature`, each base64url without padding. `Err` says why there is none,
    /// never a byte of the key.
    pub fn assertion(
        email: &str,
        key_id: Option<&str>,
        pem: &Secret,
        audience: &str,
        now: u64,
    ) -> Result<Secret, String> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.expose().as_bytes())
            .map_err(|_| "the service-account key is not a PKCS#8 PEM private key".to_owned())?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|_| "the service-account key is not an RSA key ring accepts".to_owned())?;
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = key_id {
            header["kid"] = kid.into();
        }
        let claims = serde_json::json!({
            "iss": email,
            "scope": SCOPES,
            "aud": audience,
            "iat": now,
            "exp": now + 3600,
        });
        let signed = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed.as_bytes(),
            &mut signature,
        )
        .map_err(|_| "signing with the service-account key failed".to_owned())?;
        Ok(Secret::new(format!("{signed}.{}", base64url(&signature))))
    }

    /// base64url without padding (RFC 4648 §5), as JWTs are written.
    pub fn base64url(data: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::testing::{env_of, saved};

    const T: Duration = Duration::from_secs(1);

    fn gcs(config: &str, env: &'static [(&'static str, &'static str)]) -> Option<GcsToken> {
        GcsToken::from_backend(&saved("gcs", config, 1), &env_of(env), T)
    }

    #[test]
    fn what_is_checked() {
        let c = gcs(
            r#"{"bucket":"b","prefix":"/team/x","access_token":"ya29.OLD"}"#,
            &[],
        )
        .unwrap();
        assert_eq!(c.checkable(), Checkable::Yes);
        assert_eq!(
            c.list.as_ref().unwrap().as_str(),
            "https://storage.googleapis.com/storage/v1/b/b/o?prefix=team%2Fx%2F&maxResults=1"
        );
        assert_eq!(c.removes(None), ["access_token"]);
        assert!(gcs(r#"{"bucket":"b"}"#, &[]).is_none());
        assert!(gcs(r#"{"bucket":"b","access_token":""}"#, &[]).is_none());
        // The saved endpoint wins over the variables, which win over Google's.
        let c = gcs(
            r#"{"bucket":"b","access_token":"t","storage_custom_endpoint":"http://127.0.0.1:9/storage/v1"}"#,
            &[("GOOGLE_STORAGE_CUSTOM_ENDPOINT", "http://127.0.0.1:8/x/")],
        )
        .unwrap();
        assert_eq!(
            c.list.unwrap().as_str(),
            "http://127.0.0.1:9/storage/v1/b/b/o?prefix=&maxResults=1"
        );
        let c = gcs(
            r#"{"bucket":"b","access_token":"t"}"#,
            &[
                ("GOOGLE_STORAGE_CUSTOM_ENDPOINT", "http://127.0.0.1:8/x/"),
                (
                    "GOOGLE_BACKEND_STORAGE_CUSTOM_ENDPOINT",
                    "http://127.0.0.1:7/y/",
                ),
            ],
        )
        .unwrap();
        assert!(c
            .list
            .unwrap()
            .as_str()
            .starts_with("http://127.0.0.1:7/y/b/b/o?"));
        // Impersonation spends the token at IAM: not checked.
        let c = gcs(
            r#"{"bucket":"b","access_token":"t","impersonate_service_account":"sa@p.iam.gserviceaccount.com"}"#,
            &[],
        )
        .unwrap();
        assert!(matches!(c.checkable(), Checkable::No(_)));
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            verdict_of(Ok(401)),
            Verdict::Rejected {
                code: "HTTP 401".into()
            }
        );
        assert_eq!(verdict_of(Ok(200)), Verdict::Valid { arn: String::new() });
        // 403: the token works; not stale.
        assert!(matches!(verdict_of(Ok(403)), Verdict::Valid { .. }));
        for none in [404, 500, 502, 503, 302, 429] {
            assert!(
                matches!(verdict_of(Ok(none)), Verdict::Unknown { .. }),
                "{none}"
            );
        }
        assert_eq!(
            verdict_of(Err("timeout".into())),
            Verdict::unknown("timeout")
        );
    }

    #[test]
    fn token_answers() {
        let ok = token_answer(Ok((
            200,
            br#"{"access_token":"ya29.N","expires_in":3599}"#.to_vec(),
        )));
        assert_eq!(ok.unwrap().expose(), "ya29.N");
        let gone = token_answer(Ok((400, br#"{"error":"invalid_grant"}"#.to_vec())));
        assert_eq!(
            gone.unwrap_err(),
            Verdict::Rejected {
                code: "invalid_grant".into()
            }
        );
        for unknown in [
            Ok((400, b"{}".to_vec())),
            Ok((500, Vec::new())),
            Ok((200, b"<html>".to_vec())),
            Err("timeout".to_owned()),
        ] {
            assert!(matches!(
                token_answer(unknown),
                Err(Verdict::Unknown { .. })
            ));
        }
    }

    fn owned_env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn terraforms_fallback_order() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.json");
        std::fs::write(&key, r#"{"type":"service_account"}"#).unwrap();
        let key_path = &key.display().to_string();
        let home = &dir.path().display().to_string();
        let of = |env: &[(&str, &str)], gce| fallback_of(&owned_env(env), gce).source();
        // A token in the environment wins over everything, a valid key file included.
        assert_eq!(
            of(
                &[
                    ("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.ENV"),
                    ("GOOGLE_CREDENTIALS", key_path)
                ],
                true
            ),
            "GOOGLE_OAUTH_ACCESS_TOKEN"
        );
        assert_eq!(
            of(
                &[
                    ("GOOGLE_CREDENTIALS", key_path),
                    ("GOOGLE_BACKEND_CREDENTIALS", "{}"),
                ],
                false
            ),
            "GOOGLE_BACKEND_CREDENTIALS"
        );
        assert_eq!(
            of(
                &[
                    ("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent"),
                    ("GOOGLE_CREDENTIALS", key_path),
                ],
                false
            ),
            "GOOGLE_CREDENTIALS"
        );
        // GOOGLE_CREDENTIALS: a path is read, anything else is the JSON itself.
        match fallback_of(&owned_env(&[("GOOGLE_CREDENTIALS", key_path)]), false) {
            Fallback::Json { json: Ok(j), .. } => assert!(j.expose().contains("service_account")),
            _ => panic!("not read"),
        }
        match fallback_of(
            &env_of(&[("GOOGLE_CREDENTIALS", "{\"type\":\"x\"}")]),
            false,
        ) {
            Fallback::Json { json: Ok(j), .. } => assert_eq!(j.expose(), "{\"type\":\"x\"}"),
            _ => panic!("not taken as contents"),
        }
        // An unreadable GOOGLE_APPLICATION_CREDENTIALS is not skipped: terraform fails on it.
        assert!(matches!(
            fallback_of(
                &env_of(&[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent")]),
                false
            ),
            Fallback::Json { json: Err(_), .. }
        ));
        // Empty values are unset.
        assert!(
            of(&[("GOOGLE_OAUTH_ACCESS_TOKEN", ""), ("HOME", home)], false)
                == "no Google credentials found"
        );
        // gcloud's file under HOME, then the metadata server.
        let gcloud = dir.path().join(".config/gcloud");
        std::fs::create_dir_all(&gcloud).unwrap();
        assert_eq!(
            of(&[("HOME", home)], true),
            "the GCE metadata server (169.254.169.254)"
        );
        assert_eq!(
            of(
                &[("HOME", home), ("GCE_METADATA_HOST", "127.0.0.1:1")],
                false
            ),
            "the GCE metadata server (127.0.0.1:1)"
        );
        std::fs::write(gcloud.join("application_default_credentials.json"), "{}").unwrap();
        if cfg!(unix) {
            assert!(of(&[("HOME", home)], true).starts_with("gcloud's default credentials"));
        }
    }

    #[test]
    fn what_the_repair_removes() {
        let c = gcs(
            r#"{"bucket":"b","access_token":"t","credentials":"{\"type\":\"service_account\"}"}"#,
            &[],
        )
        .unwrap();
        assert_eq!(c.removes(None), ["access_token", "credentials"]);
        // An encryption key goes only where its variable holds the same key; else it stays, and
        // the shared repair refuses to write it.
        let c = gcs(
            r#"{"bucket":"b","access_token":"t","encryption_key":"K"}"#,
            &[("GOOGLE_ENCRYPTION_KEY", "K")],
        )
        .unwrap();
        assert_eq!(c.removes(None), ["access_token", "encryption_key"]);
        let c = gcs(
            r#"{"bucket":"b","access_token":"t","encryption_key":"K"}"#,
            &[],
        )
        .unwrap();
        assert_eq!(c.removes(None), ["access_token"]);
    }

    // Unix only: the test key comes from `openssl`, which the Windows tests (under Wine) do not
    // have; the signing is ring's on every platform.
    #[cfg(unix)]
    #[test]
    fn a_jwt_verifies_with_the_keys_public_half() {
        use ring::signature::{KeyPair, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
        // A 2048-bit test key, made by `openssl genpkey -algorithm RSA` for this test only.
        let pem = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output();
        let Some(out) = pem.ok().filter(|o| o.status.success()) else {
            panic!("openssl is needed to make a test key");
        };
        let pem = String::from_utf8(out.stdout).unwrap();
        let jwt = jwt::assertion(
            "sa@p.iam.gserviceaccount.com",
            Some("kid1"),
            &Secret::new(pem.clone()),
            "http://127.0.0.1:1/token",
            1000,
        )
        .unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let der = {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap()
        };
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
        let public = UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            key.public_key().as_ref().to_vec(),
        );
        let sig = unbase64url(parts[2]);
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        let claims: Value = serde_json::from_slice(&unbase64url(parts[1])).unwrap();
        assert_eq!(claims["iss"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "http://127.0.0.1:1/token");
        assert_eq!(claims["exp"], 4600);
        let header: Value = serde_json::from_slice(&unbase64url(parts[0])).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "kid1");
        assert!(jwt::assertion("e", None, &Secret::new("not a key"), "a", 0).is_err());
    }

    #[cfg(unix)] // for the test above only
    fn unbase64url(s: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            _ => 63,
        } as u32;
        let mut out = Vec::new();
        for chunk in s.as_bytes().chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0, |n, (i, c)| n | value(*c) << (18 - 6 * i));
            for i in 0..chunk.len() - 1 {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }

    #[test]
    fn base64url_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("\u{fb}\u{ff}", "w7vDvw"),
        ] {
            assert_eq!(jwt::base64url(input.as_bytes()), want);
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let c = gcs(
            r#"{"bucket":"b","access_token":"ya29.secret"}"#,
            &[("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.envsecret")],
        )
        .unwrap();
        let shown = format!("{c:?} {} {}", c.shown(), c.label());
        assert!(!shown.contains("secret"), "{shown}");
    }
}
