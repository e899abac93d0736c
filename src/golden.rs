//! Golden tests: the JSON and text that `shim doctor`, `shim sweep` and `TFSHIM_REPORT` produce for
//! fixed inputs, compared byte for byte with files captured from the code (tests/golden/). The JSON
//! schemas are a contract (keys only ever added) and the human text is what users read and grep: any
//! byte that changes must be a decision, made by regenerating the files and reviewing their diff.
//!
//! The inputs are deterministic: saved backends checked in under `tests/golden/roots/` and read
//! through relative paths (tests run in the package root), STS verdicts given by the table below (no
//! network), and profile settings written out in the saved files (so nothing depends on `HOME` or
//! `AWS_PROFILE`). Nothing is normalised.
//!
//! Regenerate: `TFSHIM_UPDATE_GOLDEN=1 cargo test --bin tfshim golden`, then review `git diff`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::aws::sts::Ambient;
use crate::aws::verdict::Verdict;
use crate::backends::warnings::{self, Warning};
use crate::commands::sweep::{self, Outcome, Root};
use crate::heal::decide::{Saved, Step};
use crate::heal::facts::Findings;
use crate::heal::outcome;
use crate::heal::preflight;
use crate::heal::repair::Removal;
use crate::report::sweep::Summary;
use crate::report::{self, Action, Doctor, TerraformInfo};

const ROOTS: &str = "tests/golden/roots";
const GOLDEN: &str = "tests/golden";

fn valid(arn: &str) -> Verdict {
    Verdict::Valid { arn: arn.into() }
}

fn rejected(code: &str) -> Verdict {
    Verdict::Rejected { code: code.into() }
}

fn ambient(verdict: Verdict, source: &str) -> Ambient {
    Ambient {
        verdict,
        source: source.into(),
    }
}

/// What STS says in each case: about the saved key, and about the fallback credentials.
fn verdicts(case: &str) -> (Option<Verdict>, Option<Ambient>) {
    let user = "arn:aws:iam::123456789012:user/ci";
    let profile = "profile ci (/aws/credentials)";
    match case {
        "s3-no-key" => (None, Some(ambient(valid(user), "profile default"))),
        "s3-valid" => (
            Some(valid("arn:aws:iam::123456789012:user/old")),
            Some(ambient(valid(user), profile)),
        ),
        "s3-rejected" | "s3-rejected-b" | "s3-rejected-c" => (
            Some(rejected("InvalidClientTokenId")),
            Some(ambient(valid(user), profile)),
        ),
        "s3-rejected-nofallback" => (
            Some(rejected("InvalidClientTokenId")),
            Some(ambient(Verdict::Missing, "none")),
        ),
        "s3-rejected-ambient-rejected" => (
            Some(rejected("SignatureDoesNotMatch")),
            Some(ambient(rejected("InvalidClientTokenId"), "environment")),
        ),
        "s3-rejected-ambient-unknown" => (
            Some(rejected("ExpiredToken")),
            Some(ambient(Verdict::unknown("timeout after 5s"), profile)),
        ),
        "s3-unknown" => (
            Some(Verdict::unknown("HTTP 503")),
            Some(ambient(valid(user), "environment")),
        ),
        // A rotated storage account key and no ARM_ACCESS_KEY / ARM_SAS_TOKEN (#24).
        "azurerm-secret" => (
            Some(rejected("AuthenticationFailed")),
            Some(ambient(
                Verdict::Missing,
                "ARM_ACCESS_KEY, ARM_SAS_TOKEN (not set)",
            )),
        ),
        "s3-skip-validation" => (None, Some(ambient(valid(user), "environment"))),
        _ => (None, None),
    }
}

