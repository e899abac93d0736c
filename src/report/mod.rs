//! What tfshim found and decided, as typed documents: the schemas of `shim doctor --json`,
//! `TFSHIM_REPORT` and `shim sweep --json` are the types in this folder (serde derive: field order is
//! key order, `None` is `null`), rendered as pretty JSON for programs and as aligned text for people.
//! Keys appear only redacted (`AKIA…QXGR`); nothing here ever holds a secret.
//!
//! The JSON schemas (documented in the README, checked against these types by a test) are a contract:
//! keys are only ever added.
//!
//! Owns the schema types, their rendering and the output helpers (stdout, colour, the report file).
//! Knows nothing of how the facts were gathered or what was decided: `heal::outcome` builds these
//! documents from the findings, and `commands` prints them.

pub mod command;
#[cfg(test)]
mod readme;
pub mod sweep;

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::Path;

use anstyle::{AnsiColor, Style};
use anyhow::{Context, Result};
use serde::Serialize;

use crate::backends::warnings::Warning;

/// tfshim's own exit codes (`shim doctor`, `shim sweep`): part of the contract, like the JSON.
/// Proxied runs exit with terraform's code.
pub mod exit {
    /// Nothing to do (or, with `sweep --fix`, every stale root repaired).
    pub const NOTHING_TO_DO: u8 = 0;
    /// `sweep --fix`: a repair failed or was not attempted (also: the command itself failed).
    pub const REPAIR_FAILED: u8 = 1;
    /// A repair is due.
    pub const REPAIR_DUE: u8 = 3;
    /// A saved key is stale and no working credentials were found to replace it.
    pub const CANNOT_REPAIR: u8 = 4;
    /// `sweep`: nothing else to report, but some directories could not be read (their roots, if
    /// any, were not checked). The other codes take precedence: they already say "not all well".
    pub const UNREADABLE: u8 = 5;
}

/// The version every document names.
pub const TFSHIM_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What tfshim does (or would do, or did) on the next backend-loading command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
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

    /// `shim doctor`'s exit code for this next action.
    pub fn exit_code(self) -> u8 {
        match self {
            Action::None => exit::NOTHING_TO_DO,
            Action::Reconfigure => exit::REPAIR_DUE,
            Action::CannotRepair => exit::CANNOT_REPAIR,
        }
    }

    fn tone(self) -> Tone {
        match self {
            Action::None => Tone::Good,
            Action::Reconfigure => Tone::Notice,
            Action::CannotRepair => Tone::Bad,
        }
    }
}

/// An action and why, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    pub reason: String,
}

impl Plan {
    pub fn new(action: Action, reason: impl Into<String>) -> Plan {
        Plan {
            action,
            reason: reason.into(),
        }
    }
}

/// The verdict on a set of credentials, as shown: `valid | rejected | unverified | none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shown {
    Valid,
    Rejected,
    Unverified,
    None,
    /// The saved file could not be read: whether a key is saved is unknown.
    Unreadable,
}

impl Shown {
    pub fn as_str(self) -> &'static str {
        match self {
            Shown::Valid => "valid",
            Shown::Rejected => "rejected",
            Shown::Unverified => "unverified",
            Shown::None => "none",
            Shown::Unreadable => "unreadable",
        }
    }

    fn tone(self) -> Tone {
        match self {
            Shown::Valid => Tone::Good,
            Shown::Rejected => Tone::Bad,
            Shown::Unverified => Tone::Notice,
            Shown::None => Tone::Plain,
            Shown::Unreadable => Tone::Notice,
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(Action, Shown);

impl PartialEq<&str> for Shown {
    fn eq(&self, word: &&str) -> bool {
        self.as_str() == *word
    }
}

/// How a word is coloured on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Notice,
    Bad,
}

/// `text` in the colour of `tone` (when `color`).
pub fn paint(text: &str, tone: Tone, color: bool) -> String {
    let fg = match tone {
        Tone::Good => AnsiColor::Green,
        Tone::Notice => AnsiColor::Yellow,
        Tone::Bad => AnsiColor::Red,
        Tone::Plain => return text.to_owned(),
    };
    if !color {
        return text.to_owned();
    }
    let style = Style::new().fg_color(Some(fg.into()));
    format!("{}{text}{}", style.render(), style.render_reset())
}

/// The wrapped binary, as `shim doctor` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TerraformInfo {
    pub path: String,
    pub found: String,
    pub version: Option<String>,
}

