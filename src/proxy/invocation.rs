//! What terraform will make of its command line: the leading global options, the subcommand, the
//! working directory (`-chdir`), the data dir (`TF_DATA_DIR`) and the extra arguments it takes from
//! `TF_CLI_ARGS`/`TF_CLI_ARGS_<cmd>`.
//!
//! Pure: nothing here touches the file system or the process environment directly (the environment is
//! passed in), so every form is unit-tested. The arguments themselves are never rewritten: tfshim hands
//! terraform exactly the `OsString`s it was given.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::backends::config_file::ConfigItem;
use crate::backends::saved::Secret;

/// Subcommands with a second word that names the real command (`state list`, `workspace select`).
const NESTED: &[&str] = &["state", "workspace", "providers", "env"];

/// The parsed view of one terraform command line. Its `Debug` leaves the arguments out: they may hold
/// secrets (`-backend-config=secret_key=…`, `-var`).
#[derive(Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Every argument after argv[0], verbatim.
    pub args: Vec<OsString>,
    /// The last leading `-chdir=DIR` (terraform honours the last one).
    pub chdir: Option<PathBuf>,
    /// A leading `-version`/`-v`/`--version` (terraform then runs `version`).
    pub version_flag: bool,
    /// A leading `-help`/`-h`/`--help`.
    pub help_flag: bool,
    /// The subcommand word, e.g. `plan`, or `None` for a bare `terraform`.
    pub command: Option<String>,
    /// The second word of a nested command (`list` in `state list`), when present.
    pub nested: Option<String>,
    /// Index into `args` of the first argument after the subcommand (and its nested word).
    pub rest_start: usize,
    /// Leading options terraform refuses ("Invalid flags before the subcommand"): anything but one
    /// `-chdir=DIR`, the version and the help flags. Terraform will not run the command.
    pub refused_leading: bool,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("arguments", &self.args.len())
            .field("chdir", &self.chdir)
            .field("command", &self.command)
            .field("nested", &self.nested)
            .field("refused_leading", &self.refused_leading)
            .finish_non_exhaustive()
    }
}

impl Invocation {
    /// Reads terraform's global options the way terraform's own `main` does: options come before the
    /// subcommand, and the first argument that does not start with `-` is the subcommand.
    pub fn parse(args: Vec<OsString>) -> Invocation {
        let mut chdir = None;
        let mut version_flag = false;
        let mut help_flag = false;
        let mut command = None;
        let mut nested = None;
        let mut rest_start = args.len();
        let mut chdirs = 0;
        let mut refused_leading = false;
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_os_str();
            // `-chdir=DIR` may name a non-UTF-8 directory, so it is matched on bytes.
            if arg.as_encoded_bytes().starts_with(b"-chdir=") {
                if arg.len() > "-chdir=".len() {
                    chdir = Some(PathBuf::from(os_tail(arg, "-chdir=".len())));
                }
                // terraform removes only the last one; any other is left as an invalid flag.
                chdirs += 1;
                refused_leading |= chdirs > 1 || arg.len() == "-chdir=".len();
                i += 1;
                continue;
            }
            let Some(text) = arg.to_str() else {
                // A non-UTF-8 word cannot be an option terraform knows; treat it as the subcommand
                // position, as terraform would (it then reports an unknown command).
                rest_start = i + 1;
                break;
            };
            if matches!(text, "-v" | "-version" | "--version") {
                version_flag = true;
            } else if matches!(text, "-h" | "-help" | "--help") {
                help_flag = true;
            } else if text.starts_with('-') {
                refused_leading = true;
            } else {
                command = Some(text.to_owned());
                rest_start = i + 1;
                if NESTED.contains(&text) {
                    if let Some(next) = args.get(i + 1).and_then(|a| a.to_str()) {
                        if !next.starts_with('-') {
                            nested = Some(next.to_owned());
                            rest_start = i + 2;
                        }
                    }
                }
                break;
            }
            i += 1;
        }
        // terraform's main turns `-v`/`-version` anywhere into `version`, and its CLI library shows help
        // for `-h`/`-help` anywhere; neither loads a backend.
        for arg in &args[rest_start.min(args.len())..] {
            match arg.to_str() {
                Some("-v" | "-version" | "--version") => version_flag = true,
                Some("-h" | "-help" | "--help") => help_flag = true,
                _ => {}
            }
        }
        Invocation {
            args,
            chdir,
            version_flag,
            help_flag,
            command,
            nested,
            rest_start,
            refused_leading,
        }
    }

    /// The directory terraform will run in, relative to tfshim's own working directory.
    pub fn work_dir(&self) -> &Path {
        self.chdir.as_deref().unwrap_or(Path::new("."))
    }

    /// `<chdir>/<TF_DATA_DIR or .terraform>`: terraform applies `TF_DATA_DIR` after `-chdir`, so a
    /// relative value is relative to the `-chdir` directory (docs/terraform-backend.md). An absolute one stands alone.
    pub fn data_dir(&self, tf_data_dir: Option<&OsStr>) -> PathBuf {
        crate::backends::saved::data_dir(self.work_dir(), tf_data_dir)
    }

    /// The name terraform uses for `TF_CLI_ARGS_<name>`: the command words joined by `_`, with `-`
    /// turned into `_` too (`TF_CLI_ARGS_force_unlock`).
    pub fn env_args_name(&self) -> Option<String> {
        let command = self.command.as_deref()?;
        let words = match &self.nested {
            Some(n) => format!("{command}_{n}"),
            None => command.to_owned(),
        };
        Some(format!("TF_CLI_ARGS_{}", words.replace('-', "_")))
    }

    /// The arguments terraform's subcommand will see: `TF_CLI_ARGS_<cmd>`, then `TF_CLI_ARGS`, then the
    /// command line (docs/terraform-backend.md, from terraform's documentation). `env` looks up a variable; unparseable values are ignored, as terraform
    /// would refuse to run anyway.
    pub fn effective_args(&self, env: impl Fn(&str) -> Option<String>) -> Vec<OsString> {
        let mut out = Vec::new();
        if let Some(name) = self.env_args_name() {
            for var in [name.as_str(), "TF_CLI_ARGS"] {
                if let Some(value) = env(var) {
                    if let Ok(words) = shell_words::split(&value) {
                        out.extend(words.into_iter().map(OsString::from));
                    }
                }
            }
        }
        out.extend(
            self.args[self.rest_start.min(self.args.len())..]
                .iter()
                .cloned(),
        );
        out
    }

    /// The same command line with `extra` arguments inserted right after the subcommand words, where
    /// terraform's flag parser reads them before any positional argument.
    pub fn with_extra_args(&self, extra: &[OsString]) -> Vec<OsString> {
        let at = self.rest_start.min(self.args.len());
        let mut out = self.args[..at].to_vec();
        out.extend(extra.iter().cloned());
        out.extend(self.args[at..].iter().cloned());
        out
    }
}

