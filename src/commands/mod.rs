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
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;

use crate::proxy::locate::Located;
use crate::report;

const ENVIRONMENT: &str = "\
Every flag takes one dash or two (`-json` or `--json`), as terraform's do; terraform's global
`-chdir=DIR` may come before `shim` (`terraform -chdir=DIR shim doctor`). `shim help CMD` shows a
command's help.

ENVIRONMENT:
  TFSHIM_MODE=fix|warn|off   fix (default): check the saved credential (S3 key, http password,
                             gcs access token, azurerm key or SAS) and repair a stale one;
                             warn: check and tell, change nothing; off: pure pass-through
                             (doctor says what each mode does)
  TFSHIM_TERRAFORM=PATH      the real terraform (absolute path or a name on PATH)
  TFSHIM_ENGINE=terraform|tofu  the engine when invoked as `tfshim` (a link's name decides otherwise)
  TFSHIM_STS_TIMEOUT=SECS    deadline of a root's whole credential check, every request of it
                             (default 5; fractions allowed; more than 0, at most 300)
  TFSHIM_FRESH_KEY_WAIT=SECS how long rejected fallback credentials are asked again, with backoff
                             (new keys can be rejected for 5-10 s; default 10, 0 to 120, 0: off)
  TFSHIM_RETRY=0|1           0 (false, off, no): no reactive fallback (repair and retry of init/plan
                             after terraform's own rejected-key error, when the preflight had no
                             verdict); 1 (default; true, on, yes): on
  TFSHIM_QUIET=1|CODE,...    1 (true, all): no security warnings on stderr during proxied runs; or
                             only those codes: plaintext-keys, secret-in-backend,
                             state-tracked-by-git, data-dir-not-ignored
  TFSHIM_REPORT=PATH         append each run's decision to PATH as one line of JSON (doctor's
                             schema), mode 0600
  TFSHIM_LOG=debug|trace     print tfshim's decisions (never secrets) with timings (off, error,
                             warn, info: nothing more)
  TFSHIM_RECURSION_COUNT     set by tfshim on the terraform it runs; stops loops
  NO_COLOR, CLICOLOR_FORCE, FORCE_COLOR, TERM=dumb, -no-color: colour as terraform and most tools
  Values are taken in any case; an invalid value is said once on stderr with the value used
  instead, and never stops terraform.

EXIT CODES:
  doctor       0 nothing to do, 3 a repair is due, 4 stale key that cannot be repaired (no working
               credentials, or the key is written in the .tf backend block), 5 the saved file cannot
               be read, 1 doctor failed (also: the directory cannot be read). TFSHIM_MODE=warn: the
               same (the next plan only warns); off: 0 (the next plan changes nothing).
  sweep        0, 3 and 4 as doctor; with --fix: 0 every stale root repaired, 1 a repair failed,
               4 some root cannot be repaired; 5 instead of 0: some directory could not be read.
  forget-keys  0 every saved key removed (or none saved), 1 a removal failed or was not attempted
               (also: DIR is not a root), 4 some root has no working fallback credentials.
  reinit       0 every root re-initialised, 1 a reinit failed or was not attempted (also: DIR is
               not a root), 4 some root has no working fallback credentials.
  which        0 found; 127 no terraform found, 126 it cannot be run, 1 it is tfshim itself.
  Every command: 1 when its output cannot be written. Proxied runs exit with terraform's code;
  1 when tfshim refuses (a stale credential and no working fallback; a loop),
  126 when TFSHIM_TERRAFORM cannot be run, 127 when no terraform is found. Any other failure of
  tfshim's own says one line and runs terraform unchanged.";

