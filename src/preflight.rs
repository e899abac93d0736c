//! The credential preflight: gather facts, let `decide` choose, act. Runs before the subcommands that
//! load the backend and returns the command line to hand to terraform (or an exit code).
//!
//! Fail open: whenever tfshim cannot reach a verdict it says one line and lets terraform run
//! unchanged. Only a key that STS definitely rejected, with working credentials to fall back to,
//! leads to a change on disk, and that change is verified (`repair.rs`).

use std::env;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::Value;

use crate::backend::{SavedBackend, StaticCredentials, S3_CREDENTIAL_ATTRS};
use crate::decide::{self, CommandClass, Facts, InitChange, Mode, Saved, Step};
use crate::exec::signal_exit_code;
use crate::invocation::Invocation;
use crate::log;
use crate::repair::{self, Lock, Outcome, Reconfigure};
use crate::sts::{self, ProfileSettings, Session, Target};
use crate::verdict::Verdict;

/// Default for `TFSHIM_STS_TIMEOUT` (seconds): long enough for a slow link to STS, short enough that
/// an unreachable endpoint costs the user little.
const DEFAULT_TIMEOUT_SECS: f64 = 5.0;

/// What to do once the preflight is over.
pub enum Next {
    /// Exec terraform with these arguments.
    Run(Vec<OsString>),
    /// Exit with this code (tfshim refused, or already ran the user's command).
    Exit(ExitCode),
}

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
    /// Environment to add to terraform children (the recursion counter).
    pub child_env: &'a [(OsString, OsString)],
}

fn env_var(name: &str) -> Option<String> {
    env::var(name).ok()
}

/// `TFSHIM_STS_TIMEOUT` in seconds (fractions allowed).
fn sts_timeout() -> Duration {
    let secs = env_var("TFSHIM_STS_TIMEOUT")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    Duration::from_secs_f64(secs.min(300.0))
}

pub fn run(ctx: &Context, inv: &Invocation) -> Result<Next> {
    let unchanged = || Next::Run(inv.args.clone());
    let effective = inv.effective_args(env_var);
    let class = decide::classify_command(inv, &effective);
    if class == CommandClass::PassThrough {
        log::debug(|| "this command does not load the backend; passing through".into());
        return Ok(unchanged());
    }
    let data_dir = inv.data_dir(env::var_os("TF_DATA_DIR").as_deref());
    let (saved_fact, saved) = read_saved(&data_dir);
    let creds = saved.as_ref().and_then(SavedBackend::s3_static_credentials);
    let timeout = sts_timeout();
    let target = saved
        .as_ref()
        .map(|b| Target::from_backend(b, env_var, timeout));
    let saved_fact = match (&saved_fact, &target, &creds) {
        (Saved::StaticKey, Some(Err(why)), _) => Saved::Uncheckable(why.clone()),
        _ => saved_fact,
    };
    let init_change = match (&class, &saved) {
        (CommandClass::Init(flags), Some(b)) => decide::init_change(
            flags,
            |k| b.config.get(k).and_then(render),
            |k| b.kind == "s3" && S3_CREDENTIAL_ATTRS.contains(&k),
        ),
        _ => InitChange::Same,
    };
    let mut facts = Facts {
        mode: ctx.mode,
        class,
        saved: saved_fact,
        init_change,
        saved_verdict: None,
        ambient_verdict: None,
    };
    let key = creds
        .as_ref()
        .map(|c| c.access_key.redacted())
        .unwrap_or_default();
    let mut ambient: Option<sts::Ambient> = None;
    let mut session: Option<Session> = None;
    loop {
        let step = decide::next(&facts);
        log::debug(|| format!("step: {step:?}"));
        match step {
            Step::Run => return Ok(unchanged()),
            Step::RunUnchecked(why) => {
                match &creds {
                    Some(_) if facts.saved_verdict.is_some() => log::say(&format!(
                        "could not check the saved backend key {key} ({why}); running terraform unchanged"
                    )),
                    _ => log::say(&format!(
                        "could not check the saved backend in {} ({why}); running terraform unchanged",
                        data_dir.display()
                    )),
                }
                return Ok(unchanged());
            }
            Step::CheckSavedKey => {
                let (Some(Ok(target)), Some(c)) = (&target, &creds) else {
                    facts.saved_verdict = Some(Verdict::unknown("no key to check"));
                    continue;
                };
                log::debug(|| {
                    format!(
                        "asking STS at {} ({}) about the saved key {key}",
                        target.endpoint.as_deref().unwrap_or("the default endpoint"),
                        target.region
                    )
                });
                let verdict = match Session::new(target.clone()) {
                    Ok(s) => {
                        log::debug(|| "STS client ready".into());
                        session.insert(s).check_static(c)
                    }
                    Err(why) => Verdict::unknown(why),
                };
                log::debug(|| format!("saved key {key}: {verdict}"));
                facts.saved_verdict = Some(verdict);
            }
            Step::CheckAmbient => {
                let (Some(s), Some(b)) = (&session, &saved) else {
                    facts.ambient_verdict = Some(Verdict::unknown("no backend"));
                    continue;
                };
                let profiles = ProfileSettings::from_backend(b, env_var);
                let checked = s.check_ambient(&profiles);
                log::debug(|| format!("ambient credentials: {}", checked.verdict));
                facts.ambient_verdict = Some(checked.verdict.clone());
                ambient = Some(checked);
            }
            Step::AmbientUnchecked(why) => {
                log::say(&format!(
                    "the saved S3 backend key {key} was rejected by STS ({}), but the credentials \
                     terraform would fall back to could not be checked ({why}); nothing was changed, \
                     running terraform unchanged",
                    code(&facts.saved_verdict)
                ));
                return Ok(unchanged());
            }
            Step::WarnStale => {
                log::say(&format!(
                    "the saved S3 backend key {key} was rejected by STS ({}); TFSHIM_MODE=warn, so \
                     nothing is changed. Fix: `terraform init -reconfigure` with your backend settings, \
                     or run once with TFSHIM_MODE=fix",
                    code(&facts.saved_verdict)
                ));
                return Ok(unchanged());
            }
            Step::WarnCredentialChange => {
                log::say(
                    "this init changes only the backend credentials; TFSHIM_MODE=warn, so terraform \
                     will ask for -migrate-state/-reconfigure (TFSHIM_MODE=fix adds -reconfigure and \
                     keeps every other setting)",
                );
                return Ok(unchanged());
            }
            Step::Repair => {
                let Some(c) = &creds else {
                    return Ok(unchanged());
                };
                log::say(&format!(
                    "the saved S3 backend key {key} was rejected by STS ({}); re-initialising the \
                     backend without it",
                    code(&facts.saved_verdict)
                ));
                return repair_then_run(ctx, inv, &effective, &data_dir, c);
            }
            Step::ReconfigureInit => {
                return reconfigure_init(ctx, inv, &effective, &data_dir);
            }
            Step::Refuse => return refuse(&key, &facts, ambient.as_ref()),
        }
    }
}

