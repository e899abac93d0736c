//! `tfshim shim sweep [DIR] [--fix] [--json] [--jobs N]`: the proxy's check and repair, for every
//! Terraform root under a directory at once (issue #7).
//!
//! A rotation usually kills one key that dozens or hundreds of roots saved. Running `plan` in each
//! (or `shim doctor` in each) would ask STS about the same key again and again, so the sweep reads
//! every saved backend first (no network), groups the roots by what a check depends on — the saved
//! credentials and where terraform would send the STS call ([`Target`]) — and asks STS once per
//! group, a few groups at a time. The fallback credentials are checked once per distinct
//! (target, profile settings) among the rejected groups. The cost grows with the distinct keys, not
//! with the roots.
//!
//! Everything after the checks is the proxy's own code: [`decide::next`] chooses each root's action
//! from the same facts, [`report`] renders verdicts the way `shim doctor` does, and `--fix` repairs
//! with [`KeyRemoval`] (same lock, same preserved settings, same invariants, same rollback), one root
//! at a time: each repair is a `terraform init`, and the lock already serialises a root with any
//! proxied run in it.

//!
//! The parts: [`discover`] finds the roots, [`checks`] asks STS once per group on a bounded pool,
//! [`repair`] repairs, [`progress`] draws the live line; this module wires them together and turns
//! the roots into the typed report (`report::sweep`, which renders it and gives the exit code).

mod checks;
mod discover;
mod progress;
mod repair;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::backends::saved::SAVED_FILE;
use crate::heal::facts::Findings;
use crate::heal::outcome;
use crate::proxy::exec::signal_exit_code;
use crate::proxy::locate::Located;
use crate::report::sweep::{RepairResult, RootText, Summary, Tally};
use crate::report::{self, exit, Action, Shown};

// Also `forget-keys --all`'s roots.
pub use discover::find_roots;
use discover::DATA_DIR;
use progress::Progress;
pub(crate) use repair::Outcome;

/// Default of `--jobs`: STS checks in flight at once. Small, to stay far below STS's request rate
/// limits and not to look like a burst to whoever watches the account.
pub const DEFAULT_JOBS: usize = 4;

pub struct Options {
    pub dir: PathBuf,
    pub fix: bool,
    pub json: bool,
    pub jobs: usize,
}

/// One root and everything learnt about it.
pub(crate) struct Root {
    pub(crate) path: PathBuf,
    pub(crate) findings: Findings,
    /// Index into the saved-key groups, when its key is checked.
    pub(crate) group: Option<usize>,
    pub(crate) action: Action,
    pub(crate) action_reason: String,
    pub(crate) outcome: Option<Outcome>,
}

pub fn run(opts: Options, located: Result<Located>) -> Result<ExitCode> {
    // Fail before any request when a repair is asked for and no terraform can do it (exit 127).
    let terraform = if opts.fix { Some(located?) } else { None };
    if !opts.dir.is_dir() {
        bail!("{} is not a directory", opts.dir.display());
    }
    let progress = Progress::new(io::IsTerminal::is_terminal(&io::stderr()));

    let mut unreadable = Vec::new();
    let paths = discover::find_roots_noting(
        &opts.dir,
        &mut |_| progress.update(false, |p| p.roots += 1),
        &mut |dir, e| unreadable.push(format!("{} ({e})", dir.display())),
    );
    let mut roots: Vec<Root> = paths
        .into_iter()
        .map(|path| {
            if opts.fix {
                // A repair killed in this root left its backup: put things right before reading,
                // as a proxied run would (`--fix` may change files; a plain sweep never does).
                crate::heal::datadir::recover_if_interrupted(&path.join(discover::DATA_DIR));
            }
            let findings = Findings::gather(&path, path.join(discover::DATA_DIR));
            Root {
                path,
                findings,
                group: None,
                action: Action::None,
                action_reason: String::new(),
                outcome: None,
            }
        })
        .collect();

    let (keys_checked, fallbacks_checked) = checks::check_all(&mut roots, opts.jobs, &progress);

    let mut interrupted = None;
    if let Some(located) = &terraform {
        interrupted = repair::repair_all(&mut roots, &located.path, &progress)?;
    }
    progress.clear();
    // Said on stderr (the report on stdout keeps its schema); a sweep that may have missed roots
    // does not exit 0 (issue #20, item 12).
    for dir in &unreadable {
        crate::log::say(&format!(
            "sweep: cannot read {dir}; any root under it was not checked"
        ));
    }

    let summary = Summary::of(&roots, keys_checked, fallbacks_checked, opts.fix);
    let mut code = summary.exit_code();
    if code == exit::NOTHING_TO_DO && !unreadable.is_empty() {
        code = exit::UNREADABLE;
    }
    let doc = document(&opts.dir, &roots, summary);
    if opts.json {
        report::out(&report::to_json(&doc)?);
    } else {
        report::out(&doc.to_human(report::color_on(&io::stdout())));
    }
    if let Some(sig) = interrupted {
        return Ok(ExitCode::from(signal_exit_code(sig)));
    }
    Ok(ExitCode::from(code))
}