/// The roots, as a sweep finds them.
fn cases() -> Vec<String> {
    sweep::find_roots(Path::new(ROOTS), &mut |_| {})
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn root_dir(case: &str) -> PathBuf {
    Path::new(ROOTS).join(case)
}

/// The findings of one case as `shim doctor` completes them: the saved key checked when there is
/// one to check, the fallback credentials whenever STS can be asked.
fn doctor_findings(case: &str) -> Findings {
    let dir = root_dir(case);
    let mut f = Findings::gather(&dir, dir.join(".terraform"));
    let (saved, amb) = verdicts(case);
    if f.saved == Saved::StaticKey {
        f.record_saved(saved.expect("a verdict for every saved key"));
    }
    if let (true, Some(a)) = (f.fallback_checkable(), amb) {
        f.record_ambient(a);
    }
    f
}

fn terraform_info() -> TerraformInfo {
    outcome::terraform_info(
        Path::new("/opt/terraform/1.11.4/terraform"),
        "terraform on PATH".into(),
        Some("Terraform v1.11.4".into()),
    )
}

/// The warnings doctor shows, less git's view (which depends on the checkout).
fn doctor_warnings(f: &Findings) -> Vec<Warning> {
    f.backend
        .as_ref()
        .map(|b| warnings::backend_warnings(b, None))
        .unwrap_or_default()
}

fn doctor_report(case: &str) -> Doctor {
    let f = doctor_findings(case);
    let plan = outcome::next_plan(&f);
    outcome::doctor_report(&f, Some(terraform_info()), plan, doctor_warnings(&f))
}

fn pretty<T: serde::Serialize>(document: &T) -> String {
    report::to_json(document).unwrap()
}

/// Compares `actual` with the checked-in file byte for byte (or writes it, when regenerating).
#[track_caller]
fn golden(name: &str, actual: &str) {
    let version = format!("\"tfshim_version\": \"{}\"", env!("CARGO_PKG_VERSION"));
    let actual = &actual.replace(&version, "\"tfshim_version\": \"<version>\"");
    let path = Path::new(GOLDEN).join(name);
    if std::env::var_os("TFSHIM_UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (regenerate: see src/golden.rs)", path.display()));
    if expected != *actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output (first at line {}):\n--- expected\n{}\n--- actual\n{}",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

/// Every case, one section each.
fn sections(cases: &[String], render: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    for case in cases {
        out.push_str(&format!("=== {case}\n{}", render(case)));
    }
    out
}

fn doctor_cases() -> Vec<String> {
    let mut cases = cases();
    // A directory without any saved backend.
    cases.insert(0, "no-root".into());
    cases
}

#[test]
fn golden_doctor_json() {
    let text = sections(&doctor_cases(), |c| pretty(&doctor_report(c)));
    golden("doctor.json.txt", &text);
}

#[test]
fn golden_doctor_text() {
    let cases = doctor_cases();
    golden(
        "doctor.txt",
        &sections(&cases, |c| doctor_report(c).to_human(false)),
    );
    golden(
        "doctor.color.txt",
        &sections(&cases, |c| doctor_report(c).to_human(true)),
    );
}

#[test]
fn golden_doctor_without_terraform() {
    let f = doctor_findings("s3-rejected");
    let mut warnings = vec![Warning {
        code: "terraform-not-found",
        message: "no `terraform` found on PATH; install it, or set TFSHIM_TERRAFORM".into(),
    }];
    warnings.extend(doctor_warnings(&f));
    let r = outcome::doctor_report(&f, None, outcome::next_plan(&f), warnings);
    golden(
        "doctor-no-terraform.txt",
        &format!("{}{}", pretty(&r), r.to_human(false)),
    );
}

/// The roots of a sweep, their verdicts set as the sweep sets them: the saved key where it can be
/// checked, the fallback credentials only where the saved key was rejected.
fn sweep_roots(fix: bool) -> Vec<Root> {
    cases()
        .iter()
        .map(|case| {
            let path = root_dir(case);
            let mut f = Findings::gather(&path, path.join(".terraform"));
            let (saved, amb) = verdicts(case);
            let checked = f.saved == Saved::StaticKey && f.fallback_checkable();
            if checked {
                if let Some(v) = saved {
                    f.record_saved(v);
                }
            }
            if let (Some(Verdict::Rejected { .. }), Some(a)) = (f.saved_verdict(), amb) {
                f.record_ambient(a);
            }
            let report::Plan {
                action,
                reason: action_reason,
            } = outcome::next_plan(&f);
            let outcome = (fix && action == Action::Reconfigure).then(|| match case.as_str() {
                "s3-rejected-b" => Outcome::Failed(
                    "terraform init -reconfigure failed (exit 1); the saved backend was left as it was"
                        .into(),
                ),
                "s3-rejected-c" => Outcome::Skipped("the saved backend changed meanwhile".into()),
                _ => Outcome::Repaired("re-initialised without the saved key".into()),
            });
            Root {
                path,
                findings: f,
                group: checked.then_some(0),
                action,
                action_reason,
                outcome,
            }
        })
        .collect()
}

fn sweep_outputs(fix: bool) -> String {
    let roots = sweep_roots(fix);
    let summary = Summary::of(&roots, 5, 4, fix);
    let code = summary.exit_code();
    let doc = sweep::document(Path::new(ROOTS), &roots, summary);
    format!(
        "{}=== exit {code}\n=== text\n{}=== colour\n{}",
        pretty(&doc),
        doc.to_human(false),
        doc.to_human(true),
    )
}

#[test]
fn golden_sweep() {
    golden("sweep.txt", &sweep_outputs(false));
    golden("sweep-fix.txt", &sweep_outputs(true));
}

/// `TFSHIM_REPORT`: what each final step and each repair outcome is reported as.
#[test]
fn golden_run_report() {
    let terraform = Path::new("/opt/terraform/1.11.4/terraform");
    let found = "terraform on PATH";
    let f = doctor_findings("s3-rejected");
    let steps = [
        Step::Run,
        Step::RunUnchecked("HTTP 503".into()),
        Step::AmbientUnchecked("timeout after 5s".into()),
        Step::WarnStale,
        Step::WarnCredentialChange,
        Step::Repair,
        Step::ReconfigureInit,
        Step::Refuse,
    ];
    let removals = [
        Removal::Done,
        Removal::AlreadyDone,
        Removal::Skipped("the saved backend changed meanwhile".into()),
        Removal::Failed(1),
        Removal::Interrupted(2),
    ];
    let mut out = String::new();
    for step in &steps {
        out.push_str(&format!("=== step {step:?}\n"));
        let action = outcome::plan_of(step, &f);
        out.push_str(&pretty(&preflight::run_report(
            &f,
            terraform,
            found,
            action,
            doctor_warnings(&f),
        )));
    }
    for removal in &removals {
        out.push_str(&format!("=== removal {removal:?}\n"));
        out.push_str(&pretty(&preflight::run_report(
            &f,
            terraform,
            found,
            outcome::plan_after(removal),
            Vec::new(),
        )));
    }
    // The actions of the other cases' next plans, as a run in `fix` mode reports them.
    for case in doctor_cases() {
        let f = doctor_findings(&case);
        let plan = outcome::next_plan(&f);
        out.push_str(&format!(
            "=== next {case}: {} {}\n",
            plan.action, plan.reason
        ));
    }
    golden("run-report.txt", &out);
}

/// The fixtures hold fake secrets; no output may contain them.
#[test]
fn golden_outputs_hold_no_secret() {
    for entry in fs::read_dir(GOLDEN).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = fs::read_to_string(&path).unwrap();
            for secret in [
                "secret+",
                "azure-secret-value",
                "AKIAVALIDKEY0000QXGR",
                "AKIAROTATEDKEY00ABCD",
            ] {
                assert!(!text.contains(secret), "{} holds {secret}", path.display());
            }
        }
    }
}
