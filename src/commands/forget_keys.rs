//! `tfshim shim forget-keys [DIR] [--all]`: removes the static S3 keys saved in a root's backend
//! (or in every root under DIR), keeping every other saved setting — the safe form of the advice
//! "re-initialise without keys" (#11 item 6).
//!
//! A bare `terraform init -reconfigure` is not that: it drops the values given by `-backend-config`
//! at the first `init` and reverts overridden ones, so a root whose `key` was overridden would move
//! to other state. This command runs the repair itself ([`KeyRemoval`]: the saved settings handed
//! back, the lock, the invariants, the byte-for-byte rollback), whether or not the key was rotated
//! yet — and, as the repair does, only after the credentials terraform will fall back to have been
//! checked with STS: without them, removing the key would break a working root.
//!
//! Named `forget-keys`: it makes terraform forget the keys it saved; nothing is deleted or
//! deactivated in AWS (rotate the key there too).

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::aws::sts::Ambient;
use crate::aws::verdict::Verdict;
use crate::backends::saved::{self, DEFAULT_DATA_DIR};
use crate::heal::decide::Saved;
use crate::heal::facts::Findings;
use crate::heal::repair::{self, KeyRemoval, Removal};
use crate::log;
use crate::proxy::exec::signal_exit_code;
use crate::proxy::locate::{self, Located};
use crate::report;

/// Exit code: some root's fallback credentials do not work, so its key was kept.
const NO_FALLBACK: u8 = 4;

/// What became of one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RootResult {
    /// No static S3 key is saved there.
    NoKey,
    /// DIR has no saved backend at all: not a root (or not initialised yet).
    NotARoot,
    /// The saved file cannot be read: whether it holds a key is unknown; nothing was changed.
    Unreadable(String),
    /// The key was removed; where terraform takes its credentials from now.
    Removed(String),
    /// Another run removed it meanwhile.
    AlreadyGone,
    /// Not attempted, and why (nothing was changed).
    Kept(String),
    /// Not attempted: the fallback credentials do not work (nothing was changed).
    NoFallback(String),
    /// The reconfigure failed or broke an invariant; the saved file is as it was.
    Failed(String),
    /// A signal arrived during the reconfigure.
    Interrupted(i32),
}

pub fn run(dir: PathBuf, all: bool, located: Result<Located>) -> Result<ExitCode> {
    let located = located?;
    let roots = roots(&dir, all)?;
    let base_env = child_env()?;
    let mut code = 0u8;
    let (mut removed, mut with_key) = (0, 0);
    for (root, data_dir) in &roots {
        let result = forget(&located.path, root, data_dir, all, &base_env);
        log::debug(|| format!("forget-keys {}: {result:?}", root.display()));
        let line = match &result {
            RootResult::NoKey => {
                if all {
                    continue;
                }
                "no static S3 key is saved; nothing to do".to_owned()
            }
            RootResult::Removed(source) => {
                format!("removed the saved key; terraform now uses {source}")
            }
            RootResult::NotARoot => {
                code = code.max(1);
                not_a_root(root, data_dir, "forget-keys")
            }
            RootResult::Unreadable(why) => {
                code = code.max(1);
                format!("kept as it is: the saved backend cannot be read ({why})")
            }
            RootResult::AlreadyGone => "another run had already removed the saved key".into(),
            RootResult::Kept(why) => {
                code = code.max(1);
                format!("kept the saved key: {why}")
            }
            RootResult::NoFallback(why) => {
                code = code.max(NO_FALLBACK);
                format!("kept the saved key: {why}")
            }
            RootResult::Failed(why) => {
                code = code.max(1);
                format!("failed: {why}")
            }
            RootResult::Interrupted(sig) => {
                report::out(&format!(
                    "{}: interrupted by signal {sig}; the saved backend is as before or without \
                     the key\n",
                    root.display()
                ));
                return Ok(ExitCode::from(signal_exit_code(*sig)));
            }
        };
        // Only roots known to hold a key: not an unreadable file (unknown), not a non-root.
        with_key += usize::from(!matches!(
            result,
            RootResult::NoKey | RootResult::NotARoot | RootResult::Unreadable(_)
        ));
        removed += usize::from(matches!(
            result,
            RootResult::Removed(_) | RootResult::AlreadyGone
        ));
        report::out(&format!("{}: {line}\n", root.display()));
    }
    if all {
        let n = roots.len();
        let s = if n == 1 { "" } else { "s" };
        report::out(&format!(
            "{n} root{s}, {with_key} with a saved key, {removed} removed\n"
        ));
    }
    Ok(ExitCode::from(code))
}

/// What to say for a DIR without a saved backend (#22): it is not a root, and `--all` acts on the
/// roots under it.
pub(super) fn not_a_root(root: &Path, data_dir: &Path, sub: &str) -> String {
    format!(
        "not a Terraform root: no saved backend in {} (run `terraform init` there first); for \
         every root under it: `{}`",
        data_dir.display(),
        report::command::shim(sub, Some(root), "--all")
    )
}

