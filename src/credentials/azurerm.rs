//! The azurerm backend behind [`Credential`] (issue #24): a storage account key that was rotated, or
//! a SAS token that expired, saved by `init -backend-config=access_key=…` (or `sas_token=…`).
//!
//! Facts this module relies on (terraform 1.11 `internal/backend/remote-state/azure`, measured with
//! 1.11.4 against a storage emulator, `FACTS.md` "azurerm"):
//! - `access_key` defaults to `ARM_ACCESS_KEY`, `sas_token` to `ARM_SAS_TOKEN` (only when null); a key
//!   beats any SAS, so a saved SAS is not what terraform uses while `ARM_ACCESS_KEY` is set;
//! - once both are gone terraform tries, in order, `ARM_ACCESS_KEY`, `ARM_SAS_TOKEN`,
//!   `use_azuread_auth` (`ARM_USE_AZUREAD`), then the account's keys listed through the management
//!   API (`resource_group_name` with a service principal or a CLI login). The last two need Azure AD:
//!   tfshim gives no verdict on them rather than guess;
//! - the blob endpoint is `https://{account}.blob.{storage suffix}`, the suffix from `environment`
//!   (`public`, `usgovernment`, `china`) or, with `metadata_host` (`ARM_METADATA_HOSTNAME`), from
//!   `https://{metadata_host}/metadata/endpoints` (Azure Stack, sovereign clouds);
//! - a rejected key or SAS is `403` with the error code `AuthenticationFailed`; other 403s
//!   (`AuthorizationFailure`: a firewall; `AuthorizationPermissionMismatch`: RBAC) say nothing about
//!   the credential.
//!
//! The check is one `GET` of the first byte of the state blob (`x-ms-range: bytes=0-0`), signed with
//! SharedKey (HMAC-SHA256 over Azure's canonical string) or with the SAS appended: the same
//! permission terraform's read needs, and at most a byte of state read. 200/206/404/416 → valid
//! (the service authenticated the request before looking at the blob); 403 `AuthenticationFailed`
//! → rejected; anything else → no verdict. The error code is read from the (small, bounded) error
//! body, which carries the same code as the `x-ms-error-code` header.

use std::any::Any;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use url::Url;

use crate::aws::proxy::ProxySettings;
use crate::aws::sts::Ambient;
use crate::aws::verdict::Verdict;
use crate::backends::saved::{SavedBackend, Secret};
use crate::credentials::{Checkable, Credential, Env};
use crate::net::client::{self, Call, Request, Tls};

/// The saved attributes that hold credentials (a credential-only `init` may change them; the repair
/// removes them).
pub const CREDENTIAL_ATTRS: &[&str] = &["access_key", "sas_token"];

/// The timeout of checks made after terraform itself has reached the service.
const PATIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The storage REST version tfshim signs for (one every emulator and cloud accepts).
const API_VERSION: &str = "2020-10-02";

/// At most this much of an answer is read (an error document, a metadata list).
const BODY_LIMIT: usize = 64 * 1024;

/// A storage credential as terraform sends it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StorageCred {
    /// A storage account key (base64), signed with SharedKey.
    Key(Secret),
    /// A SAS token, appended to the URL.
    Sas(Secret),
}

impl StorageCred {
    fn what(&self) -> &'static str {
        match self {
            StorageCred::Key(_) => "access key",
            StorageCred::Sas(_) => "SAS token",
        }
    }
}

/// An azurerm backend's saved key or SAS, and how to reach its blob as terraform would.
pub struct AzureKey {
    account: String,
    container: String,
    blob: String,
    saved: StorageCred,
    environment: String,
    metadata_host: Option<String>,
    /// Whether terraform would fall back to Azure AD or the management API once the saved
    /// credential is gone (checked only if no variable comes first).
    azuread: bool,
    resource_group: bool,
    env_key: Option<Secret>,
    env_sas: Option<Secret>,
    proxy: ProxySettings,
    timeout: Duration,
    /// One budget for every request of a check (the metadata, the verdict, the fallback's).
    deadline: OnceLock<Instant>,
    /// The blob endpoint, found once (the metadata endpoint is asked at most once).
    endpoint: OnceLock<Result<Url, String>>,
}

impl std::fmt::Debug for AzureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKey")
            .field("account", &self.account)
            .field("container", &self.container)
            .field("blob", &self.blob)
            .field("saved", &self.saved)
            .field("environment", &self.environment)
            .field("metadata_host", &self.metadata_host)
            .finish_non_exhaustive()
    }
}

