//! The world terraform's S3 backend reads besides its own attributes, modelled per terraform version:
//! the credential chain it falls back to once the saved key is gone (where it reads profiles from —
//! the backend's `profile`, `shared_credentials_files`, `shared_config_files` — and in which order it
//! tries the sources), and what the selected profile of the AWS config files says about reaching
//! STS (`endpoint_url`, a `services` section). Profile files are read with aws-config's own loader,
//! the parser every AWS SDK's test suite agrees on; everything else here is pure.
//!
//! Over 500 lines only because its unit tests (a third of the file) are kept beside the code.

use std::path::{Path, PathBuf};

use aws_config::profile::ProfileSet;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_runtime::env_config::EnvConfigValue;
use aws_types::os_shim_internal::{Env, Fs};

use crate::backends::saved::SavedBackend;

/// Which AWS plumbing the terraform that runs has: the credential order and the endpoint settings
/// differ between the two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Generation {
    /// Terraform ≤ 1.5: aws-sdk-go-base v0.7/v1 on aws-sdk-go v1. Credentials: the backend's keys,
    /// then `AWS_ACCESS_KEY_ID`, then the profile (`GetCredentials` in hashicorp/aws-sdk-go-base
    /// v0.7.1 and v1.1.0, `awsauth.go`). STS: `sts_endpoint`, then `AWS_STS_ENDPOINT` (its backend
    /// schema); no `AWS_ENDPOINT_URL*`, no endpoints from the config files.
    Legacy,
    /// Terraform 1.6+: aws-sdk-go-base v2 on aws-sdk-go-v2. A backend `profile` is used *instead of*
    /// `AWS_ACCESS_KEY_ID` ("The Profile is now used instead of the environment variable
    /// credentials", hashicorp/aws-sdk-go-base `credentials.go`; aws-sdk-go-v2
    /// `config/resolve_credentials.go`, `resolveCredentialChain`). STS also from `AWS_ENDPOINT_URL`
    /// and the profile's `services` section or `endpoint_url`.
    #[default]
    Current,
}

impl Generation {
    /// From a terraform version (`1.5.7`, `v1.11.4`, `Terraform v1.0.3`); unknown → [`Current`].
    ///
    /// [`Current`]: Generation::Current
    pub fn of_terraform(version: Option<&str>) -> Generation {
        let Some(v) = version else {
            return Generation::Current;
        };
        let v = v.trim();
        let v = v.strip_prefix("Terraform ").unwrap_or(v);
        let v = v.strip_prefix('v').unwrap_or(v);
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(0), Some(_)) => Generation::Legacy,
            (Some(1), Some(minor)) if minor <= 5 => Generation::Legacy,
            _ => Generation::Current,
        }
    }

    /// The generation of the terraform that saved `b`: its `terraform_version` where the file records
    /// one (1.x's `workdir.BackendState`; docs/terraform-backend.md — 1.0.3 records none), else the
    /// attribute set: terraform saves every attribute of its backend schema, null when unset, and
    /// these arrived with 1.6 (hashicorp/terraform#33723: `shared_config_files`,
    /// `shared_credentials_files`; #33765: `sts_region`, `use_path_style`, `custom_ca_bundle`; the
    /// `endpoints` block). A file with none of them is from 1.5 or older.
    pub fn of_backend(b: &SavedBackend) -> Generation {
        if let Some(v) = b.terraform_version() {
            return Generation::of_terraform(Some(&v));
        }
        const FROM_1_6: &[&str] = &[
            "endpoints",
            "sts_region",
            "use_path_style",
            "custom_ca_bundle",
            "shared_config_files",
            "shared_credentials_files",
        ];
        if FROM_1_6.iter().any(|k| b.config.contains_key(*k)) {
            Generation::Current
        } else {
            Generation::Legacy
        }
    }
}

/// Where the ambient chain reads profiles from, as the backend says, and in which order terraform
/// tries its sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ProfileSettings {
    pub profile: Option<String>,
    pub credentials_files: Vec<PathBuf>,
    pub config_files: Vec<PathBuf>,
    /// The terraform that wrote the saved backend (the one that runs, unless it was just upgraded).
    pub generation: Generation,
}

