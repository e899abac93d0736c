//! `shim sweep --fix`: each stale root repaired with the proxy's [`KeyRemoval`], one at a time.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::Path;

use anyhow::Result;

use crate::heal::repair::{self, KeyRemoval, Removal};
use crate::log;
use crate::proxy::locate;
use crate::report::{self, sweep::RepairResult, Action};

use super::discover::DATA_DIR;
use super::progress::Progress;
use super::Root;

/// What became of one stale root under `--fix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Repaired(String),
    Failed(String),
    Skipped(String),
}

impl Outcome {
    pub(super) fn result(&self) -> RepairResult {
        match self {
            Outcome::Repaired(_) => RepairResult::Repaired,
            Outcome::Failed(_) => RepairResult::Failed,
            Outcome::Skipped(_) => RepairResult::Skipped,
        }
    }
    pub(super) fn reason(&self) -> &str {
        match self {
            Outcome::Repaired(r) | Outcome::Failed(r) | Outcome::Skipped(r) => r,
        }
    }
}

/// The environment of the terraform a repair runs: the proxy's (the recursion counter, so that a
/// loop stops; `TFSHIM_MODE=off`, so that a tfshim found as `terraform` passes through).
fn repair_env() -> Result<Vec<(OsString, OsString)>> {
    let count = locate::next_recursion_count(crate::settings::get().recursion_count.as_deref())?
        .to_string();
    Ok(repair::child_env(&[(
        OsString::from(locate::RECURSION_VAR),
        OsString::from(count),
    )]))
}

/// Repairs every root whose action is `reconfigure`, one at a time. Returns the signal that
/// interrupted a repair, if one did (the rest are then skipped).
pub(super) fn repair_all(
    roots: &mut [Root],
    terraform: &Path,
    progress: &Progress,
) -> Result<Option<i32>> {
    let env = repair_env()?;
    // Successful inits would bury the report; a failed one's output is shown anyway.
    let show_output = log::debug_enabled();
    let no_color = !report::color_on(&io::stderr());
    let due = roots
        .iter()
        .filter(|r| r.action == Action::Reconfigure)
        .count();
    progress.update(true, |p| p.repairs_due = due);
    let mut interrupted = None;
    for root in roots.iter_mut() {
        if root.action != Action::Reconfigure {
            continue;
        }
        if interrupted.is_some() {
            root.outcome = Some(Outcome::Skipped("the sweep was interrupted".into()));
            continue;
        }
        let Some(cred) = root.findings.cred.as_deref() else {
            continue;
        };
        // The sweep read `<root>/.terraform` and that root's selected workspace: the repair's init
        // must use the same, whatever TF_DATA_DIR or TF_WORKSPACE this shell exports for its own use.
        let workspace = fs::read_to_string(root.findings.data_dir.join("environment"))
            .ok()
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "default".into());
        let mut root_env = env.clone();
        root_env.push(("TF_DATA_DIR".into(), DATA_DIR.into()));
        root_env.push(("TF_WORKSPACE".into(), workspace.into()));
        let job = KeyRemoval {
            terraform,
            // Run in the root, not with `-chdir`: 0.12–0.14 have none (#21).
            global_args: Vec::new(),
            data_dir: &root.findings.data_dir,
            env: &root_env,
            no_color,
            show_output,
        };
        // A failed init prints its output and the restore says so: not across the live line.
        progress.clear();
        let result = job.run_in(Some(&root.path), cred, root.findings.ambient());
        log::debug(|| format!("repair of {}: {result:?}", root.path.display()));
        let outcome = match result {
            Ok(Removal::Done) => Outcome::Repaired("re-initialised without the saved key".into()),
            Ok(Removal::AlreadyDone) => {
                Outcome::Repaired("another run had already removed the saved key".into())
            }
            Ok(Removal::Skipped(why)) => Outcome::Skipped(why),
            Ok(Removal::Failed(code)) => Outcome::Failed(format!(
                "terraform init -reconfigure failed (exit {code}); the saved backend was left as it was"
            )),
            Ok(Removal::Interrupted(sig)) => {
                interrupted = Some(sig);
                Outcome::Failed(format!(
                    "interrupted by signal {sig}; the saved backend is as before or fully repaired"
                ))
            }
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
        let repaired = matches!(outcome, Outcome::Repaired(_));
        progress.update(true, |p| p.repaired += usize::from(repaired));
        root.outcome = Some(outcome);
    }
    Ok(interrupted)
}
