//! The default credential chain terraform falls back to once the saved key is gone: where it reads
//! profiles from (the backend's `profile`, `shared_credentials_files`, `shared_config_files`), and
//! which source will supply the credentials — for messages and `shim doctor`. Pure: the environment
//! and file contents are passed in.

use std::path::{Path, PathBuf};

use crate::backends::saved::SavedBackend;

/// Where the ambient chain should read profiles from, as the backend says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileSettings {
    pub profile: Option<String>,
    pub credentials_files: Vec<PathBuf>,
    pub config_files: Vec<PathBuf>,
}

impl ProfileSettings {
    pub fn from_backend(b: &SavedBackend, env: impl Fn(&str) -> Option<String>) -> ProfileSettings {
        let mut credentials_files = b.strings("shared_credentials_files");
        credentials_files.extend(b.strings("shared_credentials_file"));
        ProfileSettings {
            profile: b.string("profile").map(str::to_owned),
            credentials_files: credentials_files
                .iter()
                .map(|p| expand_home(p, &env))
                .collect(),
            config_files: b
                .strings("shared_config_files")
                .iter()
                .map(|p| expand_home(p, &env))
                .collect(),
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

    /// Where the default chain looks, for messages.
    pub fn describe(&self, env: impl Fn(&str) -> Option<String>) -> String {
        let show = |files: Vec<PathBuf>| {
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "the environment (AWS_ACCESS_KEY_ID), profile `{}` in {} and {}, web identity, \
             container and instance credentials",
            self.profile_name(&env),
            show(self.effective_credentials_files(&env)),
            show(self.effective_config_files(&env)),
        )
    }
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

pub fn expand_home(path: &str, env: &impl Fn(&str) -> Option<String>) -> PathBuf {
    match (path.strip_prefix("~/"), env("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The keys of section `[name]` of an INI-style AWS file.
fn section(text: &str, name: &str) -> Option<Vec<String>> {
    let mut keys = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if keys.is_some() {
                break;
            }
            if header.trim() == name {
                keys = Some(Vec::new());
            }
        } else if let (Some(k), Some((key, _))) = (keys.as_mut(), line.split_once('=')) {
            k.push(key.trim().to_owned());
        }
    }
    keys
}

/// Which source of the default chain (in its order: environment, profile, web identity, container,
/// instance metadata) will supply credentials, as far as the environment and the files tell.
pub fn source(
    p: &ProfileSettings,
    env: impl Fn(&str) -> Option<String>,
    read: impl Fn(&Path) -> Option<String>,
) -> String {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID") {
        return "environment (AWS_ACCESS_KEY_ID)".into();
    }
    let name = p.profile_name(&env);
    for file in p.effective_credentials_files(&env) {
        let keys = read(&file).and_then(|t| section(&t, &name));
        if keys.is_some_and(|k| k.iter().any(|k| k == "aws_access_key_id")) {
            return format!("profile {name} ({})", file.display());
        }
    }
    let header = if name == "default" {
        name.clone()
    } else {
        format!("profile {name}")
    };
    for file in p.effective_config_files(&env) {
        let Some(keys) = read(&file).and_then(|t| section(&t, &header)) else {
            continue;
        };
        let has = |k: &str| keys.iter().any(|x| x == k);
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
    if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::testing::{env_of, s3 as backend};

    #[test]
    fn profile_settings() {
        let env = env_of(&[("HOME", "/h")]);
        let b = backend(
            r#"{"profile":"ops","shared_credentials_files":["~/creds"],"shared_config_files":null}"#,
        );
        let p = ProfileSettings::from_backend(&b, &env);
        assert_eq!(p.profile.as_deref(), Some("ops"));
        assert_eq!(p.credentials_files, vec![PathBuf::from("/h/creds")]);
        assert!(p.config_files.is_empty());
        let d = p.describe(&env);
        assert!(
            d.contains("profile `ops` in /h/creds and /h/.aws/config"),
            "{d}"
        );
    }

    #[test]
    fn sources_in_chain_order() {
        let files = |path: &Path| -> Option<String> {
            match path.to_str()? {
                "/h/.aws/credentials" => Some("[default]\naws_access_key_id = AKIA\n".into()),
                "/h/.aws/config" => Some(
                    "[default]\nregion = x\n[profile sso]\nsso_session = corp\n[profile proc]\n\
                     credential_process = /bin/creds\n[profile role]\nrole_arn = arn\n"
                        .into(),
                ),
                _ => None,
            }
        };
        let p = ProfileSettings::default();
        assert_eq!(
            source(
                &p,
                env_of(&[("AWS_ACCESS_KEY_ID", "x"), ("HOME", "/h")]),
                files
            ),
            "environment (AWS_ACCESS_KEY_ID)"
        );
        assert_eq!(
            source(&p, env_of(&[("HOME", "/h")]), files),
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
                source(&p, env_of(&[("HOME", "/h")]), files),
                format!("profile {name} ({how}, /h/.aws/config)")
            );
        }
        let nothing = |_: &Path| None;
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
}