/// The roots to act on and their data dirs: DIR, or with `all` every root under DIR.
pub(super) fn roots(dir: &Path, all: bool) -> Result<Vec<(PathBuf, PathBuf)>> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    Ok(if all {
        // As `sweep` finds them: `.terraform` data dirs (TF_DATA_DIR is per invocation).
        super::sweep::find_roots(dir, &mut |_| {})
            .into_iter()
            .map(|r| {
                let data = r.join(DEFAULT_DATA_DIR);
                (r, data)
            })
            .collect()
    } else {
        let data = saved::data_dir(dir, env::var_os("TF_DATA_DIR").as_deref());
        vec![(dir.to_path_buf(), data)]
    })
}

/// The environment of the terraform the removal runs: the recursion counter and `TFSHIM_MODE=off`
/// (as the proxy's repair).
pub(super) fn child_env() -> Result<Vec<(OsString, OsString)>> {
    let count = locate::next_recursion_count(crate::settings::get().recursion_count.as_deref())?;
    Ok(repair::child_env(&[(
        OsString::from(locate::RECURSION_VAR),
        OsString::from(count.to_string()),
    )]))
}

/// Removes the saved key of one root, when that is safe.
fn forget(
    terraform: &Path,
    root: &Path,
    data_dir: &Path,
    all: bool,
    base_env: &[(OsString, OsString)],
) -> RootResult {
    let mut f = Findings::gather(root, data_dir.to_path_buf());
    if !f.has_saved_credential() {
        return match &f.saved {
            Saved::Unreadable(why) => RootResult::Unreadable(why.clone()),
            _ if f.backend.is_none() && !all => RootResult::NotARoot,
            _ => RootResult::NoKey,
        };
    };
    if let Some(file) = &f.key_in_config {
        return RootResult::Kept(format!(
            "the backend block in {} writes it, so re-initialising cannot remove it: remove \
             access_key/secret_key there, {}",
            file.display(),
            match &f.backend {
                Some(b) => crate::backends::reinit::after_editing_block(b, file),
                None => "then re-initialise with every setting saved but the keys".into(),
            }
        ));
    }
    if let Saved::Uncheckable(why) = &f.saved {
        return RootResult::Kept(format!(
            "the fallback credentials cannot be checked ({why})"
        ));
    }
    // What terraform will use once the key is gone must work first.
    let ambient = match check_fallback(&mut f) {
        Ok(a) => a,
        Err(kept) => return kept,
    };
    let env = root_env(base_env, data_dir, all);
    let job = KeyRemoval {
        terraform,
        // Run in the root, not with `-chdir`: 0.12–0.14 have none (#21).
        global_args: Vec::new(),
        data_dir,
        env: &env,
        no_color: !report::color_on(&std::io::stderr()),
        show_output: log::debug_enabled(),
    };
    let Some(cred) = f.cred.as_deref() else {
        return RootResult::NoKey;
    };
    match job.run_in(Some(root), cred, Some(&ambient)) {
        Ok(Removal::Done) => RootResult::Removed(ambient.source),
        Ok(Removal::AlreadyDone) => RootResult::AlreadyGone,
        Ok(Removal::Skipped(why)) => RootResult::Kept(why),
        Ok(Removal::Failed(code)) => RootResult::Failed(format!(
            "terraform init -reconfigure failed (exit {code}; its output is above); the saved \
             backend was left as it was"
        )),
        Ok(Removal::Interrupted(sig)) => RootResult::Interrupted(sig),
        Err(e) => RootResult::Failed(format!("{e:#}")),
    }
}

/// The credentials terraform falls back to once the saved ones are gone, checked with STS: `Err`
/// (what to report, nothing changed) unless they work.
pub(super) fn check_fallback(f: &mut Findings) -> Result<Ambient, RootResult> {
    let ambient = f.check_ambient();
    match &ambient.verdict {
        Verdict::Valid { .. } => Ok(ambient),
        Verdict::Unknown { reason } => Err(RootResult::Kept(format!(
            "the credentials terraform would fall back to could not be checked ({reason})"
        ))),
        other => {
            let looked = f.looked();
            Err(RootResult::NoFallback(format!(
                "terraform would have no working credentials without it ({other}; looked in \
                 {looked}); put working ones where terraform finds them first"
            )))
        }
    }
}

/// The environment of one root's reconfigure: `base_env`, and with `all` the data dir and
/// workspace the root was read from.
pub(super) fn root_env(
    base_env: &[(OsString, OsString)],
    data_dir: &Path,
    all: bool,
) -> Vec<(OsString, OsString)> {
    let mut env = base_env.to_vec();
    if all {
        // Every root under DIR was read from `.terraform` and its selected workspace (as `sweep`
        // does): the reconfigure must use the same, whatever this shell exports for its own use.
        let workspace = std::fs::read_to_string(data_dir.join("environment"))
            .ok()
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "default".into());
        env.push(("TF_DATA_DIR".into(), DEFAULT_DATA_DIR.into()));
        env.push(("TF_WORKSPACE".into(), workspace.into()));
    }
    env
}