impl ProfileSettings {
    pub fn from_backend(b: &SavedBackend, env: impl Fn(&str) -> Option<String>) -> ProfileSettings {
        let generation = Generation::of_backend(b);
        let (credentials_files, config_files) = match generation {
            Generation::Current => current_files(b, &env),
            Generation::Legacy => {
                let mut credentials_files = b.strings("shared_credentials_files");
                credentials_files.extend(b.strings("shared_credentials_file"));
                (credentials_files, b.strings("shared_config_files"))
            }
        };
        let expand = |files: Vec<String>| files.iter().map(|p| expand_home(p, &env)).collect();
        ProfileSettings {
            profile: b.string("profile").map(str::to_owned),
            credentials_files: expand(credentials_files),
            config_files: expand(config_files),
            generation,
        }
    }

    /// Relative shared credentials and config files, as terraform reads them: from the directory it
    /// runs in (`-chdir`).
    pub fn anchored(mut self, work_dir: &Path) -> ProfileSettings {
        for f in self
            .credentials_files
            .iter_mut()
            .chain(self.config_files.iter_mut())
        {
            if f.is_relative() {
                *f = work_dir.join(&*f);
            }
        }
        self
    }

    /// The profile name the chain uses.
    pub fn profile_name(&self, env: &impl Fn(&str) -> Option<String>) -> String {
        self.profile
            .clone()
            .or_else(|| env("AWS_PROFILE").filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "default".to_owned())
    }

    /// Whether the backend's profile is tried before (and instead of) `AWS_ACCESS_KEY_ID`.
    pub fn profile_first(&self) -> bool {
        self.profile.is_some() && self.generation == Generation::Current
    }

    /// The files as aws-config takes them: the backend's lists replace the defaults, kind by kind
    /// (as in terraform), else `AWS_SHARED_CREDENTIALS_FILE`/`AWS_CONFIG_FILE`, else `~/.aws/…`.
    pub fn env_config_files(&self) -> EnvConfigFiles {
        let mut files = EnvConfigFiles::builder()
            .include_default_credentials_file(self.credentials_files.is_empty())
            .include_default_config_file(self.config_files.is_empty());
        for f in &self.credentials_files {
            files = files.with_file(EnvConfigFileKind::Credentials, f);
        }
        for f in &self.config_files {
            files = files.with_file(EnvConfigFileKind::Config, f);
        }
        files.build()
    }

