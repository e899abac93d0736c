//! `tfshim shim doctor`: the preflight's facts, shown instead of acted on. Changes nothing.
//!
//! Unlike the proxy, doctor asks every question (the saved key and the fallback credentials) so the
//! report is complete; the action it names is what `decide` would choose on the next `plan`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::backends::saved;
use crate::backends::warnings::Warning;
use crate::heal::datadir;
use crate::heal::decide::{Mode, Saved};
use crate::heal::facts::Findings;
use crate::heal::outcome;
use crate::proxy::locate::{self, Located};
use crate::report::{self, Action};

pub fn run(chdir: Option<PathBuf>, json: bool, located: Result<Located>) -> Result<ExitCode> {
    let work_dir = chdir.unwrap_or_else(|| PathBuf::from("."));
    readable_dir(&work_dir)?;
    let data_dir = saved::data_dir(&work_dir, std::env::var_os("TF_DATA_DIR").as_deref());
    let mut f = Findings::gather(&work_dir, data_dir);
    f.terraform = located.as_ref().ok().map(|l| l.path.clone());
    if f.saved == Saved::StaticKey {
        f.check_saved();
    }
    if f.fallback_checkable() {
        f.check_ambient();
    }
    let mut warnings = Vec::new();
    let terraform = match located {
        Ok(l) => {
            let version = locate::version_of(&l.path);
            let saved_by = f.backend.as_ref().map(|b| b.terraform_version());
            if let (Some(running), Some(saved_by)) = (&version, saved_by) {
                if let Some(message) = written_by_another_version(saved_by.as_deref(), running) {
                    warnings.push(Warning {
                        code: "saved-by-other-version",
                        message,
                    });
                }
            }
            Some(outcome::terraform_info(
                &l.path,
                format!("{} {}", l.engine.binary_name(), l.source),
                version,
            ))
        }
        Err(e) => {
            warnings.push(Warning {
                code: "terraform-not-found",
                message: format!("{e:#}"),
            });
            None
        }
    };
    warnings.extend(f.security_warnings(&work_dir));
    if let Some(message) = datadir::interrupted_repair(&f.data_dir) {
        warnings.push(Warning {
            code: "interrupted-repair",
            message,
        });
    }
    // What the next plan does under the mode in force, beside what `fix` would do (#22).
    // The snapshot's mode: an invalid `TFSHIM_MODE` was said once, when it was read.
    let mode = crate::settings::get().mode;
    let doc = outcome::doctor_report(&f, terraform, outcome::next_plan(&f), warnings)
        .under_mode(outcome::mode_name(mode), outcome::next_plan_under(&f, mode));
    if json {
        report::out(&report::to_json(&doc)?);
    } else {
        report::out(&doc.to_human(report::color_on(&std::io::stdout())));
    }
    let unreadable = matches!(f.saved, Saved::Unreadable(_));
    Ok(ExitCode::from(exit_code(mode, doc.fix_action, unreadable)))
}

/// doctor's exit code: what is due under `fix` (under `warn` too: the repair is due, by hand),
/// 5 for a saved file that cannot be read and nothing else to say; under `off` 0, for tfshim will
/// do nothing. Pure.
fn exit_code(mode: Mode, fix: Action, unreadable: bool) -> u8 {
    match (mode, fix.exit_code()) {
        (Mode::Off, _) => report::exit::NOTHING_TO_DO,
        (_, report::exit::NOTHING_TO_DO) if unreadable => report::exit::UNREADABLE,
        (_, code) => code,
    }
}

/// A root doctor cannot read is an error naming it (exit 1), not a clean report of an empty
/// directory: `-chdir=/nonexistent` or a directory of another user's would otherwise read as
/// "nothing to do" (issue #20, item 12).
fn readable_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Err(e) => bail!("cannot diagnose {}: {e}", dir.display()),
        Ok(m) if !m.is_dir() => bail!("cannot diagnose {}: not a directory", dir.display()),
        Ok(_) => match std::fs::read_dir(dir) {
            Err(e) => bail!("cannot diagnose {}: cannot read it ({e})", dir.display()),
            Ok(_) => Ok(()),
        },
    }
}

/// When the saved backend was written by another terraform version than `running` (`terraform
/// version`'s first line), what to do about it (#21): a new version may hash the same backend block
/// anew and ask for an `init`, and `shim reinit` is the one that keeps every saved setting. Known
/// only where the file says: 1.1+ record `terraform_version`; ≤ 1.0 record none (0.12's file and
/// 0.13's look the same), so such a file is known to be another version's only under 1.1+. Pure.
fn written_by_another_version(saved_by: Option<&str>, running: &str) -> Option<String> {
    let running = running.trim().strip_prefix("Terraform v")?;
    let (major, minor) = {
        let mut parts = running.split('.');
        let major: u64 = parts.next()?.parse().ok()?;
        let minor: u64 = parts.next()?.parse().ok()?;
        (major, minor)
    };
    let writer = match saved_by {
        Some(v) if v != running => format!("terraform {v}"),
        Some(_) => return None,
        None if (major, minor) >= (1, 1) => "terraform 1.0 or older".to_owned(),
        None => return None,
    };
    Some(format!(
        "the saved backend was written by {writer}, this is {running}: if terraform asks to \
         reinitialise the backend, run `{}` (init -reconfigure with every saved backend setting)",
        crate::report::command::shim("reinit", None, "")
    ))
}

#[cfg(test)]
mod tests {
    use super::written_by_another_version as other;
    use super::*;

    #[test]
    fn exit_code_follows_the_mode() {
        assert_eq!(exit_code(Mode::Fix, Action::Reconfigure, false), 3);
        assert_eq!(exit_code(Mode::Warn, Action::Reconfigure, false), 3);
        assert_eq!(exit_code(Mode::Warn, Action::CannotRepair, false), 4);
        assert_eq!(exit_code(Mode::Off, Action::Reconfigure, false), 0);
        assert_eq!(exit_code(Mode::Off, Action::None, true), 0);
        assert_eq!(exit_code(Mode::Fix, Action::None, true), 5);
        assert_eq!(exit_code(Mode::Fix, Action::None, false), 0);
    }

    #[test]
    fn another_version_wrote_the_saved_file() {
        let said = other(Some("1.5.7"), "Terraform v1.11.4").unwrap();
        assert!(said.contains("terraform 1.5.7, this is 1.11.4"), "{said}");
        assert!(said.contains("shim reinit"), "{said}");
        assert_eq!(other(Some("1.11.4"), "Terraform v1.11.4"), None);
        let said = other(None, "Terraform v1.11.4").unwrap();
        assert!(said.contains("1.0 or older"), "{said}");
        // ≤ 1.0 record no version: 0.12's file cannot be told from 0.13's.
        assert_eq!(other(None, "Terraform v0.13.4"), None);
        assert_eq!(other(None, "Terraform v1.0.3"), None);
        assert_eq!(other(None, "Terraform v0.15.0-rc2"), None);
        // Not terraform's version line (OpenTofu says `OpenTofu v…`): nothing said.
        assert_eq!(other(Some("1.6.0"), "OpenTofu v1.8.0"), None);
    }
}