/// tfshim: a drop-in `terraform` that heals S3, http, gcs and azurerm backends whose saved credential
/// was rotated away or expired.
///
/// Every command line that does not start with `shim` is terraform's and is passed on untouched.
#[derive(Debug, Parser)]
#[command(name = "tfshim", bin_name = "tfshim shim", version, after_help = ENVIRONMENT)]
pub struct ShimCli {
    #[command(subcommand)]
    pub command: ShimCommand,
    /// No colour in tfshim's output, as terraform's `-no-color` (read with the other settings,
    /// which already honour it; declared here so that clap accepts it on every command).
    #[arg(long = "no-color", global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum ShimCommand {
    /// Print the real terraform binary tfshim runs (first line) and how it was found.
    ///
    /// Fails where a run would: exit 127 when none is found, 126 when it cannot be run (a
    /// directory, no execute bit), 1 when it is tfshim itself.
    Which,
    /// Print tfshim's version and the wrapped binary's.
    Version,
    /// Diagnose the saved backend and the credentials, changing nothing.
    ///
    /// Says what the next plan does under the TFSHIM_MODE in force, and what `fix` would do.
    /// Exit codes: 0 nothing to do, 3 a repair is due, 4 the saved key is stale and cannot be
    /// repaired (no working credentials, or it is written in the .tf backend block), 5 the saved
    /// file cannot be read, 1 doctor itself failed. Under TFSHIM_MODE=off: 0.
    Doctor {
        /// The Terraform root to look at (default: the current directory).
        #[arg(value_name = "DIR", conflicts_with = "chdir")]
        dir: Option<PathBuf>,
        /// The Terraform root to look at, as terraform's `-chdir=DIR`.
        #[arg(long, value_name = "DIR")]
        chdir: Option<PathBuf>,
        /// One JSON object on stdout (schema in the README).
        #[arg(long)]
        json: bool,
    },
    /// Check every Terraform root under DIR, each distinct saved key once; repair with -fix.
    ///
    /// A root is a directory holding `.terraform/terraform.tfstate` (`.git`, `node_modules` and the
    /// data dirs' own module caches are not searched). Exit codes: 0 nothing to do, 3 a repair is due,
    /// 4 some saved key is stale and no working credentials were found; with -fix: 0 every stale root
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
    /// saved key removed (or none saved), 1 a removal failed or was not attempted (also: DIR is not
    /// a root; -all searches under it), 4 some root has no working fallback credentials (its key
    /// was kept).
    ForgetKeys {
        /// The root (with -all: the directory to search, as `sweep` does).
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
    /// 0 every root re-initialised, 1 a reinit failed or was not attempted (also: DIR is not a
    /// root; -all searches under it), 4 some root has no working fallback credentials (nothing
    /// changed).
    Reinit {
        /// The root (with -all: the directory to search, as `sweep` does).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Every root under DIR (`.terraform` data dirs, as `sweep` finds them).
        #[arg(long)]
        all: bool,
        /// Arguments for terraform's `init`, after `--`.
        #[arg(last = true, value_name = "INIT_ARGS")]
        init_args: Vec<OsString>,
    },
    /// The completions of the last word of LINE (a command line up to the cursor, `terraform shim
    /// sweep -f`), one per line: for shells whose scripts in shell/ ask tfshim at each <Tab>
    /// (PowerShell). One argument, the whole line: Windows PowerShell drops empty arguments.
    /// Not clap's: parsed by [`parse`] itself, so that no generated completion offers it.
    #[command(skip)]
    Complete { line: String },
    /// Print a completion script for tfshim's own commands (for tfshim, terraform and tofu).
    ///
    /// Under each name tfshim answers to, so that `terraform shim <Tab>` completes through the
    /// alias or link. Sourcing it for `terraform` alone replaces terraform's own completion: the
    /// scripts in shell/ combine the two.
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: Shell,
    },
}

/// The hidden command the PowerShell integration asks at each <Tab>: `shim __complete LINE`.
const COMPLETE: &str = "__complete";

/// The names `shim completions` writes completions for.
const COMPLETION_NAMES: [&str; 3] = ["tfshim", "terraform", "tofu"];

/// The arguments of a call of tfshim's own commands: `shim …`, or `-chdir=DIR shim …` (terraform's
/// global option, which comes before the command). `None`: the command line is terraform's.
#[derive(Debug, PartialEq, Eq)]
pub struct ShimCall<'a> {
    /// The last `-chdir=DIR` before `shim` (terraform's rule: the last one wins).
    pub chdir: Option<PathBuf>,
    /// Everything after `shim`.
    pub args: &'a [OsString],
}

/// Recognises a call of tfshim's own commands (see [`ShimCall`]). Pure.
pub fn shim_call(args: &[OsString]) -> Option<ShimCall<'_>> {
    let mut chdir = None;
    for (i, arg) in args.iter().enumerate() {
        if arg == "shim" {
            return Some(ShimCall {
                chdir,
                args: &args[i + 1..],
            });
        }
        match arg.to_str().and_then(|a| a.strip_prefix("-chdir=")) {
            Some(dir) if !dir.is_empty() => chdir = Some(PathBuf::from(dir)),
            _ => return None,
        }
    }
    None
}

