//! `tfshim shim reinit [DIR] [--all] [-- INIT_ARGS…]`: the careful manual fix after a terraform
//! upgrade (#21) — `init -reconfigure` with every saved backend setting handed back and the saved
//! credentials removed, as `forget-keys` does.
//!
//! A new terraform version may hash the same `.tf` backend block anew (0.12 → 0.13 does, for S3):
//! terraform then says "Backend reinitialization required", and a plain `init` fails without every
//! `-backend-config` flag of the first one ("bucket: required field is not set"), which few users
//! still have. This command re-supplies them from the saved file, under the repair's lock and with
//! its invariants and rollback — every invariant but the hash's, which the upgrade the user asked
//! for is expected to change (`repair::RunOptions`); the saved settings must all come out the same.
//!
//! Like the repair, it checks the credentials terraform falls back to before anything is touched:
//! without working ones the saved key is kept (nothing changed). Arguments after `--` go to that
//! `init` as given, after the saved settings: a user who wants a new key saved passes it there
//! (`-- -backend-config=access_key=… -backend-config=secret_key=…`), and then no fallback is needed.
//! Terraform runs in the root's directory: 0.12–0.14 have no `-chdir`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use super::forget_keys::{check_fallback, child_env, root_env, roots, RootResult};
use crate::backends::config_file;
use crate::backends::saved::SavedBackend;
use crate::credentials;
use crate::heal::datadir::Lock;
use crate::heal::decide::Saved;
use crate::heal::facts::Findings;
use crate::heal::repair::{self, Outcome, Reconfigure, RunOptions};
use crate::log;
use crate::proxy::exec::signal_exit_code;
use crate::proxy::invocation::parse_init_flags;
use crate::proxy::locate::Located;
use crate::report;

/// Exit code: some root's fallback credentials do not work, so it was not re-initialised.
const NO_FALLBACK: u8 = 4;

pub fn run(
    dir: PathBuf,
    all: bool,
    init_args: Vec<OsString>,
    located: Result<Located>,
) -> Result<ExitCode> {
    let located = located?;
    let roots = roots(&dir, all)?;
    let base_env = child_env()?;
    let mut code = 0u8;
    let mut done = 0;
    for (root, data_dir) in &roots {
        let env = root_env(&base_env, data_dir, all);
        let result = reinit(&located.path, root, data_dir, &env, &init_args, all);
        log::debug(|| format!("reinit {}: {result:?}", root.display()));
        let line = match &result {
            RootResult::NoKey => "no saved backend; nothing to do".to_owned(),
            RootResult::NotARoot => {
                code = code.max(1);
                super::forget_keys::not_a_root(root, data_dir, "reinit")
            }
            RootResult::Unreadable(why) => {
                code = code.max(1);
                format!("not re-initialised: the saved backend cannot be read ({why})")
            }
            RootResult::Removed(credentials) => {
                done += 1;
                format!("re-initialised with every saved backend setting; {credentials}")
            }
            // Not a result of this command's (`Kept` says a changed file).
            RootResult::AlreadyGone => "nothing to do".into(),
            RootResult::Kept(why) => {
                code = code.max(1);
                format!("not re-initialised: {why}")
            }
            RootResult::NoFallback(why) => {
                code = code.max(NO_FALLBACK);
                format!(
                    "not re-initialised, the saved key was kept: {why}, or pass a working key \
                     after `--` (-backend-config=access_key=… -backend-config=secret_key=…)"
                )
            }
            RootResult::Failed(why) => {
                code = code.max(1);
                format!("failed: {why}")
            }
            RootResult::Interrupted(sig) => {
                report::out(&format!(
                    "{}: interrupted by signal {sig}; the saved backend is as before or \
                     re-initialised\n",
                    root.display()
                ));
                return Ok(ExitCode::from(signal_exit_code(*sig)));
            }
        };
        report::out(&format!("{}: {line}\n", root.display()));
    }
    if all {
        let n = roots.len();
        let s = if n == 1 { "" } else { "s" };
        report::out(&format!("{n} root{s}, {done} re-initialised\n"));
    }
    Ok(ExitCode::from(code))
}

