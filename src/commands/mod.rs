//! tfshim's own commands, `tfshim shim …` (also `terraform shim …` through the alias or link).
//! Terraform has no `shim` subcommand, so this namespace never collides with terraform's; everything
//! else on the command line is terraform's and is never parsed by clap.
//!
//! Owns the commands' own behaviour; the checks and repairs they run are `heal`'s, not copied here.

pub mod doctor;
pub mod forget_keys;
pub mod reinit;
pub mod sweep;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::proxy::locate::Located;
use crate::report;

const ENVIRONMENT: &str = "\
ENVIRONMENT:
  TFSHIM_MODE=fix|warn|off   fix (default): check the saved S3 key and repair a stale one;
                             warn: check and tell, change nothing; off: pure pass-through
  TFSHIM_TERRAFORM=PATH      the real terraform (absolute path or a name on PATH)
  TFSHIM_ENGINE=terraform|tofu  the engine when invoked as `tfshim` (a link's name decides otherwise)
  TFSHIM_STS_TIMEOUT=SECS    deadline of a root's whole credential check, every request of it
                             (default 5; fractions allowed)
  TFSHIM_FRESH_KEY_WAIT=SECS how long rejected fallback credentials are asked again, with backoff
                             (new keys can be rejected for 5-10 s; default 10, 0: off)
  TFSHIM_RETRY=0             no reactive fallback (repair and retry of init/plan after terraform's
                             own rejected-key error, when the preflight had no verdict)
  TFSHIM_QUIET=1             no security warnings on stderr during proxied runs
  TFSHIM_REPORT=PATH         write each run's decision as JSON (doctor's schema) to PATH, mode 0600
  TFSHIM_LOG=debug           print tfshim's decisions (never secrets) with timings
  TFSHIM_RECURSION_COUNT     set by tfshim on the terraform it runs; stops loops

EXIT CODES (doctor): 0 nothing to do, 3 a repair is due, 4 stale key that cannot be repaired (no
working credentials, or the key is written in the .tf backend block), 1 doctor failed (also: -chdir
cannot be read). sweep: the same, and 5 when it would exit 0 but some directory could not be read. Proxied runs exit with terraform's code; 1 when tfshim refuses or a repair fails,
127 when no terraform is found.";

/// tfshim: a drop-in `terraform` that heals S3 backends whose saved access key was rotated away.
///
/// Every command line that does not start with `shim` is terraform's and is passed on untouched.
#[derive(Debug, Parser)]
#[command(name = "tfshim shim", version, disable_help_subcommand = true, after_help = ENVIRONMENT)]
pub struct ShimCli {
    #[command(subcommand)]
    pub command: ShimCommand,
}

