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
use crate::heal::decide::Saved;
use crate::heal::facts::Findings;
use crate::heal::outcome;
use crate::proxy::locate::{self, Located};
use crate::report;

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
        Ok(l) => Some(outcome::terraform_info(
            &l.path,
            format!("{} {}", l.engine.binary_name(), l.source),
            locate::version_of(&l.path),
        )),
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
    let doc = outcome::doctor_report(&f, terraform, outcome::next_plan(&f), warnings);
    if json {
        report::out(&report::to_json(&doc)?);
    } else {
        report::out(&doc.to_human(report::color_on(&std::io::stdout())));
    }
    Ok(ExitCode::from(doc.action.exit_code()))
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