/// The saved key's verdict, code and reason, as a sweep row shows them.
fn verdict_of(f: &Findings) -> (Shown, Option<String>, Option<String>) {
    outcome::saved_verdict(f)
}

impl Tally for Root {
    fn verdict(&self) -> Shown {
        verdict_of(&self.findings).0
    }
    fn action(&self) -> Action {
        self.action
    }
    fn result(&self) -> Option<RepairResult> {
        self.outcome.as_ref().map(Outcome::result)
    }
}

/// The sweep's document.
pub(crate) fn document(dir: &Path, roots: &[Root], summary: Summary) -> report::sweep::Sweep {
    let rows = roots
        .iter()
        .map(|r| {
            let f = &r.findings;
            let (verdict, code, reason) = verdict_of(f);
            let saved = f.cred.as_deref().filter(|c| c.present());
            let s3 = saved.is_some_and(|c| c.kind() == "s3");
            report::sweep::Root {
                path: r.path.display().to_string(),
                backend: f.backend.as_ref().map(|b| b.kind.clone()),
                access_key: saved.filter(|_| s3).map(|c| c.shown()),
                credential: saved.filter(|_| !s3).map(|c| c.label()),
                verdict,
                code,
                reason,
                action: r.action,
                action_reason: r.action_reason.clone(),
                result: r.outcome.as_ref().map(Outcome::result),
                result_reason: r.outcome.as_ref().map(|o| o.reason().to_owned()),
                text: RootText {
                    path: relative(&r.path, dir),
                    saved_file: (
                        f.data_dir.join(SAVED_FILE).display().to_string(),
                        format!("{DATA_DIR}/{SAVED_FILE}"),
                    ),
                    looked_in: if r.action == Action::CannotRepair {
                        f.cred
                            .as_deref()
                            .map(|c| c.looked(&crate::heal::facts::env_var))
                            .unwrap_or_default()
                    } else {
                        String::new()
                    },
                },
            }
        })
        .collect();
    report::sweep::Sweep::new(dir.display().to_string(), rows, summary)
}

/// `path` as found under `dir`, for the table: `apps/web`, or `.` for `dir` itself.
fn relative(path: &Path, dir: &Path) -> String {
    match path.strip_prefix(dir) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::exit::{CANNOT_REPAIR, REPAIR_DUE, REPAIR_FAILED};

    pub(super) fn saved_file(dir: &Path, text: &str) {
        std::fs::create_dir_all(dir.join(DATA_DIR)).unwrap();
        std::fs::write(dir.join(DATA_DIR).join(SAVED_FILE), text).unwrap();
    }

    fn root_with(saved: &str, action: Action, outcome: Option<Outcome>) -> Root {
        let t = tempfile::tempdir().unwrap();
        saved_file(t.path(), saved);
        Root {
            path: t.path().to_path_buf(),
            findings: Findings::gather(t.path(), t.path().join(DATA_DIR)),
            group: None,
            action,
            action_reason: String::new(),
            outcome,
        }
    }

    const NO_KEY: &str =
        r#"{"version":3,"backend":{"type":"s3","config":{"bucket":"b"},"hash":1}}"#;

    #[test]
    fn verdicts_and_exit_codes() {
        let broken = root_with("{not json", Action::None, None);
        assert_eq!(verdict_of(&broken.findings).0, "unverified");
        assert!(verdict_of(&broken.findings)
            .2
            .as_deref()
            .unwrap()
            .contains("not valid JSON"));
        let plain = root_with(NO_KEY, Action::None, None);
        assert_eq!(verdict_of(&plain.findings).0, "none");
        let code = |roots: &[Root], fix| Summary::of(roots, 0, 0, fix).exit_code();
        assert_eq!(code(&[], false), 0);
        let due = || root_with(NO_KEY, Action::Reconfigure, None);
        let stuck = || root_with(NO_KEY, Action::CannotRepair, None);
        assert_eq!(code(&[due()], false), REPAIR_DUE);
        assert_eq!(code(&[due(), stuck()], false), CANNOT_REPAIR);
        let fixed = || {
            root_with(
                NO_KEY,
                Action::Reconfigure,
                Some(Outcome::Repaired(String::new())),
            )
        };
        let failed = || {
            root_with(
                NO_KEY,
                Action::Reconfigure,
                Some(Outcome::Failed(String::new())),
            )
        };
        assert_eq!(code(&[fixed()], true), 0);
        assert_eq!(code(&[fixed(), stuck()], true), CANNOT_REPAIR);
        assert_eq!(code(&[fixed(), failed(), stuck()], true), REPAIR_FAILED);
    }
}
