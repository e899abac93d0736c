//! The backend settings an `init` gives on its command line, read the way terraform reads them:
//! `-backend-config=KEY=VALUE` flags and `-backend-config=FILE` files of attribute values (HCL, or
//! JSON when the name ends in `.json`), merged in the order given, a later value replacing an earlier
//! one attribute by attribute (`backendConfigOverrideBody` in terraform's `internal/command/init.go`;
//! files through `configs.Parser.LoadHCLFile`, which picks JSON by the `.json` suffix).
//!
//! Also the HCL-to-JSON conversion and the loose comparison with the saved configuration that the
//! decision and `tf_block.rs` share.
//!
//! Only constant values are understood: terraform decodes these files without variables or
//! functions, and anything tfshim cannot evaluate (a reference, a function call, a nested block) is
//! an error here, on which the caller leaves terraform alone. Values may be secrets: [`Given`]'s
//! `Debug` names attributes only, and error messages give a position, never a line of the file (the
//! HCL parser's own message quotes the line).

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate};
use serde_json::{Map, Number, Value};

use crate::backends::saved::Secret;

/// One `-backend-config` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigItem {
    /// `KEY=VALUE`. The value may be a secret, so it is kept as one.
    Pair(String, Secret),
    /// A file of attribute values (HCL, or JSON when the name ends in `.json`); a relative path is
    /// relative to the directory terraform runs in. An empty value (`-backend-config=''` alone
    /// clears every override) is kept as an empty path.
    File(PathBuf),
    /// An argument tfshim cannot read (not UTF-8) that may be a `-backend-config`: whatever it says,
    /// tfshim cannot know the merged result.
    Opaque,
}

/// A backend settings file is a few hundred bytes; anything far larger is not read.
const MAX_SIZE: u64 = 1024 * 1024;

/// The merged `-backend-config` values of one `init`: attribute name → value (JSON; flags give
/// strings, as terraform takes them before converting to the attribute's type).
#[derive(Clone, Default, PartialEq)]
pub struct Given(pub Map<String, Value>);

impl fmt::Debug for Given {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Given {
    /// A given string value (e.g. a credential), `None` when not given or not a string.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }
}

/// Reads and merges `items` in terraform's order. Relative file paths are relative to `work_dir`
/// (terraform changes into its `-chdir` directory before reading them). Any item tfshim cannot read
/// exactly as terraform would is an error saying why (never quoting the file).
pub fn merge(items: &[ConfigItem], work_dir: &Path) -> Result<Given, String> {
    // `-backend-config=''` alone clears every override (init.go); tfshim does not model that.
    if let [ConfigItem::File(p)] = items {
        if p.as_os_str().is_empty() {
            return Err("-backend-config='' clears the saved overrides".into());
        }
    }
    let mut merged = Map::new();
    for item in items {
        match item {
            ConfigItem::Pair(name, value) => {
                merged.insert(name.clone(), flag_value(value.expose()));
            }
            ConfigItem::File(path) => {
                let full = work_dir.join(path);
                let values =
                    read_file(&full).map_err(|why| format!("{}: {why}", path.display()))?;
                // A file's attributes replace earlier values one by one (configs.MergeBodies).
                merged.extend(values);
            }
            ConfigItem::Opaque => {
                return Err("an argument that is not UTF-8 may be a -backend-config".into())
            }
        }
    }
    Ok(Given(merged))
}

/// A `KEY=VALUE` flag's value: terraform parses it as an HCL expression only for collection and
/// object attributes (`configValueFromCLI`); a value that reads as an object or a list is taken as
/// one, anything else as the string it is (a string attribute's value is compared as a string
/// either way, so a misreading can only make tfshim see a change and leave terraform alone).
fn flag_value(raw: &str) -> Value {
    let t = raw.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        if let Ok(v) = parse_expression(raw) {
            return v;
        }
    }
    Value::String(raw.to_owned())
}

fn parse_expression(text: &str) -> Result<Value, String> {
    let expr: hcl::Expression = text
        .parse::<hcl::edit::expr::Expression>()
        .map_err(|e| position(&e))?
        .into();
    evaluate(&expr)
}