    /// The credentials files the chain reads: the backend's, else `AWS_SHARED_CREDENTIALS_FILE`,
    /// else `~/.aws/credentials`.
    pub fn effective_credentials_files(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Vec<PathBuf> {
        effective(
            &self.credentials_files,
            env,
            "AWS_SHARED_CREDENTIALS_FILE",
            "~/.aws/credentials",
        )
    }

    /// The config files the chain reads: the backend's, else `AWS_CONFIG_FILE`, else `~/.aws/config`.
    pub fn effective_config_files(&self, env: &impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
        effective(&self.config_files, env, "AWS_CONFIG_FILE", "~/.aws/config")
    }

    /// Where the default chain looks, in terraform's order, for messages.
    pub fn describe(&self, env: impl Fn(&str) -> Option<String>) -> String {
        let show = |files: Vec<PathBuf>| {
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let profile = format!(
            "profile `{}` in {} and {}",
            self.profile_name(&env),
            show(self.effective_credentials_files(&env)),
            show(self.effective_config_files(&env)),
        );
        if self.profile_first() {
            format!(
                "{profile} (terraform ≥ 1.6 uses the backend's profile instead of \
                 AWS_ACCESS_KEY_ID), container and instance credentials"
            )
        } else {
            format!(
                "the environment (AWS_ACCESS_KEY_ID), {profile}, web identity, container and \
                 instance credentials"
            )
        }
    }
}

/// The shared files terraform 1.6+ names (`backend.go`, `Configure`): `shared_credentials_file`
/// gives one; a set `shared_credentials_files` (even empty: the SDK's defaults), else a non-empty
/// `AWS_SHARED_CREDENTIALS_FILE`, replaces it; `shared_config_files`, else `AWS_SHARED_CONFIG_FILE`
/// (terraform's own variable). An empty list here means the SDK's defaults (`effective`).
fn current_files(
    b: &SavedBackend,
    env: &impl Fn(&str) -> Option<String>,
) -> (Vec<String>, Vec<String>) {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    // `stringSetValueOk`: a list that is set, whatever it holds.
    let set = |name: &str| b.config.get(name).is_some_and(serde_json::Value::is_array);
    let credentials = if set("shared_credentials_files") {
        b.strings("shared_credentials_files")
    } else if var("AWS_SHARED_CREDENTIALS_FILE").is_some() {
        // The SDK's default file reads the same variable.
        Vec::new()
    } else {
        b.strings("shared_credentials_file")
    };
    let config = if set("shared_config_files") {
        b.strings("shared_config_files")
    } else {
        var("AWS_SHARED_CONFIG_FILE").into_iter().collect()
    };
    (credentials, config)
}

fn effective(
    files: &[PathBuf],
    env: &impl Fn(&str) -> Option<String>,
    var: &str,
    default: &str,
) -> Vec<PathBuf> {
    if !files.is_empty() {
        return files.to_vec();
    }
    let path = env(var)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned());
    vec![expand_home(&path, env)]
}

/// The user's home directory as terraform (go-homedir) and the AWS SDKs find it: `HOME`, and on
/// Windows, where `HOME` is usually unset, `USERPROFILE`, then `HOMEDRIVE` + `HOMEPATH`. The one place
/// tfshim decides what `~` means.
pub fn home_dir(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(home) = set("HOME") {
        return Some(PathBuf::from(home));
    }
    if cfg!(windows) {
        if let Some(profile) = set("USERPROFILE") {
            return Some(PathBuf::from(profile));
        }
        if let (Some(drive), Some(path)) = (set("HOMEDRIVE"), set("HOMEPATH")) {
            return Some(PathBuf::from(format!("{drive}{path}")));
        }
    }
    None
}

/// `~/x` (and `~\x` on Windows) with the home directory put in.
pub fn expand_home(path: &str, env: &impl Fn(&str) -> Option<String>) -> PathBuf {
    let rest = path
        .strip_prefix("~/")
        .or_else(|| cfg!(windows).then(|| path.strip_prefix("~\\")).flatten());
    match (rest, home_dir(env)) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// Reads AWS profile files with aws-config's loader, selecting `profile` (else `AWS_PROFILE`, else
/// `default`). Missing files are empty; `Err` only for a file that exists and cannot be parsed.
pub fn load_profiles(files: &EnvConfigFiles, profile: Option<&str>) -> Result<ProfileSet, String> {
    load_profiles_with(&Fs::real(), &Env::real(), files, profile)
}

/// [`load_profiles`] on a given file system and environment (tests use fakes).
pub fn load_profiles_with(
    fs: &Fs,
    env: &Env,
    files: &EnvConfigFiles,
    profile: Option<&str>,
) -> Result<ProfileSet, String> {
    let load = aws_config::profile::load(
        fs,
        env,
        files,
        profile.map(|p| std::borrow::Cow::Owned(p.to_owned())),
    );
    // The loader is async only in its signature: with the real file system it reads synchronously,
    // so a current-thread runtime without I/O drivers (microseconds to build) runs it to the end.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("could not start the async runtime: {e}"))?;
    runtime
        .block_on(load)
        .map_err(|e| format!("cannot read the AWS config files: {e}"))
}

/// One file alone (for messages that name the file a profile came from).
fn one_file(kind: EnvConfigFileKind, path: &Path) -> EnvConfigFiles {
    EnvConfigFiles::builder()
        .include_default_credentials_file(false)
        .include_default_config_file(false)
        .with_file(kind, path)
        .build()
}

/// What the selected profile says about the STS endpoint: its `services` section's `sts`
/// `endpoint_url`, else its own `endpoint_url` (aws-config's `EnvConfigValue`, the SDKs' shared
/// rule), and whether it turns such settings off (`ignore_configured_endpoint_urls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileEndpoint {
    pub sts: Option<String>,
    pub ignore_configured_endpoint_urls: bool,
}

impl ProfileEndpoint {
    pub fn of(set: &ProfileSet) -> ProfileEndpoint {
        // An empty environment: the variables are terraform's to weigh (`sts.rs`), in their place.
        let no_env = Env::from_slice(&[]);
        let sts = EnvConfigValue::new()
            .profile("endpoint_url")
            .service_id("STS")
            .load(&no_env, Some(set))
            .map(|(v, _)| v.into_owned())
            .filter(|v| !v.is_empty());
        let ignore = set
            .get_profile(set.selected_profile())
            .and_then(|p| p.get("ignore_configured_endpoint_urls"))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        ProfileEndpoint {
            sts,
            ignore_configured_endpoint_urls: ignore,
        }
    }