/// Reads the saved backend and says what it offers.
fn read_saved(data_dir: &Path) -> (Saved, Option<SavedBackend>) {
    let read = {
        let _reading = Lock::shared_if_exists(data_dir);
        SavedBackend::read(data_dir)
    };
    match read {
        Ok(None) => {
            log::debug(|| format!("no saved backend in {}", data_dir.display()));
            (Saved::NothingToCheck, None)
        }
        Err(e) => (
            Saved::Unreadable(format!(
                "{}: {e}",
                data_dir.join("terraform.tfstate").display()
            )),
            None,
        ),
        Ok(Some(b)) => {
            let fact = match (
                b.s3_static_credentials(),
                b.flag("skip_credentials_validation"),
            ) {
                (None, _) => Saved::NothingToCheck,
                (Some(_), true) => Saved::ValidationSkipped,
                (Some(_), false) => Saved::StaticKey,
            };
            log::debug(|| format!("saved backend: {b:?} → {fact:?}"));
            (fact, Some(b))
        }
    }
}

/// A saved attribute as the string a `-backend-config=KEY=VALUE` would give.
fn render(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn code(v: &Option<Verdict>) -> String {
    match v {
        Some(Verdict::Rejected { code }) => code.clone(),
        _ => "unknown".into(),
    }
}

fn refuse(key: &str, facts: &Facts, ambient: Option<&sts::Ambient>) -> Result<Next> {
    let (why, looked) = match ambient {
        Some(a) => (
            match &a.verdict {
                Verdict::Rejected { code } => format!("they were rejected too ({code})"),
                Verdict::Unknown { reason } => reason.clone(),
                Verdict::Missing => "none were found".into(),
                Verdict::Valid { .. } => "they work".into(),
            },
            a.source.as_str(),
        ),
        None => ("they were not checked".into(), "nowhere"),
    };
    log::say(&format!(
        "the saved S3 backend key {key} was rejected by STS ({}), and no working credentials were \
         found to replace it ({why}; looked in {}). Nothing was changed. Put the rotated key where \
         terraform finds it — e.g. `~/.aws/credentials` or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY — \
         and run the command again",
        code(&facts.saved_verdict),
        looked
    ));
    Ok(Next::Exit(ExitCode::from(1)))
}

/// The environment of a terraform that tfshim runs and checks: the recursion counter, and
/// `TFSHIM_MODE=off`, so that a tfshim found again as that `terraform` (a second copy on PATH, a
/// wrapper script) passes straight through instead of waiting for the lock this run holds.
fn repair_env(ctx: &Context) -> Vec<(OsString, OsString)> {
    let mut env = ctx.child_env.to_vec();
    env.push(("TFSHIM_MODE".into(), "off".into()));
    env
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

fn backend_config_arg(file: OsString) -> OsString {
    let mut a = OsString::from("-backend-config=");
    a.push(file);
    a
}

/// Repairs (under the lock), then hands back the user's command.
fn repair_then_run(
    ctx: &Context,
    inv: &Invocation,
    effective: &[OsString],
    data_dir: &Path,
    creds: &StaticCredentials,
) -> Result<Next> {
    let _lock = match Lock::acquire(data_dir) {
        Ok(l) => l,
        Err(e) => {
            log::say(&format!("{e:#}; running terraform unchanged"));
            return Ok(Next::Run(inv.args.clone()));
        }
    };
    // Re-read under the lock: another tfshim may have repaired it while we waited.
    let current = match SavedBackend::read(data_dir) {
        Ok(Some(b)) => b,
        _ => return Ok(Next::Run(inv.args.clone())),
    };
    let still_stale = current
        .s3_static_credentials()
        .is_some_and(|c| c.access_key == creds.access_key && c.secret_key == creds.secret_key);
    if !still_stale {
        log::say("another run has already re-initialised the backend; continuing");
        return Ok(Next::Run(inv.args.clone()));
    }
    let settings = match repair::preserved_settings(&current.config) {
        Ok(s) => s,
        Err(why) => {
            log::say(&format!(
                "cannot repair automatically: {why}; running terraform unchanged"
            ));
            return Ok(Next::Run(inv.args.clone()));
        }
    };
    let no_color = decide::wants_no_color(effective);
    let env = repair_env(ctx);
    let reconfigure = Reconfigure {
        terraform: ctx.terraform,
        data_dir,
        env: &env,
        // The repair's init is tfshim's, not the user's: their extra init flags (`-upgrade`,
        // `-migrate-state`, `-backend-config=…`) would change what it does.
        remove_env: &["TF_CLI_ARGS", "TF_CLI_ARGS_init"],
        users_command: false,
        show_output: show_repair_output(),
    };
    let outcome = reconfigure.run(
        &current,
        &settings,
        |file| {
            let mut args = global_args(inv);
            args.extend(["init", "-reconfigure", "-input=false"].map(OsString::from));
            if no_color {
                args.push("-no-color".into());
            }
            args.push(backend_config_arg(file));
            args
        },
        &|_| None,
    );
    log::debug(|| format!("repair: {outcome:?}"));
    match outcome? {
        Outcome::Done => {
            log::say("the backend was re-initialised; running your command");
            Ok(Next::Run(inv.args.clone()))
        }
        Outcome::Failed(code) => Err(anyhow!(
            "the repair's `terraform init -reconfigure` failed (exit {code}; its output is above), so \
             the saved backend was left as it was. Fix what it reports, then run your command again"
        )),
        Outcome::Interrupted(sig) => Ok(Next::Exit(ExitCode::from(signal_exit_code(sig)))),
    }
}

/// A credential-only `init`: the user's own init, plus `-reconfigure` and the preserved settings.
fn reconfigure_init(
    ctx: &Context,
    inv: &Invocation,
    effective: &[OsString],
    data_dir: &Path,
) -> Result<Next> {
    let _lock = match Lock::acquire(data_dir) {
        Ok(l) => l,
        Err(e) => {
            log::say(&format!("{e:#}; running terraform unchanged"));
            return Ok(Next::Run(inv.args.clone()));
        }
    };
    let current = match SavedBackend::read(data_dir) {
        Ok(Some(b)) => b,
        _ => return Ok(Next::Run(inv.args.clone())),
    };
    let settings = match repair::preserved_settings(&current.config) {
        Ok(s) => s,
        Err(why) => {
            log::say(&format!(
                "cannot add -reconfigure: {why}; running terraform unchanged"
            ));
            return Ok(Next::Run(inv.args.clone()));
        }
    };
    let flags = crate::invocation::parse_init_flags(effective);
    // The last value given for each credential attribute is the one terraform saves.
    let given = |name: &str| -> Option<String> {
        flags
            .config_pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.expose().to_owned())
    };
    log::say(
        "this init changes only the backend credentials; adding -reconfigure and keeping every other \
         saved backend setting",
    );
    let env = repair_env(ctx);
    let reconfigure = Reconfigure {
        terraform: ctx.terraform,
        data_dir,
        env: &env,
        remove_env: &[],
        // The user's own init: its stdin, stdout and output are theirs.
        users_command: true,
        show_output: true,
    };
    let outcome = reconfigure.run(
        &current,
        &settings,
        |file| inv.with_extra_args(&["-reconfigure".into(), backend_config_arg(file)]),
        &given,
    );
    match outcome? {
        Outcome::Done => Ok(Next::Exit(ExitCode::SUCCESS)),
        Outcome::Failed(code) => Ok(Next::Exit(ExitCode::from(code))),
        Outcome::Interrupted(sig) => Ok(Next::Exit(ExitCode::from(signal_exit_code(sig)))),
    }
}
