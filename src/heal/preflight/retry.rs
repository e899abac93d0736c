//! The reactive fallback: when the preflight had no verdict on the saved key, the command runs as a
//! watched child; if terraform's own error shows STS rejecting the saved key, STS is asked again, and
//! on a definite rejection the backend is repaired and the command run once more (never `apply`).

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use crate::aws::verdict::Verdict;
use crate::heal::decide::{CommandClass, Facts, Mode, Step};
use crate::heal::facts::Findings;
use crate::heal::outcome;
use crate::heal::repair::Removal;
use crate::log;
use crate::proxy::exec::Ending;
use crate::proxy::invocation::Invocation;
use crate::proxy::reactive;
use crate::report::Plan;

use super::{remove_key, Context, Error, Next};

/// The reactive fallback applies: `fix` mode, not `TFSHIM_RETRY=0`, an `init` or a `plan` without
/// `-json` (whose diagnostics go to stdout), a saved static key, and no verdict on it from the
/// preflight, and a key that does not come from the `.tf` block. (With `skip_credentials_validation` the backend makes no such call, so a
/// `GetCallerIdentity` failure would be a provider's, not the saved key's.)
pub(super) fn reactive_eligible(
    facts: &Facts,
    f: &Findings,
    inv: &Invocation,
    step: &Step,
    effective: &[OsString],
) -> bool {
    let enabled = facts.mode == Mode::Fix && crate::settings::get().retry;
    let command =
        matches!(facts.class, CommandClass::Init(_)) || inv.command.as_deref() == Some("plan");
    let json = effective.iter().any(|a| a == "-json");
    // terraform's own rejection message is recognised for S3 only.
    let s3_key = f
        .cred
        .as_ref()
        .is_some_and(|c| c.kind() == "s3" && c.present());
    // A key the `.tf` block writes would come back with the repair's reconfigure.
    let removable = f.key_in_config.is_none();
    enabled && command && !json && matches!(step, Step::RunUnchecked(_)) && s3_key && removable
}

/// Runs the command as a watched child; if terraform reports the saved key rejected, repairs (after
/// checking the fallback credentials, patiently: terraform did reach STS) and runs it once more.
pub(super) fn watch_then_retry(
    ctx: &Context,
    inv: &Invocation,
    effective: &[OsString],
    f: &mut Findings,
) -> (Result<Next, Error>, Option<Plan>) {
    let mut cmd = std::process::Command::new(ctx.terraform);
    cmd.args(&inv.args)
        .envs(ctx.child_env.iter().map(|(k, v)| (k, v)));
    let watched = match reactive::run_watched(cmd) {
        Ok(w) => w,
        Err(e) => {
            return (
                Err(Error::Watch(format!(
                    "could not run {}: {e}",
                    ctx.terraform.display()
                ))),
                None,
            )
        }
    };
    // Without a retry, the run's held-back stdout is its output after all, and tfshim ends as it did.
    let exit = || {
        let mut out = std::io::stdout();
        let _ = out.write_all(&watched.held_stdout);
        let _ = out.flush();
        let next = match Ending::of(&watched.status) {
            Ending::Code(code) => Next::Exit(ExitCode::from(code)),
            Ending::Signal(sig) => Next::Killed(sig),
        };
        (Ok(next), None)
    };
    if watched.status.success()
        || watched.interrupted_by.is_some()
        || !reactive::is_rejected_key_failure(&watched.stderr_tail)
    {
        return exit();
    }
    // terraform's message is only the trigger: the verdict is STS's, asked again now that terraform
    // showed STS answers (patiently), so a provider's bad key never costs the backend a working one.
    f.be_patient();
    f.forget_saved_verdict();
    let key = f.key();
    let verdict = f.check_saved();
    let Verdict::Rejected { code: rejected } = verdict else {
        log::say(&format!(
            "terraform's error names GetCallerIdentity, but STS says the saved key {key} is {verdict}; \
             nothing was changed"
        ));
        return exit();
    };
    log::warn(&format!(
        "the saved S3 backend key {key} was rejected by STS ({rejected}); re-initialising the \
         backend without it and running the command again"
    ));
    let ambient = f.check_ambient();
    if !matches!(ambient.verdict, Verdict::Valid { .. }) {
        log::say(&format!(
            "no working credentials to replace it ({}; looked in {}); nothing was changed",
            ambient.verdict,
            f.looked()
        ));
        return exit();
    }
    let Some(cred) = f.cred.as_deref() else {
        return exit();
    };
    let removal = match remove_key(ctx, inv, effective, &f.data_dir, cred, Some(&ambient)) {
        Ok(r) => r,
        Err(e) => {
            // terraform already ran the command unchanged: its outcome stands.
            log::say(&e.to_string());
            return exit();
        }
    };
    let done = Some(outcome::plan_after(&removal));
    let next = match removal {
        Removal::Done | Removal::AlreadyDone => {
            log::say("the backend was re-initialised; running your command again");
            Ok(Next::Run(inv.args.clone()))
        }
        Removal::Skipped(why) => {
            log::say(&format!("cannot repair automatically: {why}"));
            exit().0
        }
        Removal::Failed(code) => {
            log::say(&format!(
                "the repair's `terraform init -reconfigure` failed (exit {code}); the saved \
                 backend was left as it was"
            ));
            exit().0
        }
        Removal::Interrupted(sig) => Ok(Next::Killed(sig)),
    };
    (next, done)
}
