//! The saved backend: `<data dir>/terraform.tfstate`, where `terraform init` records the backend type,
//! its merged configuration (the `.tf` block plus every `-backend-config` value, secrets included, in
//! plain text) and the hash of the `.tf` block.
//!
//! The file's shape has been stable since 0.12 (`{"version":3, …, "backend":{"type","config","hash"}}`),
//! but the attribute set differs per version (docs/terraform-backend.md), so `config` is kept as a loose JSON map and
//! only the attributes tfshim needs are interpreted. Secrets read from it live in [`Secret`], whose
//! `Debug`/`Display` never show the value.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The file name terraform uses inside the data dir.
pub const SAVED_FILE: &str = "terraform.tfstate";
/// The data dir terraform uses when `TF_DATA_DIR` is not set.
pub const DEFAULT_DATA_DIR: &str = ".terraform";

/// `<work_dir>/<TF_DATA_DIR or .terraform>`: terraform applies `TF_DATA_DIR` after `-chdir`, so a
/// relative value is relative to the directory terraform runs in; an absolute one stands alone; an
/// empty one counts as unset.
pub fn data_dir(work_dir: &Path, tf_data_dir: Option<&OsStr>) -> PathBuf {
    let data = match tf_data_dir {
        Some(d) if !d.is_empty() => Path::new(d),
        _ => Path::new(DEFAULT_DATA_DIR),
    };
    work_dir.join(data)
}
/// A saved backend is a few KiB; anything far larger is not one, and is not read into memory whole.
const MAX_SIZE: u64 = 4 * 1024 * 1024;

/// A secret string. Its `Debug` and `Display` are redacted; the value is reachable only through
/// [`Secret::expose`], which is called where the secret is handed to the AWS SDK and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An access key id. Not a secret by AWS's definition, but tfshim shows at most its first and last four
/// characters (`AKIA…QXGR`), in `Debug` too.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyId(Secret);

impl AccessKeyId {
    pub fn new(value: impl Into<String>) -> AccessKeyId {
        AccessKeyId(Secret::new(value))
    }
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
    /// `AKIA…QXGR`; shorter ids show less, so that at least half of the id stays hidden.
    pub fn redacted(&self) -> String {
        redact_key(self.expose())
    }
}

/// Shows at most the first four and the last four characters of a key id, and only if that hides at
/// least as many characters as it shows.
pub fn redact_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    let tail = |k: usize| chars[n - k..].iter().collect::<String>();
    match n {
        16.. => format!("{}…{}", chars[..4].iter().collect::<String>(), tail(4)),
        8..=15 => format!("…{}", tail(4)),
        _ => "…".to_owned(),
    }
}

impl fmt::Debug for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessKeyId({})", self.redacted())
    }
}

impl fmt::Display for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Static credentials saved in the backend configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key: AccessKeyId,
    pub secret_key: Secret,
    pub token: Option<Secret>,
}

/// The saved backend, as read from disk.
#[derive(Clone)]
pub struct SavedBackend {
    pub path: PathBuf,
    /// The file's exact bytes, to compare with and to restore byte-for-byte.
    pub raw: Vec<u8>,
    /// `backend.type`.
    pub kind: String,
    /// `backend.config`, every attribute as saved (nulls included).
    pub config: Map<String, Value>,
    /// `backend.hash`, the hash of the `.tf` backend block (a number; kept as JSON to compare exactly).
    pub hash: Value,
}

impl fmt::Debug for SavedBackend {
    // The config holds secrets in plain text: show only what is safe.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedBackend")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("attributes", &self.config.len())
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Why a saved file could not be used. Messages never quote the file's contents.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    TooLarge(u64),
    NotJson(String),
    Shape(&'static str),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot read it ({e})"),
            ReadError::TooLarge(n) => write!(f, "it is {n} bytes, too large to be a saved backend"),
            ReadError::NotJson(e) => write!(f, "it is not valid JSON ({e})"),
            ReadError::Shape(what) => write!(f, "it has an unexpected shape ({what})"),
        }
    }
}

