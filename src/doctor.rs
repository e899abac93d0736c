//! `tfshim shim doctor`: the preflight's facts, shown instead of acted on. Changes nothing.
//!
//! Unlike the proxy, doctor asks every question (the saved key and the fallback credentials) so the
//! report is complete; the action it names is what `decide` would choose on the next `plan`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::Result;

use crate::decide::Saved;
use crate::facts::Findings;
use crate::locate::Located;
use crate::report::{self, Action, Report, TerraformInfo};
use crate::warnings::{self, Warning};

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
            version: version_of(&l.path),
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
    warnings.extend(security_warnings(&f, &work_dir));
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

/// The warnings about what the saved backend exposes (and git's view of it when it holds secrets).
pub fn security_warnings(f: &Findings, work_dir: &Path) -> Vec<Warning> {
    let Some(b) = &f.backend else {
        return Vec::new();
    };
    let mut out = warnings::backend_warnings(b);
    if !out.is_empty() {
        out.extend(warnings::git_warnings(work_dir, &b.path));
    }
    out
}

/// The first line of `terraform version`.
pub fn version_of(path: &Path) -> Option<String> {
    let out = Command::new(path)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .env("TFSHIM_MODE", "off")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_owned)
}