/// The storage suffix of a built-in environment (terraform's `environment` names).
pub fn builtin_suffix(environment: &str) -> Option<&'static str> {
    match environment.to_ascii_lowercase().as_str() {
        "public" | "" => Some("core.windows.net"),
        "usgovernment" => Some("core.usgovcloudapi.net"),
        "china" => Some("core.chinacloudapi.cn"),
        _ => None,
    }
}

/// The name a metadata document gives a built-in environment.
fn metadata_name(environment: &str) -> &str {
    match environment.to_ascii_lowercase().as_str() {
        "public" | "" => "AzureCloud",
        "usgovernment" => "AzureUSGovernment",
        "china" => "AzureChinaCloud",
        _ => environment,
    }
}

/// The storage suffix in a metadata document (`/metadata/endpoints?api-version=2022-09-01`: a list
/// of clouds, each with `name` and `suffixes.storage`): the cloud named like `environment`, else
/// the only one. Pure.
pub fn suffix_from_metadata(body: &[u8], environment: &str) -> Result<String, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the metadata answer is not JSON".to_owned())?;
    let clouds = match &doc {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Object(_) => vec![doc.clone()],
        _ => return Err("the metadata answer lists no cloud".into()),
    };
    let want = metadata_name(environment);
    let named = clouds.iter().find(|c| {
        c.get("name")
            .and_then(|n| n.as_str())
            .is_some_and(|n| n.eq_ignore_ascii_case(want) || n.eq_ignore_ascii_case(environment))
    });
    let cloud = match (named, clouds.len()) {
        (Some(c), _) => c,
        (None, 1) => &clouds[0],
        _ => return Err(format!("the metadata answer has no cloud named {want}")),
    };
    cloud
        .get("suffixes")
        .and_then(|s| s.get("storage"))
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_start_matches('.').to_owned())
        .ok_or_else(|| "the metadata answer has no storage suffix".to_owned())
}

/// The blob's URL: `https://{account}.blob.{suffix}/{container}/{blob}`. Pure.
pub fn blob_url(account: &str, suffix: &str, container: &str, blob: &str) -> Result<Url, String> {
    let mut url = Url::parse(&format!("https://{account}.blob.{suffix}/"))
        .map_err(|_| "the storage account name makes no valid address".to_owned())?;
    url.path_segments_mut()
        .map_err(|_| "the blob endpoint is not a URL".to_owned())?
        .push(container)
        .extend(blob.split('/'));
    Ok(url)
}

/// Azure's SharedKey string to sign for a `GET` without body or standard conditional headers
/// (`ms_headers` are the `x-ms-*` headers sent). Pure.
pub fn string_to_sign(account: &str, url: &Url, ms_headers: &[(&str, &str)]) -> String {
    let mut headers: Vec<(String, String)> = ms_headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.sort();
    let mut out = String::from("GET\n");
    // Content-Encoding, -Language, -Length, -MD5, -Type, Date, If-Modified-Since, If-Match,
    // If-None-Match, If-Unmodified-Since, Range: none sent.
    out.push_str(&"\n".repeat(11));
    for (n, v) in &headers {
        out.push_str(&format!("{n}:{v}\n"));
    }
    out.push_str(&format!("/{account}{}", url.path()));
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect();
    query.sort();
    for (k, v) in query {
        out.push_str(&format!("\n{k}:{v}"));
    }
    out
}

/// `SharedKey account:signature` for `to_sign` with the base64 account `key`. Pure.
pub fn shared_key(account: &str, key: &Secret, to_sign: &str) -> Result<String, String> {
    let raw = base64_decode(key.expose().trim())
        .ok_or_else(|| "the access key is not base64".to_owned())?;
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw);
    let sig = ring::hmac::sign(&k, to_sign.as_bytes());
    Ok(format!(
        "SharedKey {account}:{}",
        base64_encode(sig.as_ref())
    ))
}

/// The verdict an answer gives: its status and the error code of its body. Pure.
pub fn verdict_of(answer: Result<(u16, Vec<u8>), String>) -> Verdict {
    match answer {
        Ok((403, body)) => match error_code(&body).as_deref() {
            Some("AuthenticationFailed") => Verdict::Rejected {
                code: "AuthenticationFailed".into(),
            },
            Some(code) => Verdict::unknown(format!("HTTP 403 {code}")),
            None => Verdict::unknown("HTTP 403"),
        },
        // The service authenticated the request before it looked at the blob or the range.
        Ok((200 | 206 | 404 | 416, _)) => Verdict::Valid { arn: String::new() },
        Ok((code, _)) => Verdict::unknown(format!("HTTP {code}")),
        Err(why) => Verdict::unknown(why),
    }
}

