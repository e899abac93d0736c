//! The `shim sweep` document: one row per Terraform root, the counts, and the exit code they give;
//! rendered as JSON (`--json`) or as a table with notes.

use std::fmt;

use serde::Serialize;

use super::{exit, paint, Action, Shown, Tone, TFSHIM_VERSION};

/// What became of one stale root under `--fix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepairResult {
    Repaired,
    Failed,
    Skipped,
}

impl RepairResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairResult::Repaired => "repaired",
            RepairResult::Failed => "failed",
            RepairResult::Skipped => "skipped",
        }
    }

    fn tone(self) -> Tone {
        match self {
            RepairResult::Repaired => Tone::Good,
            RepairResult::Failed => Tone::Bad,
            RepairResult::Skipped => Tone::Notice,
        }
    }
}

impl fmt::Display for RepairResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One root.
#[derive(Debug, Clone, Serialize)]
pub struct Root {
    pub path: String,
    pub backend: Option<String>,
    /// The saved S3 key, redacted.
    pub access_key: Option<String>,
    /// Other backends' saved credential in words (`password (user ci)`); absent for S3, as in
    /// doctor's `saved_credentials`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    pub verdict: Shown,
    pub code: Option<String>,
    pub reason: Option<String>,
    pub action: Action,
    pub action_reason: String,
    pub result: Option<RepairResult>,
    pub result_reason: Option<String>,
    /// What only the table shows.
    #[serde(skip)]
    pub text: RootText,
}

/// The parts of a row that only the table and its notes use.
#[derive(Debug, Clone, Default)]
pub struct RootText {
    /// The path as found under the swept directory (`apps/web`, `.`).
    pub path: String,
    /// The saved file as reasons name it, and as a note names it instead.
    pub saved_file: (String, String),
    /// Where the fallback credentials were looked for (for a root that cannot be repaired).
    pub looked_in: String,
}

/// What the exit code and the summary line count.
pub trait Tally {
    fn verdict(&self) -> Shown;
    fn action(&self) -> Action;
    fn result(&self) -> Option<RepairResult>;
}

impl Tally for Root {
    fn verdict(&self) -> Shown {
        self.verdict
    }
    fn action(&self) -> Action {
        self.action
    }
    fn result(&self) -> Option<RepairResult> {
        self.result
    }
}

/// Counts for the summary and the exit code.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub roots: usize,
    #[serde(skip)]
    pub keys_checked: usize,
    #[serde(skip)]
    pub fallbacks_checked: usize,
    #[serde(skip)]
    pub fix: bool,
    pub valid: usize,
    pub rejected: usize,
    pub unverified: usize,
    pub none: usize,
    pub reconfigure: usize,
    pub cannot_repair: usize,
    pub repaired: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    pub fn of<T: Tally>(
        roots: &[T],
        keys_checked: usize,
        fallbacks_checked: usize,
        fix: bool,
    ) -> Summary {
        let mut s = Summary {
            roots: roots.len(),
            keys_checked,
            fallbacks_checked,
            fix,
            ..Summary::default()
        };
        for root in roots {
            match root.verdict() {
                Shown::Valid => s.valid += 1,
                Shown::Rejected => s.rejected += 1,
                Shown::None => s.none += 1,
                Shown::Unverified | Shown::Unreadable => s.unverified += 1,
            }
            match root.action() {
                Action::None => {}
                Action::Reconfigure => s.reconfigure += 1,
                Action::CannotRepair => s.cannot_repair += 1,
            }
            match root.result() {
                Some(RepairResult::Repaired) => s.repaired += 1,
                Some(RepairResult::Failed) => s.failed += 1,
                Some(RepairResult::Skipped) => s.skipped += 1,
                None => {}
            }
        }
        s
    }

    /// Without `--fix`: 4 if some root cannot be repaired, else 3 if a repair is due, else 0. With
    /// `--fix`: 1 if a repair failed or was skipped, else 4 if some root cannot be repaired, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.fix && self.failed + self.skipped > 0 {
            exit::REPAIR_FAILED
        } else if self.cannot_repair > 0 {
            exit::CANNOT_REPAIR
        } else if !self.fix && self.reconfigure > 0 {
            exit::REPAIR_DUE
        } else {
            exit::NOTHING_TO_DO
        }
    }
}

/// The whole sweep.
#[derive(Debug, Serialize)]
pub struct Sweep {
    pub tfshim_version: &'static str,
    pub dir: String,
    pub fix: bool,
    pub roots: Vec<Root>,
    pub keys_checked: usize,
    pub fallbacks_checked: usize,
    pub summary: Summary,
}

/// Paths named in one note; the table lists them all.
const NOTE_PATHS: usize = 5;