/// The saved backend, or why it could not be read.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum BackendInfo {
    Saved {
        #[serde(rename = "type")]
        kind: String,
        path: String,
        bucket: Option<String>,
        key: Option<String>,
        region: Option<String>,
        /// The http backend's `address` (user info hidden); absent for other backends.
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    Unreadable {
        error: String,
    },
}

/// The static key saved in the backend, and STS's verdict on it.
#[derive(Debug, Clone, Serialize)]
pub struct SavedCredentials {
    pub present: bool,
    pub access_key: Option<String>,
    /// Other backends' saved credential in words (`password (user ci)`); absent for S3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    pub verdict: Shown,
    pub code: Option<String>,
    pub arn: Option<String>,
    pub reason: Option<String>,
}

/// The credentials terraform would fall back to, and STS's verdict on them.
#[derive(Debug, Clone, Serialize)]
pub struct AmbientCredentials {
    pub verdict: Shown,
    pub source: Option<String>,
    pub arn: Option<String>,
    pub code: Option<String>,
    pub reason: Option<String>,
}

impl Doctor {
    /// The report under `mode` (`fix`, `warn`, `off`): `action` is what the next plan does under
    /// it, `fix_action` what `fix` would do.
    pub fn under_mode(mut self, mode: &'static str, plan: Plan) -> Doctor {
        self.mode = mode;
        self.action = plan.action;
        self.action_reason = plan.reason;
        self
    }
}

/// One data dir: `shim doctor --json` and `TFSHIM_REPORT`.
#[derive(Debug, Clone, Serialize)]
pub struct Doctor {
    pub tfshim_version: &'static str,
    pub terraform: Option<TerraformInfo>,
    pub data_dir: String,
    pub backend: Option<BackendInfo>,
    pub saved_credentials: SavedCredentials,
    pub ambient_credentials: AmbientCredentials,
    pub action: Action,
    pub action_reason: String,
    pub warnings: Vec<Warning>,
    /// The `TFSHIM_MODE` the action is under: `fix`, `warn` or `off`.
    pub mode: &'static str,
    /// What the next plan would do under `fix` (the same as `action` there), and why.
    pub fix_action: Action,
    pub fix_action_reason: String,
}

/// `shown (code; arn; reason)`, the parts that are there.
fn verdict_cell(shown: Shown, details: [&Option<String>; 3], color: bool) -> String {
    let colored = paint(shown.as_str(), shown.tone(), color);
    let detail = details
        .iter()
        .filter_map(|d| d.as_deref())
        .collect::<Vec<_>>()
        .join("; ");
    if detail.is_empty() {
        colored
    } else {
        format!("{colored} ({detail})")
    }
}