/// `<Code>…</Code>` of an Azure storage error document.
fn error_code(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    let code = text[start..end].trim();
    (!code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric())).then(|| code.to_owned())
}

/// The `se=` (expiry) of a SAS token, as written (`2026-12-01T00:00:00Z`): shown, never a verdict.
fn sas_expiry(sas: &str) -> Option<String> {
    sas.trim_start_matches('?')
        .split('&')
        .find_map(|p| p.strip_prefix("se="))
        .map(|v| v.replace("%3A", ":").replace("%3a", ":"))
        .filter(|v| {
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-:.".contains(c))
        })
}

/// RFC 1123 date in GMT for `x-ms-date`. Pure.
pub fn http_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (!out.is_empty()).then_some(out)
}

impl AzureKey {
    /// `None` unless the backend is azurerm and terraform would send a saved `access_key` or
    /// `sas_token` (a saved SAS is unused while `ARM_ACCESS_KEY` is set).
    pub fn from_backend(b: &SavedBackend, env: Env, timeout: Duration) -> Option<AzureKey> {
        if b.kind != "azurerm" {
            return None;
        }
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let saved = match (b.string("access_key"), b.string("sas_token")) {
            (Some(k), _) => StorageCred::Key(Secret::new(k)),
            (None, Some(s))
                if b.value("access_key").is_some() || var("ARM_ACCESS_KEY").is_none() =>
            {
                StorageCred::Sas(Secret::new(s))
            }
            _ => return None,
        };
        let attr = |name: &str, var_name: &str| {
            b.string(name).map(str::to_owned).or_else(|| var(var_name))
        };
        let azuread = b
            .bool_attr("use_azuread_auth")
            .unwrap_or_else(|| var("ARM_USE_AZUREAD").is_some_and(|v| v == "true"));
        Some(AzureKey {
            account: b
                .string("storage_account_name")
                .unwrap_or_default()
                .to_owned(),
            container: b.string("container_name").unwrap_or_default().to_owned(),
            blob: b.string("key").unwrap_or_default().to_owned(),
            saved,
            environment: attr("environment", "ARM_ENVIRONMENT").unwrap_or_else(|| "public".into()),
            metadata_host: attr("metadata_host", "ARM_METADATA_HOSTNAME"),
            azuread,
            resource_group: b.string("resource_group_name").is_some(),
            env_key: var("ARM_ACCESS_KEY").map(Secret::new),
            env_sas: var("ARM_SAS_TOKEN").map(Secret::new),
            proxy: ProxySettings::resolve(env, None, None, None),
            timeout,
            deadline: OnceLock::new(),
            endpoint: OnceLock::new(),
        })
    }

    fn deadline(&self) -> Instant {
        *self.deadline.get_or_init(|| Instant::now() + self.timeout)
    }

    /// Why the saved attributes name no blob, if they do not.
    fn incomplete(&self) -> Option<String> {
        [
            ("storage_account_name", &self.account),
            ("container_name", &self.container),
            ("key", &self.blob),
        ]
        .iter()
        .find(|(_, v)| v.is_empty())
        .map(|(n, _)| format!("no {n} is saved"))
    }

    /// The proxy Go would use for `url`.
    fn proxy_for(&self, url: &Url) -> Result<Option<Url>, String> {
        self.proxy.proxy_for(url.as_str()).and_then(|p| match p {
            None => Ok(None),
            Some(p) => Url::parse(&p)
                .map(Some)
                .map_err(|_| "the proxy variable is not a URL".to_owned()),
        })
    }

