//! The root's own backend block: whether `terraform { backend "s3" { … } }` in its `.tf` (or
//! `.tf.json`) files writes the static credentials itself (#11 item 5).
//!
//! A key written there is not a saved `-backend-config` value: every `init -reconfigure` reads it
//! back from the configuration, so re-initialising cannot remove it (the repair would run, find the
//! key still saved, and roll back). tfshim then says where the key is and leaves it to the user.
//!
//! Reads files only; fails open: a file that cannot be read or parsed tells nothing (terraform will
//! report it), so the key is then taken to be a `-backend-config` one, as before.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backends::config_file::parse_body;
use crate::backends::secrets::S3_CREDENTIAL_ATTRS;

/// A configuration file is rarely more than a few hundred KiB; larger ones are not read.
const MAX_SIZE: u64 = 4 * 1024 * 1024;

/// The first file of `root` (in name order, as terraform loads them) whose S3 backend block sets a
/// credential attribute (`access_key`, `secret_key`, `token`) to anything but `null`.
pub fn credentials_in_configuration(root: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name.ends_with(".tf") || name.ends_with(".tf.json")) && !name.starts_with('.')
        })
        .collect();
    files.sort();
    files.into_iter().find(|path| {
        let small = fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= MAX_SIZE);
        let Some(text) = small.then(|| fs::read_to_string(path).ok()).flatten() else {
            return false;
        };
        if path.to_string_lossy().ends_with(".json") {
            json_sets_credentials(&text)
        } else {
            hcl_sets_credentials(&text)
        }
    })
}

/// Native syntax: a `terraform` block holding a `backend "s3"` block with a credential attribute.
fn hcl_sets_credentials(text: &str) -> bool {
    let Ok(body) = parse_body(text) else {
        return false;
    };
    body.blocks()
        .filter(|b| b.identifier() == "terraform")
        .flat_map(|t| t.body().blocks())
        .filter(|b| {
            b.identifier() == "backend" && b.labels().first().is_some_and(|l| l.as_str() == "s3")
        })
        .flat_map(|b| b.body().attributes())
        .any(|a| {
            S3_CREDENTIAL_ATTRS.contains(&a.key()) && !matches!(a.expr(), hcl::Expression::Null)
        })
}

/// JSON syntax: `{"terraform": {"backend": {"s3": {…}}}}`, any level possibly a list of objects.
fn json_sets_credentials(text: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let objects = |v: &Value| -> Vec<Value> {
        match v {
            Value::Object(_) => vec![v.clone()],
            Value::Array(a) => a.iter().filter(|x| x.is_object()).cloned().collect(),
            _ => Vec::new(),
        }
    };
    objects(&doc)
        .iter()
        .flat_map(|d| objects(&d["terraform"]))
        .flat_map(|t| objects(&t["backend"]))
        .flat_map(|b| objects(&b["s3"]))
        .any(|s3| {
            S3_CREDENTIAL_ATTRS
                .iter()
                .any(|k| s3.get(*k).is_some_and(|v| !v.is_null()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_syntax() {
        assert!(hcl_sets_credentials(
            "terraform {\n  required_version = \">= 1.0\"\n  backend \"s3\" {\n    bucket = \"b\"\n    access_key = \"AKIA\"\n    secret_key = var.x\n  }\n}\n"
        ));
        assert!(hcl_sets_credentials(
            "terraform {\r\n  backend \"s3\" {\r\n    token = <<EOT\r\nT\r\nEOT\r\n  }\r\n}\r\n"
        ));
        for text in [
            "terraform {\n  backend \"s3\" {\n    bucket = \"b\"\n  }\n}\n",
            "terraform {\n  backend \"s3\" {\n    access_key = null\n  }\n}\n",
            "terraform {\n  backend \"gcs\" {\n    access_key = \"x\"\n  }\n}\n",
            "provider \"aws\" {\n  access_key = \"AKIA\"\n}\n",
            "resource \"x\" \"y\" {\n  backend \"s3\" {\n    access_key = \"k\"\n  }\n}\n",
            "terraform {\n  backend \"s3\" {\n    access_key = \"unterminated\n",
        ] {
            assert!(!hcl_sets_credentials(text), "{text}");
        }
    }

    #[test]
    fn json_syntax() {
        assert!(json_sets_credentials(
            r#"{"terraform": {"backend": {"s3": {"access_key": "AKIA"}}}}"#
        ));
        assert!(json_sets_credentials(
            r#"{"terraform": [{"backend": [{"s3": {"secret_key": "s"}}]}]}"#
        ));
        assert!(!json_sets_credentials(
            r#"{"terraform": {"backend": {"s3": {"access_key": null, "bucket": "b"}}}}"#
        ));
        assert!(!json_sets_credentials("not json"));
    }

    #[test]
    fn names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.tf"), "resource \"x\" \"y\" {}\n").unwrap();
        fs::write(dir.path().join("broken.tf"), "terraform {\n").unwrap();
        assert_eq!(credentials_in_configuration(dir.path()), None);
        fs::write(
            dir.path().join("backend.tf"),
            "terraform {\n  backend \"s3\" {\n    access_key = \"AKIA\"\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(
            credentials_in_configuration(dir.path()),
            Some(dir.path().join("backend.tf"))
        );
        assert_eq!(credentials_in_configuration(&dir.path().join("nope")), None);
    }
}
