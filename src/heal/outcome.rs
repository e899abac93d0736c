//! What the findings, a decision and a repair mean to the user: the one place where a final
//! [`Step`] or a [`Removal`] becomes an [`Action`] and its reason, and where the findings of a data
//! dir become the typed report (`report::Doctor`, a sweep row's verdict).
//!
//! Pure: reads the findings, asks nothing, changes nothing.

use std::path::Path;

use crate::aws::verdict::Verdict;
use crate::backends::warnings::Warning;
use crate::heal::decide::{self, CommandClass, Facts, InitChange, Mode, Saved, Step};
use crate::heal::facts::Findings;
use crate::heal::repair::Removal;
use crate::report::{
    Action, AmbientCredentials, BackendInfo, Doctor, Plan, SavedCredentials, Shown, TerraformInfo,
    TFSHIM_VERSION,
};

/// The action a final decision step stands for, and why.
pub fn plan_of(step: &Step, f: &Findings) -> Plan {
    // `key AKIA…QXGR` (S3), `password (user ci)` (http).
    let key = f.label();
    match step {
        Step::Repair => Plan::new(
            Action::Reconfigure,
            format!("the saved {key} is rejected and the fallback credentials work"),
        ),
        Step::Refuse => Plan::new(
            Action::CannotRepair,
            format!("the saved {key} is rejected and no working credentials were found"),
        ),
        Step::RunUnchecked(why) => Plan::new(Action::None, format!("no verdict: {why}")),
        Step::AmbientUnchecked(why) => Plan::new(
            Action::None,
            format!(
                "the saved {key} is rejected, but the fallback credentials could not be \
                 checked ({why})"
            ),
        ),
        Step::KeyInConfiguration(file) => Plan::new(
            Action::CannotRepair,
            format!(
                "the saved key {key} is rejected, and the backend block in {file} writes it: \
                 re-initialising cannot remove it; replace or remove it there"
            ),
        ),
        Step::WarnStale => Plan::new(
            Action::None,
            format!("the saved {key} is rejected; TFSHIM_MODE=warn"),
        ),
        _ => match (f.has_saved_credential(), f.saved_verdict()) {
            (false, _) => Plan::new(Action::None, "no static key is saved"),
            (true, Some(Verdict::Valid { .. })) => Plan::new(
                Action::None,
                format!(
                    "the saved {} works",
                    f.label().split(' ').next().unwrap_or("key")
                ),
            ),
            _ => Plan::new(Action::None, "nothing to do"),
        },
    }
}

/// What the next backend-loading command would do with these findings (for `shim doctor` and `shim
/// sweep`, which gather every verdict first): the proxy's own decision.
pub fn next_plan(f: &Findings) -> Plan {
    let facts = Facts {
        mode: Mode::Fix,
        class: CommandClass::LoadsBackend,
        saved: f.saved.clone(),
        init_change: InitChange::Same,
        saved_verdict: f.saved_verdict().cloned(),
        ambient_verdict: f.ambient().map(|a| a.verdict.clone()),
        key_in_config: f.key_in_config.as_ref().map(|p| p.display().to_string()),
    };
    // With every verdict known, the decision is final at once.
    plan_of(&decide::next(&facts), f)
}

/// What the next backend-loading command does under `mode` (`shim doctor`, #22): under `fix` the
/// same as [`next_plan`]; under `warn` the stale key is only said; under `off` nothing is checked.
pub fn next_plan_under(f: &Findings, mode: Mode) -> Plan {
    let fix = next_plan(f);
    match mode {
        Mode::Fix => fix,
        Mode::Warn if fix.action == Action::None => fix,
        Mode::Warn => Plan::new(
            Action::None,
            format!(
                "TFSHIM_MODE=warn: the next plan says the saved {} is rejected and changes \
                 nothing",
                f.label()
            ),
        ),
        Mode::Off => Plan::new(
            Action::None,
            "TFSHIM_MODE=off: the next plan runs terraform unchecked",
        ),
    }
}

/// `TFSHIM_MODE`'s value for a report.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Fix => "fix",
        Mode::Warn => "warn",
        Mode::Off => "off",
    }
}

/// What a repair did.
pub fn plan_after(removal: &Removal) -> Plan {
    match removal {
        Removal::Done => Plan::new(
            Action::Reconfigure,
            "the backend was re-initialised without the rejected key",
        ),
        Removal::AlreadyDone => Plan::new(
            Action::None,
            "another run had already re-initialised the backend",
        ),
        Removal::Skipped(why) => Plan::new(Action::CannotRepair, format!("not repaired: {why}")),
        Removal::Failed(code) => Plan::new(
            Action::CannotRepair,
            format!("the repair's init failed (exit {code}); the saved backend is as it was"),
        ),
        Removal::Interrupted(sig) => {
            Plan::new(Action::None, format!("interrupted by signal {sig}"))
        }
    }
}