impl Sweep {
    pub fn new(dir: String, roots: Vec<Root>, summary: Summary) -> Sweep {
        Sweep {
            tfshim_version: TFSHIM_VERSION,
            dir,
            fix: summary.fix,
            roots,
            keys_checked: summary.keys_checked,
            fallbacks_checked: summary.fallbacks_checked,
            summary,
        }
    }

    /// The table, its notes and the summary line.
    pub fn to_human(&self, color: bool) -> String {
        let mut rows: Vec<[(String, Tone); 6]> = vec![[
            ("PATH".to_owned(), Tone::Plain),
            ("BACKEND".into(), Tone::Plain),
            ("KEY".into(), Tone::Plain),
            ("VERDICT".into(), Tone::Plain),
            ("ACTION".into(), Tone::Plain),
            ("RESULT".into(), Tone::Plain),
        ]];
        // Explanations, each said once for all the roots it applies to (a rotated key is usually
        // saved in many roots).
        let mut notes: Vec<(String, Vec<String>)> = Vec::new();
        let mut note = |message: String, path: &str| match notes.iter_mut().find(|n| n.0 == message)
        {
            Some(n) => n.1.push(path.to_owned()),
            None => notes.push((message, vec![path.to_owned()])),
        };
        for r in &self.roots {
            let path = r.text.path.clone();
            if let Some(why) = &r.reason {
                // An unreadable file's reason starts with its path, which the note already names.
                let (file, short) = &r.text.saved_file;
                let why = match why.strip_prefix(&format!("{file}: ")) {
                    Some(rest) => format!("{short}: {rest}"),
                    None => why.to_owned(),
                };
                note(why, &path);
            }
            if let (Some(RepairResult::Failed | RepairResult::Skipped), Some(why)) =
                (r.result, &r.result_reason)
            {
                note(why.clone(), &path);
            }
            if r.action == Action::CannotRepair {
                note(
                    format!(
                        "{}; put the rotated key where terraform finds it (looked in {})",
                        r.action_reason, r.text.looked_in
                    ),
                    &path,
                );
            }
            let verdict = match &r.code {
                Some(code) => format!("{} ({code})", r.verdict),
                None => r.verdict.to_string(),
            };
            let action_tone = match r.action {
                // A table of mostly `none`: only what needs attention stands out.
                Action::None => Tone::Plain,
                other => other.tone(),
            };
            let dash = || "-".to_owned();
            rows.push([
                (path, Tone::Plain),
                (r.backend.clone().unwrap_or_else(dash), Tone::Plain),
                (
                    r.access_key
                        .clone()
                        .or_else(|| r.credential.clone())
                        .unwrap_or_else(dash),
                    Tone::Plain,
                ),
                (verdict, r.verdict.tone()),
                (r.action.to_string(), action_tone),
                (
                    r.result.map_or_else(dash, |o| o.to_string()),
                    r.result.map_or(Tone::Plain, RepairResult::tone),
                ),
            ]);
        }
        let mut widths = [0usize; 6];
        for row in &rows {
            for (w, (cell, _)) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &rows {
            let mut line = String::new();
            for (i, ((cell, tone), w)) in row.iter().zip(widths).enumerate() {
                line.push_str(&paint(cell, *tone, color));
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(w - cell.chars().count()));
                    line.push_str("  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for (message, paths) in notes {
            let mut shown = paths.iter().take(NOTE_PATHS).cloned().collect::<Vec<_>>();
            if paths.len() > NOTE_PATHS {
                shown.push(format!("and {} more", paths.len() - NOTE_PATHS));
            }
            out.push_str(&format!("note: {}: {message}\n", shown.join(", ")));
        }
        out.push_str(&summary_line(&self.summary, &self.dir));
        out.push('\n');
        out
    }
}

fn summary_line(s: &Summary, dir: &str) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "{}, {} checked, {}: {} valid, {} rejected, {} unverified, {} without a saved key",
        plural(s.roots, "root", "roots"),
        plural(s.keys_checked, "distinct key", "distinct keys"),
        plural(s.fallbacks_checked, "fallback check", "fallback checks"),
        s.valid,
        s.rejected,
        s.unverified,
        s.none,
    );
    if s.fix {
        line.push_str(&format!(
            "; {} repaired, {} failed, {} skipped",
            s.repaired, s.failed, s.skipped
        ));
    } else if s.reconfigure > 0 {
        line.push_str(&format!(
            "; {} due (run `{}`)",
            plural(s.reconfigure, "repair", "repairs"),
            super::command::shim("sweep", Some(std::path::Path::new(dir)), "--fix")
        ));
    }
    if s.cannot_repair > 0 {
        line.push_str(&format!(
            "; {} cannot be repaired (no working fallback credentials)",
            s.cannot_repair
        ));
    }
    line
}