impl SavedBackend {
    /// Reads `<data_dir>/terraform.tfstate`. `Ok(None)`: no file, or a file without a backend (a
    /// local-state directory) — nothing for tfshim to do.
    pub fn read(data_dir: &Path) -> Result<Option<SavedBackend>, ReadError> {
        let path = data_dir.join(SAVED_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ReadError::Io(e)),
        };
        let len = file.metadata().map_err(ReadError::Io)?.len();
        if len > MAX_SIZE {
            return Err(ReadError::TooLarge(len));
        }
        let mut raw = Vec::with_capacity(len as usize);
        file.take(MAX_SIZE + 1)
            .read_to_end(&mut raw)
            .map_err(ReadError::Io)?;
        if raw.len() as u64 > MAX_SIZE {
            return Err(ReadError::TooLarge(raw.len() as u64));
        }
        Self::parse(path, raw)
    }

    /// Interprets the bytes of a saved file (pure; see [`SavedBackend::read`]).
    pub fn parse(path: PathBuf, raw: Vec<u8>) -> Result<Option<SavedBackend>, ReadError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(ReadError::Shape("the file is empty"));
        }
        // serde_json's own error messages quote no input, only positions.
        let doc: Value =
            serde_json::from_slice(&raw).map_err(|e| ReadError::NotJson(e.to_string()))?;
        let Value::Object(doc) = doc else {
            return Err(ReadError::Shape("not a JSON object"));
        };
        if let Some(version) = doc.get("version") {
            if version.as_u64() != Some(3) {
                return Err(ReadError::Shape("a state version other than 3"));
            }
        }
        let backend = match doc.get("backend") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(b)) => b,
            Some(_) => return Err(ReadError::Shape("`backend` is not an object")),
        };
        let kind = match backend.get("type") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(ReadError::Shape("`backend.type` is not a string")),
        };
        let config = match backend.get("config") {
            Some(Value::Object(c)) => c.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(ReadError::Shape("`backend.config` is not an object")),
        };
        let hash = backend.get("hash").cloned().unwrap_or(Value::Null);
        Ok(Some(SavedBackend {
            path,
            raw,
            kind,
            config,
            hash,
        }))
    }

    /// A backend configuration that was not read from a data dir (e.g. the copy inside a plan file),
    /// to use the same accessors on it.
    pub fn from_config(path: PathBuf, kind: String, config: Map<String, Value>) -> SavedBackend {
        SavedBackend {
            path,
            raw: Vec::new(),
            kind,
            config,
            hash: Value::Null,
        }
    }

    /// A string attribute, `None` when unset, null or empty: for the attributes whose reader in
    /// terraform treats `""` as unset (the S3 backend's keys, `profile`, `region`, `no_proxy`: its
    /// SDK tests `!= ""`). Where terraform keeps `""` as a value, use [`SavedBackend::value`].
    pub fn string(&self, name: &str) -> Option<&str> {
        string_in(&self.config, name)
    }

    /// A string attribute as terraform's backends read it (`stringValueOk`,
    /// `GetAttrEnvDefaultFallback`): `None` only when absent or null, `Some("")` for an empty
    /// string. Terraform falls back to an environment variable only on null, so a saved `""` is a
    /// value (`-backend-config=username=` sends no basic auth, whatever `TF_HTTP_USERNAME` says).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.config.get(name).and_then(Value::as_str)
    }

    /// A nested string as [`SavedBackend::value`] reads it (`endpoints.sts = ""` is a value).
    pub fn nested_value(&self, block: &str, name: &str) -> Option<&str> {
        match self.config.get(block) {
            Some(Value::Object(m)) => m.get(name).and_then(Value::as_str),
            Some(Value::Array(a)) => a
                .first()
                .and_then(Value::as_object)
                .and_then(|m| m.get(name))
                .and_then(Value::as_str),
            _ => None,
        }
    }

    /// A boolean attribute (terraform stores true booleans; old versions may store "true").
    pub fn flag(&self, name: &str) -> bool {
        self.bool_attr(name).unwrap_or(false)
    }

    /// A boolean attribute, `None` when unset (so an environment default can apply).
    pub fn bool_attr(&self, name: &str) -> Option<bool> {
        match self.config.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) => Some(s == "true"),
            _ => None,
        }
    }

    /// A nested string, e.g. `endpoints.sts`.
    pub fn nested_string(&self, block: &str, name: &str) -> Option<&str> {
        match self.config.get(block) {
            Some(Value::Object(m)) => string_in(m, name),
            // 0.12-era and some tools store single nested blocks as a one-element list.
            Some(Value::Array(a)) => a
                .first()
                .and_then(Value::as_object)
                .and_then(|m| string_in(m, name)),
            _ => None,
        }
    }

    /// A list of strings (`shared_credentials_files`), or one string (`shared_credentials_file`).
    pub fn strings(&self, name: &str) -> Vec<String> {
        match self.config.get(name) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
                .collect(),
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// The static credentials an S3 backend saved, if both halves are there.
    pub fn s3_static_credentials(&self) -> Option<StaticCredentials> {
        if self.kind != "s3" {
            return None;
        }
        let access_key = self.string("access_key")?;
        let secret_key = self.string("secret_key")?;
        Some(StaticCredentials {
            access_key: AccessKeyId::new(access_key),
            secret_key: Secret::new(secret_key),
            token: self.string("token").map(Secret::new),
        })
    }

    /// The `terraform_version` that wrote the file (its top-level field), if it says.
    pub fn terraform_version(&self) -> Option<String> {
        let doc: Value = serde_json::from_slice(&self.raw).ok()?;
        doc.get("terraform_version")?.as_str().map(str::to_owned)
    }

    /// The region terraform's STS call would be signed for: `sts_region`, then `region`.
    pub fn sts_region(&self) -> Option<&str> {
        self.string("sts_region").or_else(|| self.string("region"))
    }

    /// The STS endpoint attribute terraform 1.6+ takes (`retrieveArgument`): `endpoints.sts`, then
    /// the older `sts_endpoint`, the first that is not null — `Some("")` stops the search.
    pub fn sts_endpoint_attr(&self) -> Option<&str> {
        self.nested_value("endpoints", "sts")
            .or_else(|| self.value("sts_endpoint"))
    }

    /// The STS endpoint the backend sets: `endpoints.sts`, then the older `sts_endpoint`.
    pub fn sts_endpoint(&self) -> Option<&str> {
        self.nested_string("endpoints", "sts")
            .or_else(|| self.string("sts_endpoint"))
    }
}