impl Doctor {
    /// A short aligned report; `color` for a terminal ([`color_on`]).
    pub fn to_human(&self, color: bool) -> String {
        let saved = &self.saved_credentials;
        let ambient = &self.ambient_credentials;
        let mut rows: Vec<(&str, String)> = Vec::new();
        rows.push((
            "terraform",
            match &self.terraform {
                Some(t) => format!(
                    "{} ({}){}",
                    t.path,
                    t.found,
                    t.version
                        .as_deref()
                        .map(|v| format!(", {v}"))
                        .unwrap_or_default()
                ),
                None => "not found".into(),
            },
        ));
        rows.push(("data dir", self.data_dir.clone()));
        rows.push((
            "saved backend",
            match &self.backend {
                Some(BackendInfo::Saved {
                    kind,
                    bucket,
                    key,
                    region,
                    address,
                    ..
                }) => {
                    let mut s = kind.clone();
                    for (k, v) in [
                        ("bucket", bucket),
                        ("key", key),
                        ("region", region),
                        ("address", address),
                    ] {
                        if let Some(v) = v {
                            s.push_str(&format!("  {k}={v}"));
                        }
                    }
                    s
                }
                Some(BackendInfo::Unreadable { error }) => format!("unreadable: {error}"),
                None => "none (no saved backend)".into(),
            },
        ));
        // `subject  verdict (details)`: the saved key's id, the fallback credentials' source.
        let saved_cell = verdict_cell(
            saved.verdict,
            [&saved.code, &saved.arn, &saved.reason],
            color,
        );
        let ambient_cell = verdict_cell(
            ambient.verdict,
            [&ambient.code, &ambient.arn, &ambient.reason],
            color,
        );
        let saved_row = match saved.access_key.as_ref().or(saved.credential.as_ref()) {
            Some(k) => format!("{k}  {saved_cell}"),
            None if saved.verdict == Shown::Unreadable => saved_cell,
            None => "none".into(),
        };
        let ambient_row = match &ambient.source {
            Some(src) => format!("{src}  {ambient_cell}"),
            None => ambient_cell,
        };
        rows.push(("saved key", saved_row));
        rows.push(("fallback creds", ambient_row));
        let action = paint(self.action.as_str(), self.action.tone(), color);
        rows.push(("next plan", format!("{action}: {}", self.action_reason)));
        if self.mode != "fix" {
            let fix = paint(self.fix_action.as_str(), self.fix_action.tone(), color);
            rows.push(("with fix", format!("{fix}: {}", self.fix_action_reason)));
        }
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

/// A document as tfshim prints and writes it: pretty JSON and a final newline.
pub fn to_json<T: Serialize>(document: &T) -> Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(document)?))
}

/// The first failed write of [`out`], if any: once one failed, nothing more is written.
static OUT_FAILED: std::sync::OnceLock<io::Error> = std::sync::OnceLock::new();

/// Writes tfshim's own command output (`shim …`) to stdout. A failure is kept for
/// [`output_written`], which the command's caller asks at the end (#22: `> /dev/full` is an
/// error, not a success).
pub fn out(text: &str) {
    if OUT_FAILED.get().is_some() {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        let _ = OUT_FAILED.set(e);
    }
}

/// Whether everything [`out`] was given reached stdout: a failed write is an error (exit 1, one
/// line); a reader that went away (`… | head -1`, `EPIPE`) is not: the output is simply cut short,
/// as with any Unix tool.
pub fn output_written() -> Result<()> {
    match OUT_FAILED.get() {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            anyhow::bail!("cannot write to stdout: {e}")
        }
        _ => Ok(()),
    }
}

/// Whether to colour what is written to `stream`: `-no-color`, `NO_COLOR`, `CLICOLOR_FORCE`/
/// `FORCE_COLOR`, `CLICOLOR` and `TERM=dumb` as `settings::Color` weighs them, else a terminal.
pub fn color_on(stream: &impl IsTerminal) -> bool {
    crate::settings::get().color_on(stream)
}

/// Appends `document` to `path` as one line of JSON (JSON Lines), creating the file with mode
/// 0600: every run is kept (#22), so a CI job's `init` and its `plan` both stay in the report. One
/// `write` of one line on a file opened for appending: concurrent runs' lines do not interleave.
pub fn write_file<T: Serialize>(path: &Path, document: &T) -> Result<()> {
    let mut line = serde_json::to_string(document)?;
    line.push('\n');
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write the report {}", path.display()))?;
    file.write_all(line.as_bytes())
        .with_context(|| format!("cannot write the report {}", path.display()))?;
    Ok(())
}
