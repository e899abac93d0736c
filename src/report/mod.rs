//! What tfshim found and decided, rendered for people (`shim doctor`), for programs (`--json`,
//! `TFSHIM_REPORT`), from the same [`Report`]. Keys appear only redacted (`AKIA…QXGR`); nothing here
//! ever holds a secret.
//!
//! The JSON schema (documented in the README) is a contract: keys are only ever added.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::aws::verdict::Verdict;
use crate::backends::warnings::Warning;
use crate::heal::decide::{self, CommandClass, Facts, InitChange, Mode, Step};
use crate::heal::facts::Findings;

/// The wrapped binary, as `shim doctor` shows it.
pub struct TerraformInfo {
    pub path: PathBuf,
    pub found: String,
    pub version: Option<String>,
}

/// What tfshim does (or would do) on the next backend-loading command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    Reconfigure,
    CannotRepair,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Reconfigure => "reconfigure",
            Action::CannotRepair => "cannot-repair",
        }
    }

    /// The action a final decision step stands for, and why.
    pub fn of(step: &Step, f: &Findings) -> (Action, String) {
        let key = f.key();
        match step {
            Step::Repair => (
                Action::Reconfigure,
                format!("the saved key {key} is rejected and the fallback credentials work"),
            ),
            Step::Refuse => (
                Action::CannotRepair,
                format!("the saved key {key} is rejected and no working credentials were found"),
            ),
            Step::RunUnchecked(why) => (Action::None, format!("no verdict: {why}")),
            Step::AmbientUnchecked(why) => (
                Action::None,
                format!("the saved key {key} is rejected, but the fallback credentials could not be checked ({why})"),
            ),
            Step::WarnStale => (Action::None, format!("the saved key {key} is rejected; TFSHIM_MODE=warn")),
            _ => match (&f.creds, &f.saved_verdict) {
                (None, _) => (Action::None, "no static key is saved".into()),
                (Some(_), Some(Verdict::Valid { .. })) => (Action::None, "the saved key works".into()),
                _ => (Action::None, "nothing to do".into()),
            },
        }
    }
}

/// What the next backend-loading command would do with these findings (for `shim doctor` and `shim
/// sweep`, which gather every verdict first): the proxy's own decision.
pub fn next_plan(f: &Findings) -> (Action, String) {
    let facts = Facts {
        mode: Mode::Fix,
        class: CommandClass::LoadsBackend,
        saved: f.saved.clone(),
        init_change: InitChange::Same,
        saved_verdict: f.saved_verdict.clone(),
        ambient_verdict: f.ambient.as_ref().map(|a| a.verdict.clone()),
    };
    // With every verdict known, the decision is final at once.
    Action::of(&decide::next(&facts), f)
}

pub struct Report {
    pub terraform: Option<TerraformInfo>,
    pub data_dir: PathBuf,
    pub backend: Value,
    pub saved: Value,
    pub ambient: Value,
    pub action: Action,
    pub action_reason: String,
    pub warnings: Vec<Warning>,
}

/// `valid | rejected | unverified | none`.
fn verdict_word(v: Option<&Verdict>) -> &'static str {
    match v {
        Some(Verdict::Valid { .. }) => "valid",
        Some(Verdict::Rejected { .. }) => "rejected",
        Some(Verdict::Missing) => "none",
        Some(Verdict::Unknown { .. }) | None => "unverified",
    }
}

fn verdict_details(v: Option<&Verdict>) -> (Value, Value, Value) {
    match v {
        Some(Verdict::Valid { arn }) => (Value::Null, json!(arn), Value::Null),
        Some(Verdict::Rejected { code }) => (json!(code), Value::Null, Value::Null),
        Some(Verdict::Unknown { reason }) => (Value::Null, Value::Null, json!(reason)),
        Some(Verdict::Missing) => (Value::Null, Value::Null, json!("no credentials found")),
        None => (Value::Null, Value::Null, json!("not checked")),
    }
}