fn string_in<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Helpers for the unit tests of every module that reads a saved backend or the environment.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// A saved backend of `kind` with this `config` JSON and `hash`.
    pub fn saved(kind: &str, config: &str, hash: u64) -> SavedBackend {
        let text = format!(
            r#"{{"version":3,"backend":{{"type":"{kind}","config":{config},"hash":{hash}}}}}"#
        );
        SavedBackend::parse(
            PathBuf::from(".terraform/terraform.tfstate"),
            text.into_bytes(),
        )
        .expect("valid JSON")
        .expect("a backend")
    }

    /// An S3 backend with this `config` JSON.
    pub fn s3(config: &str) -> SavedBackend {
        saved("s3", config, 1)
    }

    /// An environment made of these pairs.
    pub fn env_of(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1.11 shape: every schema attribute present, unset ones null, nested `endpoints`.
    pub const V1_11: &str = r#"{
      "version": 3, "terraform_version": "1.11.4",
      "backend": {"type": "s3", "config": {
        "access_key": "AKIAEXAMPLEKEY1QXGR", "secret_key": "s3cr3t/value+ABC", "token": null,
        "bucket": "tfstate", "key": "a/b.tfstate", "region": "eu-west-1", "sts_region": null,
        "endpoints": {"sts": "http://127.0.0.1:5000", "s3": null, "iam": null},
        "shared_credentials_files": ["/home/u/.aws/credentials"], "profile": null,
        "skip_credentials_validation": null, "assume_role": null, "use_path_style": true
      }, "hash": 1234567890}
    }"#;

    /// 0.12-era shape: only the attributes that were set, flat `sts_endpoint`, string booleans.
    const V0_12: &str = r#"{"version":3,"serial":2,"lineage":"x","backend":{"type":"s3","config":{
        "access_key":"AKIAOLDKEY000000ABCD","secret_key":"old","bucket":"b","key":"k",
        "region":"us-east-1","sts_endpoint":"https://sts.example","skip_credentials_validation":"true",
        "shared_credentials_file":"~/.aws/credentials"},"hash":42},"modules":[]}"#;

    /// OpenTofu writes the same shape, with its own attribute set.
    const TOFU: &str = r#"{"version":3,"terraform_version":"1.8.0","backend":{"type":"s3",
        "config":{"bucket":"b","key":"k","region":"us-east-2","access_key":null,"secret_key":null,
        "endpoints":{"sts":null},"sts_region":"us-west-2"},"hash":7}}"#;

    fn parse(text: &str) -> SavedBackend {
        SavedBackend::parse(PathBuf::from("t"), text.as_bytes().to_vec())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn modern_shape() {
        let b = parse(V1_11);
        assert_eq!(b.kind, "s3");
        assert_eq!(b.hash, Value::from(1234567890u64));
        let c = b.s3_static_credentials().unwrap();
        assert_eq!(c.access_key.expose(), "AKIAEXAMPLEKEY1QXGR");
        assert_eq!(c.secret_key.expose(), "s3cr3t/value+ABC");
        assert!(c.token.is_none());
        assert_eq!(b.sts_endpoint(), Some("http://127.0.0.1:5000"));
        assert_eq!(b.sts_region(), Some("eu-west-1"));
        assert_eq!(
            b.strings("shared_credentials_files"),
            vec!["/home/u/.aws/credentials"]
        );
        assert!(!b.flag("skip_credentials_validation"));
    }

    /// Issue #20, item 4: `""` is a value to `value`, unset to `string`; null and absent are unset
    /// to both.
    #[test]
    fn empty_null_and_absent() {
        let b = testing::saved(
            "http",
            r#"{"username":"","password":null,"endpoints":{"sts":""},"sts_endpoint":"http://old"}"#,
            1,
        );
        assert_eq!(b.value("username"), Some(""));
        assert_eq!(b.string("username"), None);
        assert_eq!(b.value("password"), None);
        assert_eq!(b.value("address"), None);
        assert_eq!(b.nested_value("endpoints", "sts"), Some(""));
        // terraform stops at the first attribute that is set, even to "".
        assert_eq!(b.sts_endpoint_attr(), Some(""));
    }

    #[test]
    fn old_shape() {
        let b = parse(V0_12);
        assert!(b.s3_static_credentials().is_some());
        assert_eq!(b.sts_endpoint(), Some("https://sts.example"));
        assert!(b.flag("skip_credentials_validation"));
        assert_eq!(
            b.strings("shared_credentials_file"),
            vec!["~/.aws/credentials"]
        );
    }

    #[test]
    fn tofu_shape_without_keys() {
        let b = parse(TOFU);
        assert!(b.s3_static_credentials().is_none());
        assert_eq!(b.sts_region(), Some("us-west-2"));
        assert_eq!(b.sts_endpoint(), None);
    }

    #[test]
    fn files_without_a_backend_or_broken() {
        let none = |t: &str| SavedBackend::parse(PathBuf::from("t"), t.as_bytes().to_vec());
        assert!(none(r#"{"version":3,"serial":1}"#).unwrap().is_none());
        assert!(none(r#"{"version":3,"backend":null}"#).unwrap().is_none());
        assert!(matches!(none(""), Err(ReadError::Shape(_))));
        assert!(matches!(
            none("{\"version\":3,"),
            Err(ReadError::NotJson(_))
        ));
        assert!(matches!(none("[1]"), Err(ReadError::Shape(_))));
        assert!(matches!(
            none(r#"{"version":4,"backend":{}}"#),
            Err(ReadError::Shape(_))
        ));
        assert!(matches!(
            none(r#"{"backend":{"config":{}}}"#),
            Err(ReadError::Shape(_))
        ));
    }

    #[test]
    fn other_backends_have_no_s3_credentials() {
        let b = parse(
            r#"{"version":3,"backend":{"type":"azurerm","config":{"access_key":"x","secret_key":"y"},"hash":1}}"#,
        );
        assert!(b.s3_static_credentials().is_none());
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_key("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(redact_key("SHORTKEY1234"), "…1234");
        assert_eq!(redact_key("abc"), "…");
        let b = parse(V1_11);
        let c = b.s3_static_credentials().unwrap();
        let shown = format!("{c:?} {} {:?} {b:?}", c.access_key, c.secret_key);
        assert!(!shown.contains("AKIAEXAMPLEKEY1QXGR"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("AKIA…QXGR"), "{shown}");
    }
}
