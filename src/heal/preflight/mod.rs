//! The credential preflight: gather facts, let `decide` choose, act. Runs before the subcommands that
//! load the backend and returns the command line to hand to terraform (or an exit code).
//!
//! Fail open: whenever tfshim cannot reach a verdict it says one line and lets terraform run
//! unchanged. Only a key that STS definitely rejected, with working credentials to fall back to,
//! leads to a change on disk, and that change is verified (`repair.rs`).
//!
//! `retry` holds the reactive fallback (watch terraform, repair, run once more); `plan_file` the
//! check of a key embedded in a plan file.

use std::env;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use crate::aws::verdict::Verdict;
use crate::backends::config_file;
use crate::backends::saved::SavedBackend;
use crate::credentials::{self, Credential};
use crate::heal::datadir::{self, Lock};
use crate::heal::decide::{self, CommandClass, Facts, InitChange, Mode, Step};
use crate::heal::facts::{env_var, Findings};
use crate::heal::outcome;
use crate::heal::repair::{self, Outcome, Reconfigure, Removal};
use crate::log;
use crate::proxy::invocation::Invocation;
use crate::report::{self, Doctor, Plan};

mod plan_file;
mod retry;

use plan_file::check_plan_file;
use retry::{reactive_eligible, watch_then_retry};

/// What to do once the preflight is over.
pub enum Next {
    /// Exec terraform with these arguments.
    Run(Vec<OsString>),
    /// Exit with this code (tfshim refused, or already ran the user's command).
    Exit(ExitCode),
    /// End by this signal, as terraform did (or as the repair was interrupted).
    Killed(i32),
}

/// Why the preflight could not finish, by kind (issue #20 item 11): `main` says it in one line and
/// runs terraform unchanged, unless the user's own command had already run.
#[derive(Debug)]
pub enum Error {
    /// The repair machinery failed before the user's command ran (terraform could not be started
    /// for the repair, the old file could not be put back, an invariant broke).
    Repair(repair::Error),
    /// The user's command could not be started as a watched child (the reactive fallback).
    Watch(String),
    /// The user's own command (a credential-only `init`) ran, then its check or restore failed.
    AfterYourCommand(repair::Error),
}