/// Reads one settings file: JSON when its name ends in `.json`, else HCL (as terraform decides).
pub fn read_file(path: &Path) -> Result<Map<String, Value>, String> {
    // Only a regular file reads the same twice. A pipe — `-backend-config=<(vault read …)`, a
    // process substitution terraform reads fine — gives its bytes once, to whoever reads first,
    // and that must be terraform; opening one without a writer would also block.
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err("it is not a regular file (a pipe can be read only once)".into()),
        Err(e) => return Err(format!("cannot read it ({e})")),
    }
    let file = File::open(path).map_err(|e| format!("cannot read it ({e})"))?;
    let mut raw = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot read it ({e})"))?;
    if raw.len() as u64 > MAX_SIZE {
        return Err("it is too large to be a backend settings file".into());
    }
    let text = String::from_utf8(raw).map_err(|_| "it is not UTF-8 text".to_owned())?;
    if path.as_os_str().as_encoded_bytes().ends_with(b".json") {
        parse_json(&text)
    } else {
        parse_hcl(&text)
    }
}

/// An HCL file of attribute values. A block is an error: terraform accepts only the backend's
/// attributes here (the S3 backend has no block types), so it would refuse the file anyway.
pub fn parse_hcl(text: &str) -> Result<Map<String, Value>, String> {
    let body = parse_body(text)?;
    let mut out = Map::new();
    for structure in body.into_inner() {
        match structure {
            hcl::Structure::Attribute(attr) => {
                let value = evaluate(attr.expr())
                    .map_err(|why| format!("the value of `{}` {why}", attr.key()))?;
                if out.insert(attr.key().to_owned(), value).is_some() {
                    // HCL forbids defining an attribute twice; terraform says so and stops.
                    return Err(format!("`{}` is defined twice", attr.key()));
                }
            }
            hcl::Structure::Block(block) => {
                return Err(format!(
                    "it holds a block (`{}`), not only attribute values",
                    block.identifier()
                ))
            }
        }
    }
    Ok(out)
}

/// Parses an HCL body; the error gives the position only.
pub fn parse_body(text: &str) -> Result<hcl::Body, String> {
    let body: hcl::edit::structure::Body = text.parse().map_err(|e| position(&e))?;
    Ok(body.into())
}

/// The parser's error without the quoted line (which may hold a secret).
fn position(e: &hcl::edit::parser::Error) -> String {
    let at = e.location();
    format!(
        "it is not valid HCL (line {}, column {})",
        at.line(),
        at.column()
    )
}

/// A JSON file of attribute values: one object. A string holding a template sequence (`${`, `%{`)
/// is an error, since HCL's JSON syntax evaluates it and tfshim does not.
pub fn parse_json(text: &str) -> Result<Map<String, Value>, String> {
    // serde_json's messages give positions, never input.
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("it is not valid JSON ({e})"))?;
    let Value::Object(mut map) = value else {
        return Err("it is not a JSON object".into());
    };
    // HCL's JSON syntax treats a "//" property as a comment.
    map.remove("//");
    if let Some(name) = map
        .iter()
        .find(|(_, v)| has_template(v))
        .map(|(k, _)| k.clone())
    {
        return Err(format!("the value of `{name}` is a template"));
    }
    Ok(map)
}

fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("${") || s.contains("%{"),
        Value::Array(a) => a.iter().any(has_template),
        Value::Object(m) => m.values().any(has_template),
        _ => false,
    }
}

/// Evaluates a constant expression (literals, heredocs, templates without references, objects,
/// lists) to JSON, with no variables and no functions, as terraform decodes backend settings.
pub fn evaluate(expr: &hcl::Expression) -> Result<Value, String> {
    let value = expr
        .evaluate(&Context::new())
        // The evaluator's message may quote the expression; say only what kind of problem it was.
        .map_err(|_| "is not a constant (a reference or a function call)".to_owned())?;
    Ok(to_json(value))
}

fn to_json(value: hcl::Value) -> Value {
    match value {
        hcl::Value::Null => Value::Null,
        hcl::Value::Bool(b) => Value::Bool(b),
        hcl::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        hcl::Value::String(s) => Value::String(s),
        hcl::Value::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        hcl::Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
    }
}