    /// The selected profile's endpoint settings, read from the real files; none when they cannot be
    /// read (terraform would then fail on its own, and no endpoint is the safe guess).
    pub fn load(p: &ProfileSettings) -> ProfileEndpoint {
        load_profiles(&p.env_config_files(), p.profile.as_deref())
            .map(|set| ProfileEndpoint::of(&set))
            .unwrap_or_default()
    }
}

/// Which source of the chain will supply credentials, in terraform's order for its generation, as
/// far as the environment and the files tell. `load` reads one profile file (kind, path) with
/// aws-config's loader, selecting the chain's profile.
pub fn source(
    p: &ProfileSettings,
    env: impl Fn(&str) -> Option<String>,
    load: impl Fn(EnvConfigFileKind, &Path) -> Option<ProfileSet>,
) -> String {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if !p.profile_first() && set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        return "environment (AWS_ACCESS_KEY_ID)".into();
    }
    let name = p.profile_name(&env);
    for file in p.effective_credentials_files(&env) {
        let found = load(EnvConfigFileKind::Credentials, &file);
        let profile = found.as_ref().and_then(|s| s.get_profile(&name));
        if profile.is_some_and(|pr| pr.get("aws_access_key_id").is_some()) {
            return format!("profile {name} ({})", file.display());
        }
    }
    for file in p.effective_config_files(&env) {
        let Some(found) = load(EnvConfigFileKind::Config, &file) else {
            continue;
        };
        let Some(profile) = found.get_profile(&name) else {
            continue;
        };
        let has = |k: &str| profile.get(k).is_some();
        let how = if has("sso_session") || has("sso_start_url") {
            "SSO"
        } else if has("credential_process") {
            "credential_process"
        } else if has("role_arn") {
            "assume role"
        } else if has("web_identity_token_file") {
            "web identity"
        } else if has("aws_access_key_id") {
            "static keys"
        } else {
            continue;
        };
        return format!("profile {name} ({how}, {})", file.display());
    }
    if !p.profile_first() && set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        return "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)".into();
    }
    if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || set("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        return "container credentials".into();
    }
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return "none found".into();
    }
    "instance metadata (IMDS)".into()
}