impl Report {
    pub fn new(
        f: &Findings,
        terraform: Option<TerraformInfo>,
        action: (Action, String),
        warnings: Vec<Warning>,
    ) -> Report {
        let backend = match &f.backend {
            Some(b) => json!({
                "type": b.kind,
                "path": b.path.display().to_string(),
                "bucket": b.string("bucket"),
                "key": b.string("key"),
                "region": b.string("region"),
            }),
            None => match &f.saved {
                crate::heal::decide::Saved::Unreadable(why) => json!({ "error": why }),
                _ => Value::Null,
            },
        };
        let saved = match &f.creds {
            None => json!({
                "present": false, "access_key": null, "verdict": "none",
                "code": null, "arn": null, "reason": null,
            }),
            Some(c) => {
                let v = f.saved_verdict.as_ref();
                let (code, arn, reason) = verdict_details(v);
                let reason = match (&f.saved, v) {
                    (crate::heal::decide::Saved::ValidationSkipped, None) => {
                        json!("skip_credentials_validation is set")
                    }
                    (crate::heal::decide::Saved::Uncheckable(why), None) => json!(why),
                    _ => reason,
                };
                json!({
                    "present": true, "access_key": c.access_key.redacted(),
                    "verdict": verdict_word(v), "code": code, "arn": arn, "reason": reason,
                })
            }
        };
        let ambient = match &f.ambient {
            None => json!({
                "verdict": "unverified", "source": null, "arn": null, "code": null,
                "reason": "not checked",
            }),
            Some(a) => {
                let (code, arn, reason) = verdict_details(Some(&a.verdict));
                json!({
                    "verdict": verdict_word(Some(&a.verdict)), "source": a.source,
                    "arn": arn, "code": code, "reason": reason,
                })
            }
        };
        Report {
            terraform,
            data_dir: f.data_dir.clone(),
            backend,
            saved,
            ambient,
            action: action.0,
            action_reason: action.1,
            warnings,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "tfshim_version": env!("CARGO_PKG_VERSION"),
            "terraform": self.terraform.as_ref().map(|t| json!({
                "path": t.path.display().to_string(),
                "found": t.found,
                "version": t.version,
            })),
            "data_dir": self.data_dir.display().to_string(),
            "backend": self.backend,
            "saved_credentials": self.saved,
            "ambient_credentials": self.ambient,
            "action": self.action.as_str(),
            "action_reason": self.action_reason,
            "warnings": self.warnings.iter().map(|w| json!({
                "code": w.code, "message": w.message,
            })).collect::<Vec<_>>(),
        })
    }

    /// A short aligned report; `color` only on a terminal without `NO_COLOR`.
    pub fn to_human(&self, color: bool) -> String {
        let paint = |text: &str, code: &str| {
            if color {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_owned()
            }
        };
        let verdict = |v: &Value| -> String {
            let word = v["verdict"].as_str().unwrap_or("unverified");
            let colored = match word {
                "valid" => paint(word, "32"),
                "rejected" => paint(word, "31"),
                "unverified" => paint(word, "33"),
                _ => word.to_owned(),
            };
            let detail = ["code", "arn", "reason"]
                .iter()
                .filter_map(|k| v[*k].as_str())
                .collect::<Vec<_>>()
                .join("; ");
            if detail.is_empty() {
                colored
            } else {
                format!("{colored} ({detail})")
            }
        };
        let mut rows: Vec<(&str, String)> = Vec::new();
        rows.push((
            "terraform",
            match &self.terraform {
                Some(t) => format!(
                    "{} ({}){}",
                    t.path.display(),
                    t.found,
                    t.version
                        .as_deref()
                        .map(|v| format!(", {v}"))
                        .unwrap_or_default()
                ),
                None => "not found".into(),
            },
        ));
        rows.push(("data dir", self.data_dir.display().to_string()));
        rows.push((
            "saved backend",
            match (&self.backend["type"], &self.backend["error"]) {
                (Value::String(kind), _) => {
                    let mut s = kind.clone();
                    for k in ["bucket", "key", "region"] {
                        if let Some(v) = self.backend[k].as_str() {
                            s.push_str(&format!("  {k}={v}"));
                        }
                    }
                    s
                }
                (_, Value::String(e)) => format!("unreadable: {e}"),
                _ => "none (no saved backend)".into(),
            },
        ));
        rows.push((
            "saved key",
            match self.saved["access_key"].as_str() {
                Some(k) => format!("{k}  {}", verdict(&self.saved)),
                None => "none".into(),
            },
        ));
        rows.push((
            "fallback creds",
            match self.ambient["source"].as_str() {
                Some(src) => format!("{src}  {}", verdict(&self.ambient)),
                None => verdict(&self.ambient),
            },
        ));
        let action = match self.action {
            Action::None => paint("none", "32"),
            Action::Reconfigure => paint("reconfigure", "33"),
            Action::CannotRepair => paint("cannot-repair", "31"),
        };
        rows.push(("next plan", format!("{action}: {}", self.action_reason)));
        for w in &self.warnings {
            rows.push(("warning", format!("[{}] {}", w.code, w.message)));
        }
        let mut out = String::new();
        for (label, value) in rows {
            out.push_str(&format!("{label:<15} {value}\n"));
        }
        out
    }
}

/// Writes tfshim's own command output (`shim …`) to stdout. A reader that went away
/// (`… | head -1`) is not an error worth a panic: the output is simply cut short.
pub fn out(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Whether to colour human output written to stdout.
pub fn stdout_color() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Writes `value` to `path` atomically (a temp file beside it, renamed over it), mode 0600.
pub fn write_file(path: &Path, value: &Value) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tfshim-report-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write the report in {}", dir.display()))?;
    serde_json::to_writer_pretty(&mut tmp, value)?;
    tmp.write_all(b"\n")?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write the report {}", path.display()))?;
    Ok(())
}