/// Re-initialises one root, when that is safe.
fn reinit(
    terraform: &Path,
    root: &Path,
    data_dir: &Path,
    env: &[(OsString, OsString)],
    init_args: &[OsString],
    all: bool,
) -> RootResult {
    let mut f = Findings::gather(root, data_dir.to_path_buf());
    if let Saved::Unreadable(why) = &f.saved {
        return RootResult::Unreadable(why.clone());
    }
    // What the user's own arguments set (files relative to the root, as terraform reads them).
    let flags = parse_init_flags(init_args);
    let given = match config_file::merge(&flags.config, root) {
        Ok(g) => g,
        Err(why) => {
            return RootResult::Kept(format!(
                "the -backend-config after `--` is not understood: {why}"
            ))
        }
    };
    let Some(kind) = f.backend.as_ref().map(|b| b.kind.clone()) else {
        return if all {
            RootResult::NoKey
        } else {
            RootResult::NotARoot
        };
    };
    let credential_attrs = credentials::credential_attrs(&kind);
    let new_credentials = credential_attrs.iter().any(|a| given.string(a).is_some());
    let mut source = "terraform uses the credentials it finds itself".to_owned();
    if f.has_saved_credential() && !new_credentials {
        if let Some(file) = &f.key_in_config {
            return RootResult::Kept(format!(
                "the backend block in {} writes a key, so re-initialising cannot remove it: remove \
                 access_key/secret_key there first",
                file.display()
            ));
        }
        if let Saved::Uncheckable(why) = &f.saved {
            return RootResult::Kept(format!(
                "the fallback credentials cannot be checked ({why})"
            ));
        }
        // What terraform will use once the saved key is gone must work first.
        match check_fallback(&mut f) {
            Ok(ambient) => {
                source = format!(
                    "the saved key was removed; terraform now uses {}",
                    ambient.source
                )
            }
            Err(kept) => return kept,
        }
    } else if new_credentials {
        source = "the credentials given after `--` were saved".into();
    }
    let _lock = match Lock::acquire(data_dir) {
        Ok(l) => l,
        Err(e) => return RootResult::Kept(format!("{e:#}")),
    };
    // Re-read under the lock: the file to keep is the one there now.
    let current = match SavedBackend::read(data_dir) {
        Ok(Some(b)) if b.kind == kind => b,
        Ok(_) => {
            return RootResult::Kept("the saved backend changed meanwhile; run it again".into())
        }
        Err(e) => return RootResult::Kept(format!("the saved backend changed: {e}")),
    };
    let settings = match repair::preserved_settings(&current, credential_attrs) {
        Ok(s) => s,
        Err(why) => return RootResult::Kept(why),
    };
    let reconfigure = Reconfigure {
        terraform,
        data_dir,
        credential_attrs,
        env,
        // This init is tfshim's: the user's extra arguments are the ones after `--`.
        remove_env: &["TF_CLI_ARGS", "TF_CLI_ARGS_init"],
        users_command: false,
        show_output: log::debug_enabled(),
    };
    let no_color = !report::color_on(&std::io::stderr());
    let expected = |name: &str| given.string(name).map(str::to_owned);
    let opts = RunOptions {
        new_hash_expected: true,
        dir: Some(root),
    };
    let outcome = reconfigure.run_with(
        opts,
        &current,
        &settings,
        |file| {
            let mut args: Vec<OsString> = ["init", "-reconfigure", "-input=false"]
                .map(OsString::from)
                .to_vec();
            if no_color {
                args.push("-no-color".into());
            }
            // The saved settings first: the user's own `-backend-config` after them win.
            args.push(repair::backend_config_arg(file));
            args.extend(init_args.iter().cloned());
            args
        },
        &expected,
    );
    match outcome {
        Ok(Outcome::Done) => RootResult::Removed(source),
        Ok(Outcome::Failed(code)) => RootResult::Failed(format!(
            "terraform init -reconfigure failed (exit {code}; its output is above); the saved \
             backend was left as it was"
        )),
        Ok(Outcome::Interrupted(sig)) => RootResult::Interrupted(sig),
        Ok(Outcome::NotStarted(why)) => RootResult::Kept(why),
        Err(e) => RootResult::Failed(format!("{e:#}")),
    }
}