/// What a credential-only `init` that tfshim completed with `-reconfigure` did.
pub fn plan_after_reconfigured_init() -> Plan {
    Plan::new(
        Action::Reconfigure,
        "a credential-only init: -reconfigure added, every other setting kept",
    )
}

/// The terraform a report names.
pub fn terraform_info(path: &Path, found: String, version: Option<String>) -> TerraformInfo {
    TerraformInfo {
        path: path.display().to_string(),
        found,
        version,
    }
}

/// A verdict's code, ARN and reason, as the report shows them.
fn details(v: Option<&Verdict>) -> (Option<String>, Option<String>, Option<String>) {
    match v {
        Some(Verdict::Valid { arn }) => (None, Some(arn.clone()), None),
        Some(Verdict::Rejected { code }) => (Some(code.clone()), None, None),
        Some(Verdict::Unknown { reason }) => (None, None, Some(reason.clone())),
        Some(Verdict::Missing) => (None, None, Some("no credentials found".into())),
        None => (None, None, Some("not checked".into())),
    }
}

fn shown(v: Option<&Verdict>) -> Shown {
    match v {
        Some(Verdict::Valid { .. }) => Shown::Valid,
        Some(Verdict::Rejected { .. }) => Shown::Rejected,
        Some(Verdict::Missing) => Shown::None,
        Some(Verdict::Unknown { .. }) | None => Shown::Unverified,
    }
}

/// The saved key and its verdict.
fn saved_credentials(f: &Findings) -> SavedCredentials {
    let Some(c) = f.cred.as_ref().filter(|c| c.present()) else {
        // A saved file that cannot be read holds a key or not: unknown, not "none" (#22).
        let (verdict, reason) = match &f.saved {
            Saved::Unreadable(why) => (Shown::Unreadable, Some(why.clone())),
            _ => (Shown::None, None),
        };
        return SavedCredentials {
            present: false,
            access_key: None,
            credential: None,
            verdict,
            code: None,
            arn: None,
            reason,
        };
    };
    let v = f.saved_verdict();
    let (code, arn, reason) = details(v);
    let reason = match (&f.saved, v) {
        (Saved::ValidationSkipped, None) => Some("skip_credentials_validation is set".into()),
        (Saved::Uncheckable(why), None) => Some(why.clone()),
        _ => reason,
    };
    let s3 = c.kind() == "s3";
    SavedCredentials {
        present: true,
        access_key: s3.then(|| c.shown()),
        credential: (!s3).then(|| c.label()),
        verdict: shown(v),
        code,
        arn,
        reason,
    }
}

/// The report on one data dir (`shim doctor`, `TFSHIM_REPORT`).
pub fn doctor_report(
    f: &Findings,
    terraform: Option<TerraformInfo>,
    plan: Plan,
    warnings: Vec<Warning>,
) -> Doctor {
    let backend = match &f.backend {
        Some(b) => Some(BackendInfo::Saved {
            kind: b.kind.clone(),
            path: b.path.display().to_string(),
            bucket: b.string("bucket").map(str::to_owned),
            key: b.string("key").map(str::to_owned),
            region: b.string("region").map(str::to_owned),
            address: (b.kind == "http")
                .then(|| b.string("address"))
                .flatten()
                .map(crate::backends::secrets::url_redacted),
        }),
        None => match &f.saved {
            Saved::Unreadable(why) => Some(BackendInfo::Unreadable { error: why.clone() }),
            _ => None,
        },
    };
    let ambient_credentials = match f.ambient() {
        None => AmbientCredentials {
            verdict: Shown::Unverified,
            source: None,
            arn: None,
            code: None,
            reason: Some("not checked".into()),
        },
        Some(a) => {
            let (code, arn, reason) = details(Some(&a.verdict));
            AmbientCredentials {
                verdict: shown(Some(&a.verdict)),
                source: Some(a.source.clone()),
                arn,
                code,
                reason,
            }
        }
    };
    Doctor {
        tfshim_version: TFSHIM_VERSION,
        terraform,
        data_dir: f.data_dir.display().to_string(),
        backend,
        saved_credentials: saved_credentials(f),
        ambient_credentials,
        action: plan.action,
        action_reason: plan.reason.clone(),
        warnings,
        // Under `fix`; a caller under another mode says so ([`Doctor::under_mode`]).
        mode: "fix",
        fix_action: plan.action,
        fix_action_reason: plan.reason,
    }
}

/// The saved key's verdict, code and reason, as `shim doctor` words them; a data dir whose saved
/// file cannot be read is `unverified` (doctor says `none` for its absent key, but here the file is
/// the subject).
pub fn saved_verdict(f: &Findings) -> (Shown, Option<String>, Option<String>) {
    if let Saved::Unreadable(why) = &f.saved {
        return (Shown::Unverified, None, Some(why.clone()));
    }
    let saved = saved_credentials(f);
    let reason = match saved.verdict {
        Shown::None => None,
        _ => saved.reason,
    };
    (saved.verdict, saved.code, reason)
}