/// Whether a given value is what terraform saved for it: scalars compare as the strings terraform
/// converts them from (`true` and `"true"`, `5` and `"5"`), objects member by member with unset
/// (null) members left out, lists element by element; an object also matches a one-element list
/// holding it (the shape older versions saved single nested blocks in). Pure.
pub fn same_value(given: &Value, saved: Option<&Value>) -> bool {
    let saved = saved.unwrap_or(&Value::Null);
    match (given, saved) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Object(g), Value::Object(s)) => {
            let set = |m: &Map<String, Value>| -> Vec<String> {
                let mut k: Vec<String> = m
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, _)| k.clone())
                    .collect();
                k.sort();
                k
            };
            set(g) == set(s) && g.iter().all(|(k, v)| same_value(v, s.get(k)))
        }
        (Value::Object(_), Value::Array(a)) if a.len() == 1 => same_value(given, a.first()),
        (Value::Array(g), Value::Array(s)) => {
            g.len() == s.len() && g.iter().zip(s).all(|(g, s)| same_value(g, Some(s)))
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
        (g, s) => scalar(g) == scalar(s),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::Secret;
    use serde_json::json;
    use std::path::PathBuf;

    fn hcl(text: &str) -> Value {
        Value::Object(parse_hcl(text).unwrap())
    }

    #[test]
    fn attribute_files() {
        let text = r#"
# a comment
// another
/* and a block comment */
bucket         = "tfstate"
key            = "team/terraform.tfstate"
region         = "eu-west-1"
encrypt        = true
max_retries    = 5
endpoints = {
  sts = "http://127.0.0.1:1234"
  s3  = "http://127.0.0.1:5678"
}
assume_role = {
  role_arn     = "arn:aws:iam::123456789012:role/tf"
  session_name = "ci"
  tags         = { team = "ops" }
  transitive_tag_keys = ["team"]
}
allowed_account_ids = ["123456789012", "210987654321"]
"#;
        assert_eq!(
            hcl(text),
            json!({
                "bucket": "tfstate", "key": "team/terraform.tfstate", "region": "eu-west-1",
                "encrypt": true, "max_retries": 5,
                "endpoints": {"sts": "http://127.0.0.1:1234", "s3": "http://127.0.0.1:5678"},
                "assume_role": {
                    "role_arn": "arn:aws:iam::123456789012:role/tf", "session_name": "ci",
                    "tags": {"team": "ops"}, "transitive_tag_keys": ["team"]
                },
                "allowed_account_ids": ["123456789012", "210987654321"],
            })
        );
    }

    #[test]
    fn heredocs_templates_and_crlf() {
        let text = "key = <<EOT\nline one\nEOT\nbucket = <<-EOT\n    indented\n    EOT\nregion = \"us-${\"east\"}-1\"\n";
        assert_eq!(
            hcl(text),
            json!({"key": "line one\n", "bucket": "indented\n", "region": "us-east-1"})
        );
        let crlf = "bucket = \"b\"\r\nkey = \"k\"\r\nendpoints = {\r\n  sts = \"x\"\r\n}\r\n";
        assert_eq!(
            hcl(crlf),
            json!({"bucket": "b", "key": "k", "endpoints": {"sts": "x"}})
        );
        assert_eq!(hcl(""), json!({}));
    }

    #[test]
    fn what_terraform_would_not_take_is_an_error_without_the_text() {
        for text in [
            "bucket = \"unterminated SECRETVALUE\n",
            "bucket = var.bucket\n",
            "bucket = upper(\"SECRETVALUE\")\n",
            "assume_role {\n  role_arn = \"SECRETVALUE\"\n}\n",
            "bucket = \"a\"\nbucket = \"b\"\n",
            "= \"SECRETVALUE\"",
            "{{{",
        ] {
            let err = parse_hcl(text).unwrap_err();
            assert!(!err.contains("SECRETVALUE"), "{text:?}: {err}");
        }
        assert!(parse_hcl("bucket = \"x\nSECRETVALUE")
            .unwrap_err()
            .contains("line"));
    }

    #[test]
    fn deep_nesting_is_no_crash() {
        for n in [1000usize, 100_000] {
            let _ = parse_hcl(&format!("a = {}1{}", "[".repeat(n), "]".repeat(n)));
            let _ = parse_hcl(&format!("a = {}", "{ b = ".repeat(n)));
            let _ = parse_json(&format!("{{\"a\": {}1{}}}", "[".repeat(n), "]".repeat(n)));
        }
    }

    #[test]
    fn json_files() {
        let v = parse_json(
            r#"{"//": "comment", "bucket": "b", "endpoints": {"sts": "http://x"}, "encrypt": true}"#,
        )
        .unwrap();
        assert_eq!(
            Value::Object(v),
            json!({"bucket": "b", "endpoints": {"sts": "http://x"}, "encrypt": true})
        );
        assert!(parse_json(r#"{"key": "${var.k}"}"#).is_err());
        assert!(parse_json("[1]").is_err());
        let err = parse_json(r#"{"secret_key": "SECRETVALUE"#).unwrap_err();
        assert!(!err.contains("SECRETVALUE"), "{err}");
    }

    #[test]
    fn merging_follows_terraforms_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("prod.hcl"),
            "bucket = \"b\"\nkey = \"k\"\naccess_key = \"FROMFILE\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("over.json"),
            r#"{"key": "k2", "endpoints": {"sts": "s"}}"#,
        )
        .unwrap();
        let pair = |k: &str, v: &str| ConfigItem::Pair(k.into(), Secret::new(v));
        let file = |p: &str| ConfigItem::File(PathBuf::from(p));
        let given = merge(
            &[
                pair("key", "first"),
                file("prod.hcl"),
                pair("access_key", "NEW"),
                file("over.json"),
                pair("encrypt", "true"),
                pair("endpoints", "{ sts = \"t\" }"),
            ],
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            Value::Object(given.0.clone()),
            json!({"key": "k2", "bucket": "b", "access_key": "NEW", "endpoints": {"sts": "t"},
                   "encrypt": "true"})
        );
        assert!(!format!("{given:?}").contains("NEW"));
        // Absolute paths stand alone; a missing or malformed file is an error naming it.
        let abs = dir.path().join("prod.hcl");
        assert!(merge(&[ConfigItem::File(abs)], Path::new("/nonexistent")).is_ok());
        let err = merge(&[file("missing.hcl")], dir.path()).unwrap_err();
        assert!(err.starts_with("missing.hcl: cannot read it"), "{err}");
        assert!(merge(&[file("")], dir.path()).is_err());
        assert!(merge(&[ConfigItem::Opaque], dir.path()).is_err());
    }

    /// `-backend-config=<(…)`: reading the pipe would take its bytes from terraform (and opening
    /// one without a writer blocks). Before the fix this hung in `File::open`.
    #[cfg(unix)]
    #[test]
    fn a_pipe_is_left_to_terraform() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("settings.hcl");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(merge(&[ConfigItem::File(fifo)], Path::new("/")));
        });
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("read_file blocked on a pipe");
        let err = result.unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn loose_comparison_with_the_saved_value() {
        let saved = json!({"encrypt": true, "max_retries": 5, "bucket": "b",
            "endpoints": {"sts": "x", "s3": null}, "list": ["a"], "old": [{"role_arn": "r"}]});
        let get = |k: &str| saved.get(k);
        assert!(same_value(&json!("true"), get("encrypt")));
        assert!(same_value(&json!(true), get("encrypt")));
        assert!(!same_value(&json!("false"), get("encrypt")));
        assert!(same_value(&json!("5"), get("max_retries")));
        assert!(same_value(&json!({"sts": "x"}), get("endpoints")));
        assert!(!same_value(&json!({"sts": "y"}), get("endpoints")));
        assert!(!same_value(
            &json!({"sts": "x", "s3": "z"}),
            get("endpoints")
        ));
        assert!(same_value(&json!(["a"]), get("list")));
        assert!(!same_value(&json!("a"), get("list")));
        assert!(same_value(&json!({"role_arn": "r"}), get("old")));
        assert!(!same_value(&json!("b"), get("missing")));
        assert!(same_value(&Value::Null, get("missing")));
    }
}