    /// One `GET` under this check's deadline.
    fn get(&self, url: &Url, headers: &[(&'static str, &str)]) -> Result<(u16, Vec<u8>), String> {
        let proxy = self.proxy_for(url)?;
        let tls = Tls::default();
        let request = Request {
            method: "GET",
            url,
            basic_auth: None,
            tls: &tls,
            proxy: proxy.as_ref(),
            deadline: self.deadline(),
            user_agent: concat!("tfshim/", env!("CARGO_PKG_VERSION")),
        };
        client::call(
            &request,
            &Call {
                headers,
                read_body: Some(BODY_LIMIT),
                ..Call::default()
            },
        )
    }

    /// The blob's URL as terraform computes it (asking the metadata endpoint once, if one is set).
    fn blob_endpoint(&self) -> Result<Url, String> {
        self.endpoint
            .get_or_init(|| {
                if let Some(why) = self.incomplete() {
                    return Err(why);
                }
                let suffix = match &self.metadata_host {
                    Some(host) => {
                        let url = Url::parse(&format!(
                            "https://{host}/metadata/endpoints?api-version=2022-09-01"
                        ))
                        .map_err(|_| "metadata_host makes no valid address".to_owned())?;
                        match self.get(&url, &[])? {
                            (200, body) => suffix_from_metadata(&body, &self.environment)?,
                            (code, _) => {
                                return Err(format!("the metadata endpoint answered HTTP {code}"))
                            }
                        }
                    }
                    None => builtin_suffix(&self.environment)
                        .ok_or_else(|| format!("unknown environment {}", self.environment))?
                        .to_owned(),
                };
                blob_url(&self.account, &suffix, &self.container, &self.blob)
            })
            .clone()
    }

    /// One request with `cred`; the verdict.
    fn ask(&self, cred: &StorageCred) -> Verdict {
        let mut url = match self.blob_endpoint() {
            Ok(u) => u,
            Err(why) => return Verdict::unknown(why),
        };
        let date = http_date(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        let ms: [(&'static str, &str); 3] = [
            ("x-ms-date", &date),
            ("x-ms-range", "bytes=0-0"),
            ("x-ms-version", API_VERSION),
        ];
        let answer = match cred {
            StorageCred::Key(key) => {
                let auth = match shared_key(
                    &self.account,
                    key,
                    &string_to_sign(&self.account, &url, &ms),
                ) {
                    Ok(a) => a,
                    Err(why) => return Verdict::unknown(why),
                };
                let headers = [ms[0], ms[1], ms[2], ("Authorization", auth.as_str())];
                self.get(&url, &headers)
            }
            StorageCred::Sas(sas) => {
                url.set_query(Some(sas.expose().trim().trim_start_matches('?')));
                self.get(&url, &ms)
            }
        };
        verdict_of(answer)
    }
}

impl Credential for AzureKey {
    fn kind(&self) -> &'static str {
        "azurerm"
    }
    fn present(&self) -> bool {
        true
    }
    fn shown(&self) -> String {
        match &self.saved {
            StorageCred::Key(_) => format!("account {}", self.account),
            StorageCred::Sas(s) => match sas_expiry(s.expose()) {
                Some(se) => format!("account {}, SAS expiring {se}", self.account),
                None => format!("account {}, SAS", self.account),
            },
        }
    }
    fn label(&self) -> String {
        format!("{} (storage account {})", self.saved.what(), self.account)
    }
    fn noun(&self) -> &'static str {
        "azurerm backend"
    }
    fn judge(&self) -> &'static str {
        "Azure Storage"
    }
    fn checkable(&self) -> Checkable {
        if let Some(why) = self.incomplete() {
            return Checkable::No(why);
        }
        if self.metadata_host.is_none() && builtin_suffix(&self.environment).is_none() {
            return Checkable::No(format!("unknown environment {}", self.environment));
        }
        Checkable::Yes
    }
    fn fallback_checkable(&self) -> bool {
        self.checkable() == Checkable::Yes
    }
    fn check(&self) -> Verdict {
        self.ask(&self.saved)
    }
    fn check_fallback(&self) -> Ambient {
        if let Some(key) = &self.env_key {
            return Ambient {
                verdict: self.ask(&StorageCred::Key(key.clone())),
                source: "ARM_ACCESS_KEY".into(),
            };
        }
        if let Some(sas) = &self.env_sas {
            return Ambient {
                verdict: self.ask(&StorageCred::Sas(sas.clone())),
                source: "ARM_SAS_TOKEN".into(),
            };
        }
        if self.azuread {
            return Ambient {
                verdict: Verdict::unknown("Azure AD (use_azuread_auth), which tfshim cannot check"),
                source: "use_azuread_auth".into(),
            };
        }
        if self.resource_group {
            return Ambient {
                verdict: Verdict::unknown(
                    "the account's keys through the management API, which tfshim cannot check",
                ),
                source: "resource_group_name (management API)".into(),
            };
        }
        Ambient {
            verdict: Verdict::Missing,
            source: "ARM_ACCESS_KEY, ARM_SAS_TOKEN (not set)".into(),
        }
    }
    fn looked(&self, _env: Env) -> String {
        "ARM_ACCESS_KEY, ARM_SAS_TOKEN, use_azuread_auth and resource_group_name".into()
    }
    fn advice(&self) -> &'static str {
        "Set ARM_ACCESS_KEY to a current storage account key (or ARM_SAS_TOKEN to a valid SAS) and \
         run the command again"
    }
    fn be_patient(&mut self) {
        self.timeout = self.timeout.max(PATIENT_TIMEOUT);
        self.deadline = OnceLock::new();
    }
    fn removes(&self, _fallback: Option<&Ambient>) -> Vec<&'static str> {
        CREDENTIAL_ATTRS.to_vec()
    }
    fn still_saved(&self, current: &SavedBackend) -> bool {
        if current.kind != "azurerm" {
            return false;
        }
        match &self.saved {
            StorageCred::Key(k) => current.string("access_key") == Some(k.expose()),
            StorageCred::Sas(s) => {
                current.string("access_key").is_none()
                    && current.string("sas_token") == Some(s.expose())
            }
        }
    }
    fn same_check(&self, other: &dyn Credential) -> bool {
        other
            .as_any()
            .downcast_ref::<AzureKey>()
            .is_some_and(|o| o.saved == self.saved && self.same_target(o))
    }
    fn same_fallback(&self, other: &dyn Credential) -> bool {
        other.as_any().downcast_ref::<AzureKey>().is_some_and(|o| {
            self.same_target(o)
                && o.env_key == self.env_key
                && o.env_sas == self.env_sas
                && o.azuread == self.azuread
                && o.resource_group == self.resource_group
        })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl AzureKey {
    fn same_target(&self, o: &AzureKey) -> bool {
        o.account == self.account
            && o.container == self.container
            && o.blob == self.blob
            && o.environment == self.environment
            && o.metadata_host == self.metadata_host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::testing::{env_of, saved};

    const T: Duration = Duration::from_secs(1);
    const CFG: &str = r#"{"storage_account_name":"tfstate","container_name":"c","key":"prod/terraform.tfstate","access_key":"a2V5","sas_token":null}"#;

    fn az(config: &str, env: &'static [(&'static str, &'static str)]) -> Option<AzureKey> {
        AzureKey::from_backend(&saved("azurerm", config, 1), &env_of(env), T)
    }

    #[test]
    fn what_is_checked_and_removed() {
        let c = az(CFG, &[]).unwrap();
        assert_eq!(c.saved, StorageCred::Key(Secret::new("a2V5")));
        assert_eq!(c.checkable(), Checkable::Yes);
        assert_eq!(c.label(), "access key (storage account tfstate)");
        assert_eq!(c.removes(None), ["access_key", "sas_token"]);
        assert!(!format!("{c:?}").contains("a2V5"));
        // A saved SAS, used only while no ARM_ACCESS_KEY beats it.
        let sas = r#"{"storage_account_name":"a","container_name":"c","key":"k","sas_token":"?sv=1&se=2026-01-01T00%3A00%3A00Z&sig=x"}"#;
        let c = az(sas, &[]).unwrap();
        assert_eq!(c.shown(), "account a, SAS expiring 2026-01-01T00:00:00Z");
        assert!(az(sas, &[("ARM_ACCESS_KEY", "k")]).is_none());
        // Nothing saved, another backend.
        assert!(az(r#"{"storage_account_name":"a"}"#, &[]).is_none());
        assert!(AzureKey::from_backend(&saved("s3", CFG, 1), &env_of(&[]), T).is_none());
        // An environment tfshim does not know, without metadata_host: no check.
        let c = az(
            r#"{"storage_account_name":"a","container_name":"c","key":"k","access_key":"x","environment":"stack"}"#,
            &[],
        )
        .unwrap();
        assert!(matches!(c.checkable(), Checkable::No(_)));
        let c = az(r#"{"access_key":"x","container_name":"c","key":"k"}"#, &[]).unwrap();
        assert!(matches!(c.checkable(), Checkable::No(_)));
    }

    #[test]
    fn fallback_in_terraforms_order() {
        let src = |env| az(CFG, env).unwrap().check_fallback();
        // No variable: Azure AD and the management API are not guessed at.
        let none = src(&[]);
        assert_eq!(none.verdict, Verdict::Missing);
        let c = az(
            r#"{"storage_account_name":"a","container_name":"c","key":"k","access_key":"x","use_azuread_auth":true,"resource_group_name":"rg"}"#,
            &[],
        )
        .unwrap();
        let a = c.check_fallback();
        assert_eq!(a.source, "use_azuread_auth");
        assert!(matches!(a.verdict, Verdict::Unknown { .. }));
        let c = az(
            r#"{"storage_account_name":"a","container_name":"c","key":"k","access_key":"x","resource_group_name":"rg"}"#,
            &[],
        )
        .unwrap();
        assert!(matches!(
            c.check_fallback().verdict,
            Verdict::Unknown { .. }
        ));
        let c = az(CFG, &[("ARM_ACCESS_KEY", "n"), ("ARM_SAS_TOKEN", "s")]).unwrap();
        assert!(c.env_key.is_some() && c.env_sas.is_some());
        assert_eq!(
            c.looked(&env_of(&[])).split(',').next(),
            Some("ARM_ACCESS_KEY")
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(builtin_suffix("public"), Some("core.windows.net"));
        assert_eq!(builtin_suffix("China"), Some("core.chinacloudapi.cn"));
        assert_eq!(builtin_suffix("stack"), None);
        let url = blob_url("acct", "core.windows.net", "tfstate", "env/prod state").unwrap();
        assert_eq!(
            url.as_str(),
            "https://acct.blob.core.windows.net/tfstate/env/prod%20state"
        );
        let doc = br#"[{"name":"AzureCloud","suffixes":{"storage":"core.windows.net"}},{"name":"Stack","suffixes":{"storage":"local.azurestack.external"}}]"#;
        assert_eq!(
            suffix_from_metadata(doc, "public").unwrap(),
            "core.windows.net"
        );
        assert_eq!(
            suffix_from_metadata(doc, "stack").unwrap(),
            "local.azurestack.external"
        );
        assert!(suffix_from_metadata(doc, "china").is_err());
        let one = br#"[{"name":"X","suffixes":{"storage":"emulator.test"}}]"#;
        assert_eq!(
            suffix_from_metadata(one, "public").unwrap(),
            "emulator.test"
        );
        assert!(suffix_from_metadata(b"nope", "public").is_err());
    }

    #[test]
    fn shared_key_signature() {
        // Azure's documented layout; the signature checked against an independent HMAC (openssl).
        let url = Url::parse(
            "https://myaccount.blob.core.windows.net/mycontainer/a%20b?comp=list&Restype=container",
        )
        .unwrap();
        let s = string_to_sign(
            "myaccount",
            &url,
            &[
                ("x-ms-version", "2020-10-02"),
                ("x-ms-date", "Tue, 08 Dec 2026 02:00:00 GMT"),
            ],
        );
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Tue, 08 Dec 2026 02:00:00 GMT\nx-ms-version:2020-10-02\n/myaccount/mycontainer/a%20b\ncomp:list\nrestype:container"
        );
        let key = Secret::new(base64_encode(b"secret-key-bytes"));
        let a = shared_key("myaccount", &key, "abc").unwrap();
        assert_eq!(
            a,
            "SharedKey myaccount:pR7yQn1wuk66wYQQ1baCzx+qoUkgaP/DbtfNZNNGu78="
        );
        assert!(shared_key("a", &Secret::new("***"), "x").is_err());
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_796_695_200), "Tue, 08 Dec 2026 02:00:00 GMT");
    }

    #[test]
    fn verdicts() {
        let err = |code: &str| {
            format!("\u{feff}<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
                .into_bytes()
        };
        assert_eq!(
            verdict_of(Ok((403, err("AuthenticationFailed")))),
            Verdict::Rejected {
                code: "AuthenticationFailed".into()
            }
        );
        for code in ["AuthorizationFailure", "AuthorizationPermissionMismatch"] {
            assert!(matches!(
                verdict_of(Ok((403, err(code)))),
                Verdict::Unknown { .. }
            ));
        }
        assert!(matches!(
            verdict_of(Ok((403, vec![]))),
            Verdict::Unknown { .. }
        ));
        for code in [200, 206, 404, 416] {
            assert!(matches!(
                verdict_of(Ok((code, vec![]))),
                Verdict::Valid { .. }
            ));
        }
        assert!(matches!(
            verdict_of(Ok((503, vec![]))),
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            verdict_of(Err("timeout".into())),
            Verdict::Unknown { .. }
        ));
    }
}