impl Error {
    /// Whether terraform already ran the user's command: then it must not run again.
    pub fn users_command_ran(&self) -> bool {
        matches!(self, Error::AfterYourCommand(_))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Repair(e) | Error::AfterYourCommand(e) => e.fmt(f),
            Error::Watch(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// Whether a repair's own `init` output is streamed: in CI (where logs are read after the fact) and
/// when debugging. Interactively it is shown only if it fails.
fn show_repair_output() -> bool {
    ["CI", "TF_IN_AUTOMATION", "GITHUB_ACTIONS"]
        .iter()
        .any(|v| env::var_os(v).is_some_and(|x| !x.is_empty()))
        || log::debug_enabled()
}

/// Everything the preflight needs from its caller.
pub struct Context<'a> {
    pub mode: Mode,
    pub terraform: &'a Path,
    /// How the binary was found (for the report).
    pub found: String,
    /// Environment to add to terraform children (the recursion counter).
    pub child_env: &'a [(OsString, OsString)],
}

pub fn run(ctx: &Context, inv: &Invocation) -> Result<Next, Error> {
    crate::boundary::injected("preflight", || format!("in {}", inv.work_dir().display()));
    let effective = inv.effective_args(env_var);
    let class = decide::classify_command(inv, &effective);
    if let CommandClass::ApplyPlanFile(plan) = &class {
        check_plan_file(inv, plan);
    }
    if matches!(
        class,
        CommandClass::PassThrough | CommandClass::ApplyPlanFile(_)
    ) {
        log::debug(|| "this command does not load the saved backend; passing through".into());
        return Ok(Next::Run(inv.args.clone()));
    }
    let data_dir = inv.data_dir(env::var_os("TF_DATA_DIR").as_deref());
    // A repair that was killed may have left the saved file broken and its backup beside it.
    datadir::recover_if_interrupted(&data_dir);
    let mut f = Findings::gather(inv.work_dir(), data_dir);
    f.terraform = Some(ctx.terraform.to_path_buf());
    let init_change = match (&class, &f.backend) {
        (CommandClass::Init(flags), Some(b)) if !flags.config.is_empty() => {
            let given = config_file::merge(&flags.config, inv.work_dir());
            if let Err(why) = &given {
                log::debug(|| format!("-backend-config not understood: {why}"));
            }
            let credentials = credentials::credential_attrs(&b.kind);
            decide::init_change(
                &given,
                |k| b.config.get(k).cloned(),
                credentials,
                f.key_in_config.is_some(),
            )
        }
        _ => InitChange::Same,
    };
    let mut facts = Facts {
        mode: ctx.mode,
        class,
        saved: f.saved.clone(),
        init_change,
        saved_verdict: None,
        ambient_verdict: None,
        key_in_config: f.key_in_config.as_ref().map(|p| p.display().to_string()),
    };
    let step = loop {
        let step = decide::next(&facts);
        log::debug(|| format!("step: {step:?}"));
        match step {
            Step::CheckSavedKey => facts.saved_verdict = Some(f.check_saved()),
            Step::CheckAmbient => facts.ambient_verdict = Some(f.check_ambient().verdict),
            final_step => break final_step,
        }
    };
    crate::boundary::injected("preflight", || {
        let secret = f.backend.as_ref().and_then(|b| b.string("secret_key"));
        format!("after deciding {step:?} for {}", secret.unwrap_or_default())
    });
    // Computed once (the git check is a process), said by `act`, reported below.
    let warnings = warnings_for(&f, inv, &step);
    let (next, done) = act(ctx, inv, &effective, &mut f, &facts, &step, &warnings);
    // The run's decision, for CI: written whatever happened next.
    if let Some(path) = &crate::settings::get().report {
        // What the run did, where it did something; else what it decided.
        let plan = done.unwrap_or_else(|| outcome::plan_of(&step, &f));
        let mut doc = run_report(&f, ctx.terraform, &ctx.found, plan, warnings);
        doc.mode = outcome::mode_name(ctx.mode);
        if let Err(e) = report::write_file(path, &doc) {
            log::say(&format!("{e:#}"));
        }
    }
    next
}

/// The `TFSHIM_REPORT` document: doctor's schema, with the terraform this run used.
pub(crate) fn run_report(
    f: &Findings,
    terraform: &Path,
    found: &str,
    plan: Plan,
    warnings: Vec<crate::backends::warnings::Warning>,
) -> Doctor {
    let terraform = outcome::terraform_info(terraform, found.to_owned(), None);
    outcome::doctor_report(f, Some(terraform), plan, warnings)
}

/// The security warnings worth saying on this run: after a repair only that the file is tracked by
/// git (the secrets are gone from the file, not from the history), and none that `TFSHIM_QUIET`
/// silences (at its line on stderr: the report keeps them).
fn warnings_for(
    f: &Findings,
    inv: &Invocation,
    step: &Step,
) -> Vec<crate::backends::warnings::Warning> {
    if matches!(step, Step::Repair | Step::ReconfigureInit) {
        // The secrets are gone from the file then, but not from git's history where it is
        // committed (the seed's user commits `.terraform`, #21).
        return f
            .security_warnings(inv.work_dir())
            .into_iter()
            .filter(|w| w.code == "state-tracked-by-git")
            .collect();
    }
    f.security_warnings(inv.work_dir())
}

/// Carries out a final step; says what it did, where it did something (for `TFSHIM_REPORT`).
fn act(
    ctx: &Context,
    inv: &Invocation,
    effective: &[OsString],
    f: &mut Findings,
    facts: &Facts,
    step: &Step,
    warnings: &[crate::backends::warnings::Warning],
) -> (Result<Next, Error>, Option<Plan>) {
    let unchanged = || Next::Run(inv.args.clone());
    let label = f.label();
    let quiet = &crate::settings::get().quiet;
    for w in warnings.iter().filter(|w| !quiet.silences(w.code)) {
        // The details are doctor's to give, in the directory the user named (#22).
        let doctor = crate::report::command::shim("doctor", inv.chdir.as_deref(), "");
        log::warn(&crate::backends::warnings::run_line(w, &doctor));
    }
    let reactive = reactive_eligible(facts, f, inv, step, effective);
    match step {
        Step::Run => (Ok(unchanged()), None),
        Step::RunUnchecked(why) => {
            if f.saved_verdict().is_some() {
                log::say(&format!(
                    "could not check the saved backend {label} ({why}); running terraform unchanged"
                ));
            } else {
                log::say(&format!(
                    "could not check the saved backend in {} ({why}); running terraform unchanged",
                    f.data_dir.display()
                ));
            }
            if reactive {
                return watch_then_retry(ctx, inv, effective, f);
            }
            (Ok(unchanged()), None)
        }
        Step::AmbientUnchecked(why) => {
            log::warn(&format!(
                "{}, but the credentials terraform would fall back to could not be checked \
                 ({why}); nothing was changed, running terraform unchanged",
                rejected_by(f, &facts.saved_verdict)
            ));
            (Ok(unchanged()), None)
        }
        Step::WarnStale => {
            log::warn(&format!(
                "{}; TFSHIM_MODE=warn, so nothing is changed. To repair it, keeping every other \
                 saved setting: `{}`, or run this command once with TFSHIM_MODE=fix",
                rejected_by(f, &facts.saved_verdict),
                crate::report::command::shim("forget-keys", inv.chdir.as_deref(), "")
            ));
            (Ok(unchanged()), None)
        }
        Step::WarnCredentialChange => {
            log::say(
                "this init changes only the backend credentials; TFSHIM_MODE=warn, so terraform \
                 will ask for -migrate-state/-reconfigure (TFSHIM_MODE=fix adds -reconfigure and \
                 keeps every other setting)",
            );
            (Ok(unchanged()), None)
        }
        Step::Repair => {
            let Some(cred) = f.cred.as_deref() else {
                return (Ok(unchanged()), None);
            };
            log::warn(&format!(
                "{}; re-initialising the backend without it",
                rejected_by(f, &facts.saved_verdict)
            ));
            repair_then_run(ctx, inv, effective, &f.data_dir, cred, f.ambient())
        }
        Step::ReconfigureInit => {
            let data_dir = f.data_dir.clone();
            let next = reconfigure_init(ctx, inv, effective, &data_dir);
            let done = matches!(next, Ok(Next::Exit(code)) if code == ExitCode::SUCCESS)
                .then(outcome::plan_after_reconfigured_init);
            (next, done)
        }
        Step::Refuse => (refuse(facts, f), None),
        Step::KeyInConfiguration(file) => {
            log::warn(&format!(
                "{}; it is written in the \
                 backend block in {file}, not saved from -backend-config, so re-initialising \
                 cannot remove it and nothing was changed. Put the new key there — better, remove \
                 access_key/secret_key from that block and let terraform use the credential chain \
                 (environment, profile, SSO) — {}",
                rejected_by(f, &facts.saved_verdict),
                match (&f.backend, &f.key_in_config) {
                    (Some(b), Some(tf)) => crate::backends::reinit::after_editing_block(b, tf),
                    _ => "then re-initialise with every setting saved but the keys".into(),
                }
            ));
            (Ok(unchanged()), None)
        }
        // The caller gathers these and never passes them here; were it to, fail open, not panic.
        Step::CheckSavedKey | Step::CheckAmbient => (Ok(unchanged()), None),
    }
}

/// "the saved S3 backend key AKIA…QXGR was rejected by STS (InvalidClientTokenId)".
pub(super) fn rejected_by(f: &Findings, verdict: &Option<Verdict>) -> String {
    let (noun, judge) = f
        .cred
        .as_ref()
        .map(|c| (c.noun(), c.judge()))
        .unwrap_or(("backend credential", "its server"));
    format!(
        "the saved {noun} {} was rejected by {judge} ({})",
        f.label(),
        code(verdict)
    )
}

pub(super) fn code(v: &Option<Verdict>) -> String {
    match v {
        Some(Verdict::Rejected { code }) => code.clone(),
        _ => "unknown".into(),
    }
}

fn refuse(facts: &Facts, f: &Findings) -> Result<Next, Error> {
    let why = match f.ambient().map(|a| &a.verdict) {
        Some(Verdict::Rejected { code }) => format!("they were rejected too ({code})"),
        Some(Verdict::Unknown { reason }) => reason.clone(),
        Some(Verdict::Missing) => "none were found".into(),
        Some(Verdict::Valid { .. }) => "they work".into(),
        None => "they were not checked".into(),
    };
    let advice = f.cred.as_ref().map(|c| c.advice()).unwrap_or_default();
    log::warn(&format!(
        "{}, and no working credentials were found to replace it ({why}; looked in {}). Nothing \
         was changed. {advice}",
        rejected_by(f, &facts.saved_verdict),
        f.looked(),
    ));
    Ok(Next::Exit(ExitCode::from(1)))
}

/// The global options to repeat for a child terraform: only `-chdir` matters to `init`.
fn global_args(inv: &Invocation) -> Vec<OsString> {
    let mut args = Vec::new();
    if let Some(dir) = &inv.chdir {
        let mut a = OsString::from("-chdir=");
        a.push(dir);
        args.push(a);
    }
    args
}

/// The repair, as the proxy runs it (its stdout on stderr; its output held back unless in CI).
pub(super) fn remove_key(
    ctx: &Context,
    inv: &Invocation,
    effective: &[OsString],
    data_dir: &Path,
    cred: &dyn Credential,
    fallback: Option<&crate::aws::sts::Ambient>,
) -> Result<Removal, repair::Error> {
    let env = repair::child_env(ctx.child_env);
    let job = repair::KeyRemoval {
        terraform: ctx.terraform,
        global_args: global_args(inv),
        data_dir,
        env: &env,
        // terraform's flag, or the environment's word against colour (NO_COLOR, TERM=dumb).
        no_color: decide::wants_no_color(effective) || crate::settings::get().color.refused(),
        show_output: show_repair_output(),
    };
    let result = job.run(cred, fallback);
    log::debug(|| format!("repair: {result:?}"));
    result
}

/// Repairs (under the lock), then hands back the user's command.
fn repair_then_run(
    ctx: &Context,
    inv: &Invocation,
    effective: &[OsString],
    data_dir: &Path,
    cred: &dyn Credential,
    fallback: Option<&crate::aws::sts::Ambient>,
) -> (Result<Next, Error>, Option<Plan>) {
    let removal = match remove_key(ctx, inv, effective, data_dir, cred, fallback) {
        Ok(r) => r,
        Err(e) => return (Err(Error::Repair(e)), None),
    };
    let done = Some(outcome::plan_after(&removal));
    let next = match removal {
        Removal::Done => {
            log::say("the backend was re-initialised; running your command");
            Ok(Next::Run(inv.args.clone()))
        }
        Removal::AlreadyDone => {
            log::say("another run has already re-initialised the backend; continuing");
            Ok(Next::Run(inv.args.clone()))
        }
        Removal::Skipped(why) => {
            log::say(&format!(
                "cannot repair automatically: {why}; running terraform unchanged"
            ));
            Ok(Next::Run(inv.args.clone()))
        }
        Removal::Failed(code) => {
            // Fail open (#20 item 11): terraform alone would have run the command, so it does.
            log::say(&format!(
                "the repair's `terraform init -reconfigure` failed (exit {code}; its output is \
                 above), so the saved backend was left as it was; running terraform unchanged"
            ));
            Ok(Next::Run(inv.args.clone()))
        }
        Removal::Interrupted(sig) => Ok(Next::Killed(sig)),
    };
    (next, done)
}

/// A credential-only `init`: the user's own init, plus `-reconfigure` and the preserved settings.
fn reconfigure_init(
    ctx: &Context,
    inv: &Invocation,
    effective: &[OsString],
    data_dir: &Path,
) -> Result<Next, Error> {
    let _lock = match Lock::acquire(data_dir) {
        Ok(l) => l,
        Err(e) => {
            log::say(&format!("{e}; running terraform unchanged"));
            return Ok(Next::Run(inv.args.clone()));
        }
    };
    let current = match SavedBackend::read(data_dir) {
        Ok(Some(b)) => b,
        _ => return Ok(Next::Run(inv.args.clone())),
    };
    let flags = crate::proxy::invocation::parse_init_flags(effective);
    // The merged value of each credential attribute (flags and files, the last one winning) is
    // the one terraform saves. The decision read the same files a moment ago.
    let Ok(merged) = config_file::merge(&flags.config, inv.work_dir()) else {
        return Ok(Next::Run(inv.args.clone()));
    };
    let given = |name: &str| -> Option<String> { merged.string(name).map(str::to_owned) };
    let credential_attrs = credentials::init_replaces(&current.kind, &|a| given(a).is_some());
    let settings = match repair::preserved_settings(&current, &credential_attrs) {
        Ok(s) => s,
        Err(why) => {
            log::say(&format!(
                "cannot add -reconfigure: {why}; running terraform unchanged"
            ));
            return Ok(Next::Run(inv.args.clone()));
        }
    };
    log::say(
        "this init changes only the backend credentials; adding -reconfigure and keeping every other \
         saved backend setting",
    );
    let env = repair::child_env(ctx.child_env);
    let reconfigure = Reconfigure {
        terraform: ctx.terraform,
        data_dir,
        credential_attrs: &credential_attrs,
        env: &env,
        remove_env: &[],
        // The user's own init: its stdin, stdout and output are theirs.
        users_command: true,
        show_output: true,
    };
    let outcome = reconfigure.run(
        &current,
        &settings,
        |file| inv.with_extra_args(&["-reconfigure".into(), repair::backend_config_arg(file)]),
        &given,
    );
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // terraform never started: the user's command did not run.
        Err(e @ repair::Error::CouldNotRun(_)) => return Err(Error::Repair(e)),
        Err(e) => return Err(Error::AfterYourCommand(e)),
    };
    match outcome {
        Outcome::Done => Ok(Next::Exit(ExitCode::SUCCESS)),
        Outcome::Failed(code) => Ok(Next::Exit(ExitCode::from(code))),
        Outcome::Interrupted(sig) => Ok(Next::Killed(sig)),
        Outcome::NotStarted(why) => {
            log::say(&format!(
                "cannot add -reconfigure: {why}; running terraform unchanged"
            ));
            Ok(Next::Run(inv.args.clone()))
        }
    }
}