/// The bytes of `arg` after its first `skip` bytes (an ASCII prefix), without requiring UTF-8.
fn os_tail(arg: &OsStr, skip: usize) -> OsString {
    let bytes = arg.as_encoded_bytes();
    // SAFETY: the caller checked that `arg` starts with `skip` bytes of ASCII; the encoding's contract
    // (`OsStr::from_encoded_bytes_unchecked`) allows splitting right after a non-empty UTF-8 prefix.
    unsafe { OsStr::from_encoded_bytes_unchecked(&bytes[skip..]) }.to_owned()
}

/// What an `init` command line asks of the backend, read from its effective arguments.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InitFlags {
    /// `-reconfigure` or `-migrate-state`: the user already takes charge of the saved backend.
    pub reconfigures: bool,
    /// `-backend=false`: init will not touch the backend at all.
    pub backend_disabled: bool,
    /// Every `-backend-config` item, in order: terraform merges them in this order, a later value
    /// winning (`backends/config_file.rs` reads and merges them).
    pub config: Vec<ConfigItem>,
}

/// Parses `init`'s flags the way Go's `flag` package does: one or two leading dashes, `-name=value`
/// or `-name value` for valued flags, and a lone `--` or the first positional argument ending them.
pub fn parse_init_flags(args: &[OsString]) -> InitFlags {
    let mut flags = InitFlags::default();
    let mut i = 0;
    while i < args.len() {
        let Some(arg) = args[i].to_str() else {
            // A non-UTF-8 flag may be a `-backend-config` naming a file tfshim cannot name; a
            // non-UTF-8 positional argument ends the flags.
            if args[i].as_encoded_bytes().starts_with(b"-") {
                flags.config.push(ConfigItem::Opaque);
                i += 1;
                continue;
            }
            break;
        };
        if arg == "--" || !arg.starts_with('-') || arg == "-" {
            break;
        }
        let body = arg.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        match name {
            "reconfigure" | "migrate-state" => flags.reconfigures |= bool_flag(inline.as_deref()),
            "backend" => flags.backend_disabled = !bool_flag(inline.as_deref()),
            "backend-config" => {
                let value = match inline {
                    Some(v) => Some(v),
                    None => {
                        i += 1;
                        args.get(i).and_then(|a| a.to_str()).map(str::to_owned)
                    }
                };
                // terraform (`backendConfigOverrideBody` in internal/command/init.go): a value with
                // `=` is KEY=VALUE, split at the first `=`, the name taken as it is; anything else is
                // a file path.
                flags.config.push(match value {
                    None => ConfigItem::Opaque,
                    Some(v) => match v.split_once('=') {
                        Some((k, v)) => ConfigItem::Pair(k.to_owned(), Secret::new(v)),
                        None => ConfigItem::File(PathBuf::from(v)),
                    },
                });
            }
            // Valued flags whose value may follow as a separate word.
            "from-module" | "plugin-dir" | "lock-timeout" | "lockfile" | "test-directory"
                if inline.is_none() =>
            {
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    flags
}

/// The first positional argument of a subcommand (e.g. the plan file of `apply PLANFILE`), skipping
/// flags and the separate values of the `valued` flags.
pub fn first_positional<'a>(args: &'a [OsString], valued: &[&str]) -> Option<&'a OsStr> {
    let mut i = 0;
    while i < args.len() {
        let Some(arg) = args[i].to_str() else {
            return Some(&args[i]);
        };
        if arg == "--" {
            return args.get(i + 1).map(OsString::as_os_str);
        }
        if !arg.starts_with('-') || arg == "-" {
            return Some(&args[i]);
        }
        let name = arg.trim_start_matches('-');
        if !name.contains('=') && valued.contains(&name) {
            i += 1;
        }
        i += 1;
    }
    None
}

/// Go's boolean flag: bare means true, `=false`/`=0`/`=f` mean false.
fn bool_flag(value: Option<&str>) -> bool {
    !matches!(value, Some("false" | "0" | "f" | "F" | "FALSE" | "False"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn parse(v: &[&str]) -> Invocation {
        Invocation::parse(os(v))
    }

    #[test]
    fn bare_and_simple_commands() {
        let inv = parse(&[]);
        assert_eq!(inv.command, None);
        let inv = parse(&["plan", "-out=p"]);
        assert_eq!(inv.command.as_deref(), Some("plan"));
        assert_eq!(inv.rest_start, 1);
        assert_eq!(inv.chdir, None);
    }

    #[test]
    fn chdir_last_wins_and_only_before_the_subcommand() {
        let inv = parse(&["-chdir=a", "-chdir=b dir", "plan", "-chdir=c"]);
        assert_eq!(inv.chdir, Some(PathBuf::from("b dir")));
        assert_eq!(inv.command.as_deref(), Some("plan"));
        // An empty -chdir= is terraform's error to report; tfshim reads it as "no chdir".
        assert_eq!(parse(&["-chdir=", "plan"]).chdir, None);
        // terraform then refuses to run ("Invalid flags before the subcommand").
        assert!(parse(&["-chdir=a", "-chdir=b", "plan"]).refused_leading);
        assert!(parse(&["-chdir=", "plan"]).refused_leading);
        assert!(parse(&["-no-color", "plan"]).refused_leading);
        assert!(!parse(&["-chdir=a", "plan", "-no-color"]).refused_leading);
        assert!(!parse(&["-version"]).refused_leading);
    }

    #[test]
    fn version_and_help_flags() {
        let inv = parse(&["-version"]);
        assert!(inv.version_flag && inv.command.is_none());
        assert!(parse(&["-v"]).version_flag);
        assert!(parse(&["--version"]).version_flag);
        let inv = parse(&["-help"]);
        assert!(inv.help_flag);
        assert!(parse(&["--help"]).help_flag);
        // Anywhere on the line they turn the command into version/help, as in terraform.
        let inv = parse(&["plan", "-help"]);
        assert!(inv.help_flag && inv.command.as_deref() == Some("plan"));
        assert!(parse(&["plan", "-version"]).version_flag);
        assert!(!parse(&["plan", "-var=x=-v"]).version_flag);
    }

    #[test]
    fn nested_commands() {
        let inv = parse(&["state", "list", "-id=x"]);
        assert_eq!(inv.command.as_deref(), Some("state"));
        assert_eq!(inv.nested.as_deref(), Some("list"));
        assert_eq!(inv.rest_start, 2);
        assert_eq!(
            inv.env_args_name().as_deref(),
            Some("TF_CLI_ARGS_state_list")
        );
        assert_eq!(
            parse(&["force-unlock", "id"]).env_args_name().as_deref(),
            Some("TF_CLI_ARGS_force_unlock")
        );
        let inv = parse(&["workspace", "-help"]);
        assert_eq!(inv.nested, None);
        assert_eq!(inv.rest_start, 1);
    }

    #[test]
    fn data_dir_follows_chdir() {
        let inv = parse(&["-chdir=infra", "plan"]);
        assert_eq!(inv.data_dir(None), PathBuf::from("infra/.terraform"));
        assert_eq!(
            inv.data_dir(Some(OsStr::new("cache"))),
            PathBuf::from("infra/cache")
        );
        assert_eq!(
            inv.data_dir(Some(OsStr::new("/abs/cache"))),
            PathBuf::from("/abs/cache")
        );
        assert_eq!(
            parse(&["plan"]).data_dir(Some(OsStr::new(""))),
            PathBuf::from("./.terraform")
        );
    }

    #[test]
    fn env_args_come_first_specific_then_general() {
        let inv = parse(&["init", "-upgrade"]);
        let env = |k: &str| match k {
            "TF_CLI_ARGS_init" => Some("-backend-config='bucket=my bucket'".to_owned()),
            "TF_CLI_ARGS" => Some("-no-color".to_owned()),
            _ => None,
        };
        assert_eq!(
            inv.effective_args(env),
            os(&["-backend-config=bucket=my bucket", "-no-color", "-upgrade"])
        );
        // Unbalanced quotes: terraform refuses; tfshim ignores the variable.
        assert_eq!(
            inv.effective_args(|_| Some("'oops".to_owned())),
            os(&["-upgrade"])
        );
    }

    #[test]
    fn extra_args_go_right_after_the_subcommand() {
        let inv = parse(&["-chdir=x", "init", "-upgrade", "dir"]);
        assert_eq!(
            inv.with_extra_args(&os(&["-reconfigure"])),
            os(&["-chdir=x", "init", "-reconfigure", "-upgrade", "dir"])
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments_survive() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'-', b'v', b'a', b'r', b'=', b'x', b'=', 0xff, 0xfe]);
        let args = vec![OsString::from("plan"), odd.clone()];
        let inv = Invocation::parse(args.clone());
        assert_eq!(inv.args, args);
        assert_eq!(inv.effective_args(|_| None), vec![odd.clone()]);
        let dir = OsString::from_vec(vec![b'-', b'c', b'h', b'd', b'i', b'r', b'=', 0xff]);
        let inv = Invocation::parse(vec![dir, OsString::from("plan")]);
        assert_eq!(
            inv.chdir,
            Some(PathBuf::from(OsString::from_vec(vec![0xff])))
        );
        assert_eq!(inv.command.as_deref(), Some("plan"));
        // A non-UTF-8 subcommand is no command tfshim knows.
        let inv = Invocation::parse(vec![OsString::from_vec(vec![0xff]), odd]);
        assert_eq!(inv.command, None);
        assert_eq!(inv.rest_start, 1);
    }

    #[test]
    fn positional_arguments() {
        let valued = &["var", "var-file"];
        assert_eq!(
            first_positional(&os(&["-var", "a=b", "-auto-approve", "p.plan"]), valued),
            Some(OsStr::new("p.plan"))
        );
        assert_eq!(
            first_positional(&os(&["-var=a=b", "-input=false"]), valued),
            None
        );
        assert_eq!(
            first_positional(&os(&["--", "-odd"]), valued),
            Some(OsStr::new("-odd"))
        );
    }

    #[test]
    fn init_flags() {
        let f = parse_init_flags(&os(&[
            "-input=false",
            "-backend-config=access_key=AK",
            "--backend-config",
            "secret_key=a=b",
            "-backend-config=conf.hcl",
            "-upgrade",
        ]));
        assert_eq!(
            f.config,
            vec![
                ConfigItem::Pair("access_key".to_owned(), Secret::new("AK")),
                ConfigItem::Pair("secret_key".to_owned(), Secret::new("a=b")),
                ConfigItem::File(PathBuf::from("conf.hcl")),
            ]
        );
        assert!(!format!("{f:?}").contains("a=b"));
        assert!(!f.reconfigures && !f.backend_disabled);
        assert!(parse_init_flags(&os(&["-reconfigure"])).reconfigures);
        assert!(parse_init_flags(&os(&["-migrate-state"])).reconfigures);
        assert!(!parse_init_flags(&os(&["-reconfigure=false"])).reconfigures);
        assert!(parse_init_flags(&os(&["-backend=false"])).backend_disabled);
        // Flags end at the first positional argument.
        assert!(!parse_init_flags(&os(&["dir", "-reconfigure"])).reconfigures);
        // A valued flag's separate value is not mistaken for a flag.
        let f = parse_init_flags(&os(&["-plugin-dir", "-reconfigure"]));
        assert!(!f.reconfigures);
    }
}