#[derive(Debug, Subcommand)]
pub enum ShimCommand {
    /// Print the real terraform binary tfshim runs (first line) and how it was found.
    Which,
    /// Print tfshim's version and the wrapped binary's.
    Version,
    /// Diagnose the saved backend and the credentials, changing nothing.
    ///
    /// Exit codes: 0 nothing to do, 3 a repair is due, 4 the saved key is stale and cannot be
    /// repaired (no working credentials, or it is written in the .tf backend block), 1 doctor itself
    /// failed.
    Doctor {
        /// The Terraform root to look at (terraform's `-chdir=DIR` is accepted too).
        #[arg(long, value_name = "DIR")]
        chdir: Option<PathBuf>,
        /// One JSON object on stdout (schema in the README).
        #[arg(long)]
        json: bool,
    },
    /// Check every Terraform root under DIR, each distinct saved key once; repair with --fix.
    ///
    /// A root is a directory holding `.terraform/terraform.tfstate` (`.git`, `node_modules` and the
    /// data dirs' own module caches are not searched). Exit codes: 0 nothing to do, 3 a repair is due,
    /// 4 some saved key is stale and no working credentials were found; with --fix: 0 every stale root
    /// repaired, 1 a repair failed, 4 some root cannot be repaired. 5 instead of 0: some directory
    /// could not be read (each is named on stderr).
    Sweep {
        /// The directory to search.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Repair every stale root, one at a time, exactly as a proxied `plan` would.
        #[arg(long)]
        fix: bool,
        /// One JSON document on stdout at the end (schema in the README).
        #[arg(long)]
        json: bool,
        /// STS checks in flight at once.
        #[arg(long, value_name = "N", default_value_t = sweep::DEFAULT_JOBS,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
        jobs: usize,
    },
    /// Remove the static S3 keys saved in a root's backend, keeping every other saved setting.
    ///
    /// The safe form of "re-initialise without keys" (a bare `terraform init -reconfigure` drops the
    /// settings given at init and can move the root to other state): the repair's own reconfigure,
    /// lock, checks and rollback, run before or after a rotation. The credentials terraform falls
    /// back to are checked with STS first; without working ones the key is kept. Exit codes: 0 every
    /// saved key removed (or none saved), 1 a removal failed or was not attempted, 4 some root has no
    /// working fallback credentials (its key was kept).
    ForgetKeys {
        /// The root (with --all: the directory to search, as `sweep` does).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Every root under DIR (`.terraform` data dirs, as `sweep` finds them).
        #[arg(long)]
        all: bool,
    },
    /// After a terraform upgrade: `init -reconfigure` with every saved backend setting re-supplied.
    ///
    /// A new terraform version may hash the same backend block anew (0.12 → 0.13 does): terraform
    /// then asks for `init`, which without the first init's -backend-config flags fails or addresses
    /// other state. This re-supplies every saved setting from the saved file and removes the saved
    /// credentials (as forget-keys: the credentials terraform falls back to are checked with STS
    /// first; without working ones nothing is changed), under the repair's lock, checks and
    /// rollback; only the backend hash may change. Arguments after `--` go to that init as given
    /// (e.g. a new key: `-- -backend-config=access_key=… -backend-config=secret_key=…`). Exit codes:
    /// 0 every root re-initialised (or none saved), 1 a reinit failed or was not attempted, 4 some
    /// root has no working fallback credentials (nothing changed).
    Reinit {
        /// The root (with --all: the directory to search, as `sweep` does).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Every root under DIR (`.terraform` data dirs, as `sweep` finds them).
        #[arg(long)]
        all: bool,
        /// Arguments for terraform's `init`, after `--`.
        #[arg(last = true, value_name = "INIT_ARGS")]
        init_args: Vec<OsString>,
    },
    /// Print a completion script for tfshim's own commands.
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: Shell,
    },
}

/// Parses `args` (everything after `shim`). Help and parse errors exit through clap, as usual.
pub fn parse(args: &[OsString]) -> ShimCli {
    // terraform's single-dash `-chdir=DIR`, so `terraform shim doctor -chdir=x` reads naturally.
    let args = args.iter().map(|a| match a.to_str() {
        Some(s) if s.starts_with("-chdir") => OsString::from(format!("-{s}")),
        _ => a.clone(),
    });
    ShimCli::parse_from(std::iter::once(OsString::from("tfshim shim")).chain(args))
}

pub fn run(cli: ShimCli, located: Result<Located>) -> Result<ExitCode> {
    match cli.command {
        ShimCommand::Which => {
            let located = located?;
            report::out(&format!(
                "{}\n{} ({})\n",
                located.path.display(),
                located.engine.binary_name(),
                located.source
            ));
        }
        ShimCommand::Version => {
            report::out(&format!("tfshim {}\n", env!("CARGO_PKG_VERSION")));
            match located {
                Ok(l) => {
                    let version = crate::proxy::locate::version_of(&l.path)
                        .unwrap_or_else(|| "version unknown".into());
                    report::out(&format!("wraps {} ({version})\n", l.path.display()));
                }
                Err(e) => report::out(&format!("wraps nothing: {e:#}\n")),
            }
        }
        ShimCommand::ForgetKeys { dir, all } => return forget_keys::run(dir, all, located),
        ShimCommand::Reinit {
            dir,
            all,
            init_args,
        } => return reinit::run(dir, all, init_args, located),
        ShimCommand::Doctor { chdir, json } => return doctor::run(chdir, json, located),
        ShimCommand::Sweep {
            dir,
            fix,
            json,
            jobs,
        } => {
            let opts = sweep::Options {
                dir,
                fix,
                json,
                jobs,
            };
            return sweep::run(opts, located);
        }
        ShimCommand::Completions { shell } => {
            // Completions for `tfshim shim …`; terraform's own arguments complete through
            // terraform's completion (see shell/).
            let mut cmd = clap::Command::new("tfshim").subcommand(ShimCli::command().name("shim"));
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "tfshim", &mut script);
            report::out(&String::from_utf8_lossy(&script));
        }
    }
    Ok(ExitCode::SUCCESS)
}
