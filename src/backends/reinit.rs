//! The `init` command a user can run verbatim to re-initialise a saved backend without its
//! credentials and with every other saved setting, for the advice tfshim prints when it cannot do
//! the re-initialisation itself (the key is written in the `.tf` backend block: the user must edit
//! the block first; issue #20, item 10).
//!
//! A bare `terraform init -reconfigure` is not such a command: it drops every setting given by
//! `-backend-config` at init and can switch the root to other state (docs/terraform-backend.md). So
//! every saved setting but the credentials is handed back as `-backend-config=NAME=VALUE`, each
//! argument quoted for a POSIX shell; the ones the `.tf` block also sets are harmless repeats.
//! Terraform reads a primitive value as a string and any other as an HCL expression, which the
//! compact JSON of an object or a list is. When a setting is a secret (it would be printed) or a value
//! cannot be written that way, there is no such command: `None`, and the advice says so in words.
//! Pure.

use std::path::Path;

use serde_json::Value;

use crate::backends::saved::SavedBackend;
use crate::backends::secrets;

/// `terraform [-chdir=ROOT] init -reconfigure -backend-config=…` for `b` without the attributes in
/// `removes`; `chdir` is omitted when `None` or `.`.
pub fn init_without(b: &SavedBackend, removes: &[&str], chdir: Option<&Path>) -> Option<String> {
    let sensitive: Vec<&str> = secrets::other_secret_attrs(&b.kind).collect();
    let mut args = vec!["terraform".to_owned()];
    if let Some(dir) = chdir.filter(|d| !d.as_os_str().is_empty() && *d != Path::new(".")) {
        args.push(quoted(&format!("-chdir={}", dir.to_str()?)));
    }
    args.push("init".into());
    args.push("-reconfigure".into());
    for (name, value) in &b.config {
        if value.is_null() || removes.contains(&name.as_str()) {
            continue;
        }
        if sensitive.contains(&name.as_str()) || holds_secret(value, &sensitive) {
            return None;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            other => serde_json::to_string(&without_nulls(other)).ok()?,
        };
        // An HCL template sequence would be evaluated, not passed on; a newline cannot be typed.
        if !value.is_string() && (text.contains("${") || text.contains("%{")) || text.contains('\n')
        {
            return None;
        }
        args.push(quoted(&format!("-backend-config={name}={text}")));
    }
    Some(args.join(" "))
}

/// The advice once the S3 keys are removed from the backend block in `tf`: run the full `init`
/// (in `tf`'s directory) that keeps every other setting saved in `b`; in words when there is none.
pub fn after_editing_block(b: &SavedBackend, tf: &Path) -> String {
    match init_without(b, secrets::S3_CREDENTIAL_ATTRS, tf.parent()) {
        Some(cmd) => format!("then run `{cmd}` (it keeps every other saved setting)"),
        None => format!(
            "then re-initialise with every setting saved in {} but the keys, each as \
             -backend-config (one of them is secret, so tfshim does not print that command)",
            b.path.display()
        ),
    }
}

/// Whether a secret attribute (at any depth) or a URL with a password is set in `value`.
fn holds_secret(value: &Value, sensitive: &[&str]) -> bool {
    match value {
        Value::String(s) => secrets::url_has_password(s),
        Value::Object(m) => m.iter().any(|(k, v)| {
            !v.is_null() && (sensitive.contains(&k.as_str()) || holds_secret(v, sensitive))
        }),
        Value::Array(a) => a.iter().any(|v| holds_secret(v, sensitive)),
        _ => false,
    }
}

/// Nested nulls are unset attributes: terraform would reject `null` for some of them.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// `arg` as a POSIX shell word: unchanged when it holds only characters no shell treats specially,
/// else in single quotes (a `'` inside as `'\''`).
pub fn quoted(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_=./:,@+%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::testing::saved;
    use crate::backends::secrets::S3_CREDENTIAL_ATTRS as S3;

    #[test]
    fn every_setting_but_the_credentials_quoted_for_a_shell() {
        let b = saved(
            "s3",
            r#"{"access_key":"AKIAOLD","secret_key":"s","token":null,"bucket":"b","key":"a b/it's",
                "region":"us-east-1","use_path_style":true,"max_retries":5,
                "endpoints":{"sts":"http://127.0.0.1:1","iam":null},"profile":null}"#,
            1,
        );
        let cmd = init_without(&b, S3, Some(Path::new("in dir"))).unwrap();
        assert_eq!(
            cmd,
            "terraform '-chdir=in dir' init -reconfigure -backend-config=bucket=b \
             '-backend-config=key=a b/it'\\''s' -backend-config=region=us-east-1 \
             -backend-config=use_path_style=true -backend-config=max_retries=5 \
             '-backend-config=endpoints={\"sts\":\"http://127.0.0.1:1\"}'"
        );
        assert!(!cmd.contains("AKIAOLD"));
        assert!(!init_without(&b, S3, Some(Path::new(".")))
            .unwrap()
            .contains("chdir"));
    }

    #[test]
    fn no_command_when_it_would_print_a_secret() {
        for config in [
            r#"{"bucket":"b","sse_customer_key":"c2VjcmV0"}"#,
            r#"{"bucket":"b","assume_role_with_web_identity":{"web_identity_token":"t"}}"#,
            r#"{"bucket":"b","https_proxy":"http://me:pw@proxy:3128"}"#,
            r#"{"bucket":"b","endpoints":{"s3":"${x}"}}"#,
        ] {
            assert_eq!(
                init_without(&saved("s3", config, 1), S3, None),
                None,
                "{config}"
            );
        }
        let b = saved("s3", r#"{"bucket":"b","sse_customer_key":null}"#, 1);
        assert!(init_without(&b, S3, None).is_some());
    }
}