/// [`source`] on the real files.
pub fn source_from_files(p: &ProfileSettings, env: impl Fn(&str) -> Option<String>) -> String {
    let profile = p.profile_name(&env);
    source(p, env, |kind, path| {
        load_profiles(&one_file(kind, path), Some(&profile)).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::testing::{env_of, s3 as backend};

    /// What the user reads, with Windows' `\` shown as `/`, so that one expected text serves both
    /// platforms (the paths themselves compare by component).
    fn slashes(text: impl AsRef<str>) -> String {
        text.as_ref().replace('\\', "/")
    }

    /// A loader over in-memory files.
    fn files(
        contents: &'static [(&'static str, &'static str)],
    ) -> impl Fn(EnvConfigFileKind, &Path) -> Option<ProfileSet> {
        move |kind, path| {
            let (_, text) = contents.iter().find(|(p, _)| Path::new(p) == path)?;
            let fs = Fs::from_slice(&[(path.to_str()?, text)]);
            load_profiles_with(&fs, &Env::from_slice(&[]), &one_file(kind, path), None).ok()
        }
    }

    #[test]
    fn generations() {
        for (v, g) in [
            (Some("0.12.24"), Generation::Legacy),
            (Some("1.0.3"), Generation::Legacy),
            (Some("v1.5.7"), Generation::Legacy),
            (Some("Terraform v1.6.0"), Generation::Current),
            (Some("1.11.4"), Generation::Current),
            (Some("2.0.0"), Generation::Current),
            (Some("garbage"), Generation::Current),
            (None, Generation::Current),
        ] {
            assert_eq!(Generation::of_terraform(v), g, "{v:?}");
        }
    }

    #[test]
    fn generation_of_a_saved_file() {
        use crate::backends::saved::SavedBackend;
        let parse = |text: &str| {
            SavedBackend::parse(PathBuf::from("x"), text.as_bytes().to_vec())
                .unwrap()
                .unwrap()
        };
        let new = parse(
            r#"{"version":3,"terraform_version":"1.11.4","backend":{"type":"s3","config":{},"hash":1}}"#,
        );
        assert_eq!(Generation::of_backend(&new), Generation::Current);
        // 1.0.3 writes no terraform_version; its schema has no `endpoints`.
        let old = parse(
            r#"{"version":3,"serial":1,"backend":{"type":"s3","config":{"sts_endpoint":null,"endpoint":null},"hash":1}}"#,
        );
        assert_eq!(Generation::of_backend(&old), Generation::Legacy);
        let unversioned_new =
            parse(r#"{"version":3,"backend":{"type":"s3","config":{"endpoints":null},"hash":1}}"#);
        assert_eq!(
            Generation::of_backend(&unversioned_new),
            Generation::Current
        );
    }

    #[test]
    fn profile_settings() {
        let env = env_of(&[("HOME", "/h")]);
        let b = backend(
            r#"{"profile":"ops","shared_credentials_files":["~/creds"],"shared_config_files":null,"endpoints":null}"#,
        );
        let p = ProfileSettings::from_backend(&b, &env);
        assert_eq!(p.profile.as_deref(), Some("ops"));
        assert_eq!(p.credentials_files, vec![PathBuf::from("/h/creds")]);
        assert!(p.config_files.is_empty());
        assert_eq!(p.generation, Generation::Current);
        let d = slashes(p.describe(&env));
        assert!(
            d.starts_with("profile `ops` in /h/creds and /h/.aws/config (terraform ≥ 1.6"),
            "{d}"
        );
        let legacy = ProfileSettings {
            generation: Generation::Legacy,
            ..p
        };
        let d = legacy.describe(&env);
        assert!(d.starts_with("the environment (AWS_ACCESS_KEY_ID), profile `ops`"));
    }

    /// Issue #20, item 4: the shared files as terraform 1.6+ reads its attributes and variables.
    #[test]
    fn shared_files_as_terraform_1_6_reads_them() {
        let files = |config: &str, env: &'static [(&'static str, &'static str)]| {
            let p = ProfileSettings::from_backend(&backend(config), env_of(env));
            (p.credentials_files, p.config_files)
        };
        let h = |p: &str| PathBuf::from(p);
        let home: &[(&str, &str)] = &[("HOME", "/h")];
        // The single file, unless the list or the variable is set.
        assert_eq!(
            files(
                r#"{"endpoints":null,"shared_credentials_file":"/one"}"#,
                home
            )
            .0,
            vec![h("/one")]
        );
        assert_eq!(
            files(
                r#"{"endpoints":null,"shared_credentials_file":"/one","shared_credentials_files":["/a","/b"]}"#,
                home
            )
            .0,
            vec![h("/a"), h("/b")]
        );
        // An empty list is set: the SDK's defaults, not the single file.
        assert!(files(
            r#"{"endpoints":null,"shared_credentials_file":"/one","shared_credentials_files":[]}"#,
            home
        )
        .0
        .is_empty());
        let p = ProfileSettings::from_backend(
            &backend(r#"{"endpoints":null,"shared_credentials_file":"/one"}"#),
            env_of(&[
                ("HOME", "/h"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/env-creds"),
            ]),
        );
        assert_eq!(
            p.effective_credentials_files(&env_of(&[(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/env-creds"
            )])),
            vec![h("/env-creds")]
        );
        // terraform's own AWS_SHARED_CONFIG_FILE, under a set list.
        let env: &[(&str, &str)] = &[("HOME", "/h"), ("AWS_SHARED_CONFIG_FILE", "/env-config")];
        assert_eq!(
            files(r#"{"endpoints":null}"#, env).1,
            vec![h("/env-config")]
        );
        assert_eq!(
            files(r#"{"endpoints":null,"shared_config_files":["/c"]}"#, env).1,
            vec![h("/c")]
        );
        // ≤ 1.5 (no 1.6 attribute saved): the attribute, then the SDK's variable.
        let legacy = ProfileSettings::from_backend(
            &backend(r#"{"shared_credentials_file":"/one"}"#),
            env_of(&[("AWS_SHARED_CREDENTIALS_FILE", "/env-creds")]),
        );
        assert_eq!(legacy.credentials_files, vec![h("/one")]);
    }

    #[test]
    fn home_is_home_or_the_windows_profile() {
        let env = env_of(&[("HOME", "/h"), ("USERPROFILE", r"C:\Users\me")]);
        assert_eq!(expand_home("~/x", &env), PathBuf::from("/h/x"));
        assert_eq!(expand_home("/abs", &env), PathBuf::from("/abs"));
        let windows = env_of(&[("USERPROFILE", r"C:\Users\me")]);
        if cfg!(windows) {
            assert_eq!(home_dir(&windows), Some(PathBuf::from(r"C:\Users\me")));
        } else {
            assert_eq!(home_dir(&windows), None);
            assert_eq!(expand_home("~/x", &windows), PathBuf::from("~/x"));
        }
    }

    const FILES: &[(&str, &str)] = &[
        (
            "/h/.aws/credentials",
            "[default]\naws_access_key_id = AKIA\naws_secret_access_key = s\n\
             [lab]\naws_access_key_id = AKIB\naws_secret_access_key = s\n",
        ),
        (
            "/h/.aws/config",
            "[default]\nregion = x\n[profile sso]\nsso_session = corp\n[profile proc]\n\
             credential_process = /bin/creds\n[profile role]\nrole_arn = arn\nsource_profile = lab\n",
        ),
    ];

    #[test]
    fn sources_in_chain_order() {
        let p = ProfileSettings::default();
        let home = env_of(&[("HOME", "/h")]);
        let env_keys = env_of(&[
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            source(&p, &env_keys, files(FILES)),
            "environment (AWS_ACCESS_KEY_ID)"
        );
        assert_eq!(
            slashes(source(&p, &home, files(FILES))),
            "profile default (/h/.aws/credentials)"
        );
        for (name, how) in [
            ("sso", "SSO"),
            ("proc", "credential_process"),
            ("role", "assume role"),
        ] {
            let p = ProfileSettings {
                profile: Some(name.into()),
                ..Default::default()
            };
            assert_eq!(
                slashes(source(&p, &home, files(FILES))),
                format!("profile {name} ({how}, /h/.aws/config)")
            );
        }
        let nothing = |_: EnvConfigFileKind, _: &Path| None;
        assert_eq!(
            source(
                &p,
                env_of(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")]),
                nothing
            ),
            "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)"
        );
        assert_eq!(
            source(
                &p,
                env_of(&[("AWS_EC2_METADATA_DISABLED", "true")]),
                nothing
            ),
            "none found"
        );
        assert_eq!(source(&p, env_of(&[]), nothing), "instance metadata (IMDS)");
    }

    #[test]
    fn a_backend_profile_beats_environment_keys_from_terraform_1_6() {
        let env_keys = env_of(&[
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
            ("HOME", "/h"),
        ]);
        let lab = ProfileSettings {
            profile: Some("lab".into()),
            ..Default::default()
        };
        assert_eq!(
            slashes(source(&lab, &env_keys, files(FILES))),
            "profile lab (/h/.aws/credentials)"
        );
        let legacy = ProfileSettings {
            generation: Generation::Legacy,
            ..lab
        };
        assert_eq!(
            source(&legacy, &env_keys, files(FILES)),
            "environment (AWS_ACCESS_KEY_ID)"
        );
        // AWS_PROFILE is not the backend's profile: the environment keys still come first.
        let by_variable = env_of(&[
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
            ("AWS_PROFILE", "lab"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            source(&ProfileSettings::default(), &by_variable, files(FILES)),
            "environment (AWS_ACCESS_KEY_ID)"
        );
    }

    #[test]
    fn profile_default_spelled_as_a_profile_section() {
        // `[profile default]` in the config file is the default profile (the hand parser missed it).
        let cfg: &[(&str, &str)] = &[(
            "/h/.aws/config",
            "[profile default]\ncredential_process = /bin/c\n",
        )];
        let cfg: &'static [(&'static str, &'static str)] =
            Box::leak(cfg.to_vec().into_boxed_slice());
        assert_eq!(
            slashes(source(
                &ProfileSettings::default(),
                env_of(&[("HOME", "/h")]),
                files(cfg)
            )),
            "profile default (credential_process, /h/.aws/config)"
        );
    }

    #[test]
    fn sts_endpoint_of_a_profile() {
        let set = |text: &str| {
            let fs = Fs::from_slice(&[("/c", text)]);
            let files = one_file(EnvConfigFileKind::Config, Path::new("/c"));
            load_profiles_with(&fs, &Env::from_slice(&[]), &files, None).unwrap()
        };
        let services = set("[default]\nendpoint_url = http://all\nservices = local\n\
             [services local]\nsts =\n  endpoint_url = http://sts-only\n");
        assert_eq!(
            ProfileEndpoint::of(&services).sts.as_deref(),
            Some("http://sts-only")
        );
        let global = set("[profile default]\nendpoint_url = http://all\n");
        assert_eq!(
            ProfileEndpoint::of(&global).sts.as_deref(),
            Some("http://all")
        );
        let ignored =
            set("[default]\nendpoint_url = http://all\nignore_configured_endpoint_urls = true\n");
        assert!(ProfileEndpoint::of(&ignored).ignore_configured_endpoint_urls);
        assert_eq!(
            ProfileEndpoint::of(&set("[default]\nregion = x\n")),
            ProfileEndpoint::default()
        );
    }
}
