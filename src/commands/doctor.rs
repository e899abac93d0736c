//! `tfshim shim doctor`: the preflight's facts, shown instead of acted on. Changes nothing.
//!
//! Unlike the proxy, doctor asks every question (the saved key and the fallback credentials) so the
//! report is complete; the action it names is what `decide` would choose on the next `plan`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::backends::warnings::Warning;
use crate::heal::decide::Saved;
use crate::heal::facts::Findings;
use crate::proxy::locate::{self, Located};
use crate::report::{self, Action, Report, TerraformInfo};

/// Exit codes: a repair is due / the saved key is stale and nothing can replace it.
const REPAIR_DUE: u8 = 3;
const CANNOT_REPAIR: u8 = 4;

pub fn run(chdir: Option<PathBuf>, json: bool, located: Result<Located>) -> Result<ExitCode> {
    let work_dir = chdir.unwrap_or_else(|| PathBuf::from("."));
    let data_dir = match std::env::var_os("TF_DATA_DIR").filter(|d| !d.is_empty()) {
        Some(d) => work_dir.join(d),
        None => work_dir.join(".terraform"),
    };
    let mut f = Findings::gather(&work_dir, data_dir);
    if f.saved == Saved::StaticKey {
        f.check_saved();
    }
    if matches!(f.target, Some(Ok(_))) {
        f.check_ambient();
    }
    let mut warnings = Vec::new();
    let terraform = match located {
        Ok(l) => Some(TerraformInfo {
            version: locate::version_of(&l.path),
            found: format!("{} {}", l.engine.binary_name(), l.source),
            path: l.path,
        }),
        Err(e) => {
            warnings.push(Warning {
                code: "terraform-not-found",
                message: format!("{e:#}"),
            });
            None
        }
    };
    warnings.extend(f.security_warnings(&work_dir));
    let action = report::next_plan(&f);
    let report = Report::new(&f, terraform, action, warnings);
    if json {
        report::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report.to_json())?
        ));
    } else {
        report::out(&report.to_human(report::stdout_color()));
    }
    Ok(ExitCode::from(match report.action {
        Action::None => 0,
        Action::Reconfigure => REPAIR_DUE,
        Action::CannotRepair => CANNOT_REPAIR,
    }))
}