/// Parses a call (everything after `shim`), after changing into its `-chdir` directory. Help and
/// parse errors exit through clap, as usual, with a "did you mean" for a near miss.
pub fn parse(call: &ShimCall<'_>) -> Result<ShimCli> {
    if let Some(dir) = &call.chdir {
        std::env::set_current_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot change into -chdir={}: {e}", dir.display()))?;
    }
    if let [first, line] = call.args {
        if first == COMPLETE {
            return Ok(ShimCli {
                command: ShimCommand::Complete {
                    line: line.to_string_lossy().into_owned(),
                },
                no_color: false,
            });
        }
    }
    let args = dashes(call.args);
    let mut cmd = ShimCli::command().bin_name(format!("{} shim", report::command::program()));
    let argv = std::iter::once(OsString::from("shim")).chain(args.iter().cloned());
    let matches = cmd
        .try_get_matches_from_mut(argv)
        .unwrap_or_else(|e| with_suggestion(e, &cmd, &args).exit());
    Ok(ShimCli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit()))
}

/// Terraform's single-dash long flags as clap's double-dash ones: `-json` → `--json`,
/// `-jobs=4` → `--jobs=4`. One-letter flags (`-h`, `-V`) and everything after `--` (terraform's
/// own arguments for `reinit`) are left as they are. Pure.
fn dashes(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest = false;
    for arg in args {
        let s = arg.to_str().unwrap_or_default();
        if rest || s == "--" {
            rest = true;
            out.push(arg.clone());
            continue;
        }
        let name = s.strip_prefix('-').filter(|n| !n.starts_with('-'));
        match name {
            Some(n) if n.split('=').next().is_some_and(|n| n.len() > 1) => {
                out.push(OsString::from(format!("-{s}")))
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

/// Adds clap's "tip: a similar subcommand/argument exists" to an error about a word it does not
/// know, when a known one is close (clap's own suggestions need a crate outside the tree).
fn with_suggestion(mut err: clap::Error, cmd: &clap::Command, args: &[OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let sub = args
        .iter()
        .filter_map(|a| a.to_str())
        .find(|a| !a.starts_with('-'))
        .and_then(|a| cmd.find_subcommand(a));
    let (given, candidates, kind) = match err.kind() {
        ErrorKind::InvalidSubcommand => {
            let names = cmd
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .chain(["help".to_owned()])
                .collect::<Vec<_>>();
            let given = match err.get(ContextKind::InvalidSubcommand) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => return err,
            };
            (given, names, ContextKind::SuggestedSubcommand)
        }
        ErrorKind::UnknownArgument => {
            let on = sub.unwrap_or(cmd);
            let names = on
                .get_arguments()
                .filter_map(|a| a.get_long())
                .map(|l| format!("--{l}"))
                .chain(["--help".to_owned()])
                .collect::<Vec<_>>();
            let given = match err.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(s)) => s.split('=').next().unwrap_or_default().to_owned(),
                _ => return err,
            };
            (given, names, ContextKind::SuggestedArg)
        }
        _ => return err,
    };
    if err.get(kind).is_none() {
        if let Some(best) = closest(&given, &candidates) {
            err.insert(kind, ContextValue::String(best.to_owned()));
        }
    }
    err
}

/// The candidate nearest `given` by edit distance, when it is near enough to be a typo (at most a
/// third of the word, and at least one edit allowed). Pure.
fn closest<'a>(given: &str, candidates: &'a [String]) -> Option<&'a str> {
    let limit = (given.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(given, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// The words after `shim` in a command line up to the cursor; a trailing space begins an empty
/// word. Pure.
fn words_after_shim(line: &str) -> Vec<String> {
    let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    if line.ends_with(char::is_whitespace) {
        words.push(String::new());
    }
    match words.iter().position(|w| w == "shim") {
        Some(i) => words.split_off(i + 1),
        None => Vec::new(),
    }
}

/// What completes the last of `words` (the words after `shim`; the last one is being typed):
/// the commands, until one is given; then its flags (`--json`), its value choices (the shells of
/// `completions`). Hidden commands are never offered. Pure.
fn candidates(cmd: &clap::Command, words: &[String]) -> Vec<String> {
    let (typed, before) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let sub = before
        .iter()
        .find(|w| !w.starts_with('-'))
        .and_then(|w| cmd.find_subcommand(w));
    let mut out: Vec<String> = match sub {
        None => cmd
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name().to_owned())
            .chain(["help".to_owned()])
            .collect(),
        Some(sub) => {
            let flags = sub
                .get_arguments()
                .filter_map(|a| a.get_long())
                .map(|l| format!("--{l}"))
                .chain(["--help".to_owned()]);
            let values = sub
                .get_positionals()
                .flat_map(|a| a.get_possible_values())
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_owned());
            flags.chain(values).collect()
        }
    };
    // `-js` completes as `-json`: the dash style the user began with is kept.
    if typed.starts_with('-') && !typed.starts_with("--") {
        out = out
            .into_iter()
            .filter_map(|c| c.strip_prefix('-').map(str::to_owned))
            .collect();
    }
    out.retain(|c| c.starts_with(typed));
    out
}

/// Runs a command, then checks that its output was written: a failed write is an error (exit 1,
/// one line); a reader that went away (`| head`) ends it quietly.
pub fn run(cli: ShimCli, located: Result<Located>) -> Result<ExitCode> {
    let code = dispatch(cli, located)?;
    report::output_written()?;
    Ok(code)
}

fn dispatch(cli: ShimCli, located: Result<Located>) -> Result<ExitCode> {
    match cli.command {
        ShimCommand::Which => {
            let located = located?;
            // A copy of tfshim under another name: a run would loop until the recursion counter
            // stops it, so `which` fails now, naming it.
            if std::env::current_exe()
                .is_ok_and(|me| crate::proxy::locate::is_copy_of_self(&located.path, &me))
            {
                anyhow::bail!(
                    "{} ({}) is a copy of tfshim itself; set TFSHIM_TERRAFORM to the real {} binary",
                    located.path.display(),
                    located.source,
                    located.engine.binary_name()
                );
            }
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
        ShimCommand::Doctor { dir, chdir, json } => {
            return doctor::run(dir.or(chdir), json, located)
        }
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
        ShimCommand::Complete { line } => {
            for c in candidates(&ShimCli::command(), &words_after_shim(&line)) {
                report::out(&format!("{c}\n"));
            }
        }
        ShimCommand::Completions { shell } => {
            // Completions for `tfshim shim …`; terraform's own arguments complete through
            // terraform's completion (see shell/).
            // Under each name tfshim answers to: `terraform shim <Tab>` through the alias or link
            // (the shell/ scripts hand only the words after `shim` to these).
            for name in COMPLETION_NAMES {
                // The bin name too: clap_complete names its states by it.
                let shim = ShimCli::command()
                    .name("shim")
                    .bin_name(format!("{name} shim"));
                let mut cmd = clap::Command::new(name)
                    .disable_help_subcommand(true)
                    .subcommand(shim);
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut cmd, name, &mut script);
                report::out(&String::from_utf8_lossy(&script));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn single_dash_long_flags_become_double() {
        assert_eq!(
            dashes(&os(&["doctor", "-json", "-chdir=x", "-h", "--fix"])),
            os(&["doctor", "--json", "--chdir=x", "-h", "--fix"])
        );
        // After `--`: terraform's arguments for reinit, as given.
        assert_eq!(
            dashes(&os(&["reinit", "--", "-backend-config=a=b"])),
            os(&["reinit", "--", "-backend-config=a=b"])
        );
    }

    #[test]
    fn chdir_before_shim() {
        let args = os(&["-chdir=a", "-chdir=b", "shim", "doctor"]);
        let call = shim_call(&args).unwrap();
        assert_eq!(call.chdir, Some(PathBuf::from("b")));
        assert_eq!(call.args, &os(&["doctor"])[..]);
        assert_eq!(shim_call(&os(&["shim"])).unwrap().chdir, None);
        // terraform's own command lines.
        assert_eq!(shim_call(&os(&["-chdir=a", "plan", "shim"])), None);
        assert_eq!(shim_call(&os(&["plan"])), None);
        assert_eq!(shim_call(&os(&["-chdir=", "shim"])), None);
        assert_eq!(shim_call(&os(&["-version", "shim"])), None);
    }

    #[test]
    fn near_misses_are_suggested() {
        let names = ["doctor", "sweep", "forget-keys"].map(String::from);
        assert_eq!(closest("doctr", &names), Some("doctor"));
        assert_eq!(closest("forgetkeys", &names), Some("forget-keys"));
        assert_eq!(closest("plan", &names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn completion_candidates() {
        let cmd = ShimCli::command();
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(candidates(&cmd, &words(&["d"])), ["doctor"]);
        assert!(!candidates(&cmd, &words(&[""])).contains(&COMPLETE.to_owned()));
        assert_eq!(candidates(&cmd, &words(&["doctor", "--j"])), ["--json"]);
        assert_eq!(candidates(&cmd, &words(&["sweep", "-f"])), ["-fix"]);
        assert_eq!(candidates(&cmd, &words(&["completions", "b"])), ["bash"]);
    }

    #[test]
    fn words_of_a_line() {
        assert_eq!(words_after_shim("terraform shim d"), ["d"]);
        assert_eq!(
            words_after_shim("terraform -chdir=x shim doctor "),
            ["doctor", ""]
        );
        assert!(words_after_shim("terraform plan").is_empty());
    }

    #[test]
    fn version_says_tfshim() {
        assert_eq!(
            ShimCli::command().render_version(),
            format!("tfshim {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}
