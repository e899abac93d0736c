//! The decision: from the facts gathered so far to the next step. Pure and table-tested.
//!
//! The orchestrator (`preflight/`) calls [`next`] repeatedly, gathering the fact a step asks for
//! (e.g. an STS verdict) until the step is final. So every network call is made only when the decision
//! needs it: a directory without a saved static key costs no request at all.
//!
//! More than half of this file is the table of cases that tests the decision.

use std::ffi::{OsStr, OsString};

use serde_json::Value;

use crate::aws::verdict::Verdict;
use crate::backends::config_file::{same_value, Given};
use crate::proxy::invocation::{first_positional, parse_init_flags, InitFlags, Invocation};
/// Defined with the other settings; the decision's input.
pub use crate::settings::Mode;

/// What a subcommand does with the backend (Terraform 1.11 `internal/command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandClass {
    /// Does not load the backend (or loads another copy of it, like `apply PLANFILE`).
    PassThrough,
    /// Loads the saved backend, so a stale saved key fails it.
    LoadsBackend,
    /// `init`, with its flags.
    Init(InitFlags),
    /// `apply PLANFILE`: terraform uses the backend copy inside the plan file, not the saved one.
    ApplyPlanFile(OsString),
}

/// Flags of `apply`/`destroy` that take a separate value, to find the plan-file argument.
const APPLY_VALUED: &[&str] = &[
    "backup",
    "lock-timeout",
    "parallelism",
    "state",
    "state-out",
    "var",
    "var-file",
    "target",
    "replace",
    "exclude",
];

/// Classifies the subcommand. `effective` is what the subcommand will see (env args included).
pub fn classify_command(inv: &Invocation, effective: &[OsString]) -> CommandClass {
    use CommandClass::*;
    // terraform turns `-v`/`-version` anywhere in the merged arguments (TF_CLI_ARGS included) into
    // `version`, and refuses odd leading options: neither loads the backend.
    let version_in_env = effective
        .iter()
        .any(|a| matches!(a.to_str(), Some("-v" | "-version" | "--version")));
    if inv.version_flag || inv.help_flag || inv.refused_leading || version_in_env {
        return PassThrough;
    }
    let Some(command) = inv.command.as_deref() else {
        return PassThrough;
    };
    match (command, inv.nested.as_deref()) {
        ("init", _) => Init(parse_init_flags(effective)),
        (
            "plan" | "refresh" | "import" | "console" | "graph" | "output" | "taint" | "untaint",
            _,
        ) => LoadsBackend,
        ("force-unlock", _) => LoadsBackend,
        // A local plan file carries its own copy of the backend configuration.
        ("apply", _) => match first_positional(effective, APPLY_VALUED) {
            Some(plan) => ApplyPlanFile(plan.to_owned()),
            None => LoadsBackend,
        },
        ("destroy", _) => LoadsBackend,
        // `show PATH` reads a file; a bare `show` reads the latest state.
        ("show", _) => match first_positional(effective, &[]) {
            Some(_) => PassThrough,
            None => LoadsBackend,
        },
        ("providers", None | Some("schema")) => LoadsBackend,
        ("state", Some(_)) => LoadsBackend,
        ("workspace" | "env", Some("list" | "select" | "new" | "delete")) => LoadsBackend,
        _ => PassThrough,
    }
}

/// What the saved backend offers the preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// No saved file, or one without a backend, or a backend without saved static credentials.
    NothingToCheck,
    /// The file exists but could not be used; why.
    Unreadable(String),
    /// Static credentials are saved, but terraform skips their validation (`skip_credentials_validation`).
    ValidationSkipped,
    /// Static credentials are saved, but tfshim cannot reproduce terraform's STS call; why.
    Uncheckable(String),
    /// Static credentials are saved and can be checked.
    StaticKey,
}

/// How an `init`'s `-backend-config` values compare with the saved backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitChange {
    /// No `-backend-config` values, or only values equal to the saved ones (the keys may be left
    /// out: then a stale saved key is repaired as on `plan`).
    Same,
    /// Only credential attributes differ: terraform would stop with "Backend configuration changed".
    CredentialsOnly,
    /// The same settings, but saved credentials left out (dropped from a settings file, say) that the
    /// `.tf` block does not bring back: terraform would stop with "Backend configuration changed",
    /// and the careful fix is this init with `-reconfigure` and every other saved setting.
    KeysDropped,
    /// Anything else differs (or a value tfshim cannot read): a real change, left to terraform and
    /// the user.
    Other,
}

/// Everything known so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub mode: Mode,
    pub class: CommandClass,
    pub saved: Saved,
    pub init_change: InitChange,
    pub saved_verdict: Option<Verdict>,
    pub ambient_verdict: Option<Verdict>,
    /// The file whose `.tf` backend block writes the saved key (no reconfigure can remove it).
    pub key_in_config: Option<String>,
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run the user's command unchanged, saying nothing.
    Run,
    /// Say why tfshim could not reach a verdict, then run the command unchanged (fail open).
    RunUnchecked(String),
    /// Ask STS about the saved key.
    CheckSavedKey,
    /// Ask STS about the credentials terraform would fall back to.
    CheckAmbient,
    /// The saved key is stale, but the fallback credentials could not be checked (why): change
    /// nothing, say so, run the command unchanged (fail open).
    AmbientUnchecked(String),
    /// `warn` mode: the saved key is stale; say so, change nothing, run the command.
    WarnStale,
    /// `warn` mode: an init changes only credentials; say what `fix` would do, run unchanged.
    WarnCredentialChange,
    /// Re-initialise the backend without the saved key, then run the command.
    Repair,
    /// Run the user's `init` with `-reconfigure` and the preserved settings, and verify the result.
    ReconfigureInit,
    /// The saved key is stale and nothing else works either: change nothing, exit 1.
    Refuse,
    /// The saved key is stale, and the `.tf` backend block in this file writes it: a reconfigure
    /// would read it back. Say so and what to do, change nothing, run the command unchanged.
    KeyInConfiguration(String),
}

/// The decision. Pure.
pub fn next(f: &Facts) -> Step {
    if f.mode == Mode::Off {
        return Step::Run;
    }
    match &f.class {
        CommandClass::PassThrough | CommandClass::ApplyPlanFile(_) => return Step::Run,
        CommandClass::Init(flags) if flags.backend_disabled || flags.reconfigures => {
            // The user already takes charge of the backend (`-reconfigure`, `-migrate-state`), or
            // init leaves it alone.
            return Step::Run;
        }
        CommandClass::Init(_) => match f.init_change {
            InitChange::CredentialsOnly | InitChange::KeysDropped if f.mode == Mode::Warn => {
                return Step::WarnCredentialChange
            }
            InitChange::CredentialsOnly | InitChange::KeysDropped => return Step::ReconfigureInit,
            InitChange::Other => return Step::Run,
            InitChange::Same => {}
        },
        CommandClass::LoadsBackend => {}
    }
    match &f.saved {
        Saved::NothingToCheck | Saved::ValidationSkipped => return Step::Run,
        Saved::Unreadable(why) | Saved::Uncheckable(why) => return Step::RunUnchecked(why.clone()),
        Saved::StaticKey => {}
    }
    match &f.saved_verdict {
        None => Step::CheckSavedKey,
        Some(Verdict::Valid { .. }) => Step::Run,
        Some(Verdict::Unknown { reason }) => Step::RunUnchecked(reason.clone()),
        Some(Verdict::Missing) => Step::RunUnchecked("no key to check".into()),
        Some(Verdict::Rejected { .. }) if f.key_in_config.is_some() => {
            Step::KeyInConfiguration(f.key_in_config.clone().unwrap_or_default())
        }
        Some(Verdict::Rejected { .. }) if f.mode == Mode::Warn => Step::WarnStale,
        Some(Verdict::Rejected { .. }) => match &f.ambient_verdict {
            None => Step::CheckAmbient,
            Some(Verdict::Valid { .. }) => Step::Repair,
            Some(Verdict::Unknown { reason }) => Step::AmbientUnchecked(reason.clone()),
            Some(Verdict::Rejected { .. } | Verdict::Missing) => Step::Refuse,
        },
    }
}

/// Compares an init's merged `-backend-config` values (flags and files, `config_file::merge`) with
/// the saved configuration. `saved_value` returns a saved attribute (`None` when absent);
/// `credentials` are the backend's credential attributes; `tf_writes_credentials` says the `.tf`
/// block sets them (then one left out of the `-backend-config` values comes back from there). `Err`
/// (a file tfshim cannot read as terraform would) is a change tfshim does not understand: left to
/// terraform.
pub fn init_change(
    given: &Result<Given, String>,
    saved_value: impl Fn(&str) -> Option<Value>,
    credentials: &[&str],
    tf_writes_credentials: bool,
) -> InitChange {
    let Ok(given) = given else {
        return InitChange::Other;
    };
    let mut credentials_differ = false;
    for (key, value) in &given.0 {
        let same = same_value(value, saved_value(key).as_ref());
        match (same, credentials.contains(&key.as_str())) {
            (true, _) => {}
            (false, true) => credentials_differ = true,
            (false, false) => return InitChange::Other,
        }
    }
    // Once any `-backend-config` is given, `init` compares the whole merged configuration with the
    // saved one (`Meta.backendFromConfig`, internal/command/meta_backend.go): a saved credential left
    // out is a change too.
    let dropped = !given.0.is_empty()
        && !tf_writes_credentials
        && credentials
            .iter()
            .any(|c| !given.0.contains_key(*c) && saved_value(c).is_some_and(|v| !v.is_null()));
    if credentials_differ {
        InitChange::CredentialsOnly
    } else if dropped {
        InitChange::KeysDropped
    } else {
        InitChange::Same
    }
}

/// Whether `-no-color` is among the arguments (a repair's own init then gets it too).
pub fn wants_no_color(effective: &[OsString]) -> bool {
    effective.iter().any(|a| a == OsStr::new("-no-color"))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use crate::proxy::fast;
    use Step::*;

    fn inv(args: &[&str]) -> (Invocation, Vec<OsString>) {
        let inv = Invocation::parse(args.iter().map(OsString::from).collect());
        let eff = inv.effective_args(|_| None);
        (inv, eff)
    }

    fn class(args: &[&str]) -> CommandClass {
        let (i, e) = inv(args);
        classify_command(&i, &e)
    }

    #[test]
    fn which_commands_load_the_backend() {
        for args in [
            &["plan"][..],
            &["apply", "-auto-approve"],
            &["apply", "-var", "a=b"],
            &["destroy"],
            &["refresh"],
            &["import", "a.b", "id"],
            &["console"],
            &["output", "-json"],
            &["show"],
            &["state", "list"],
            &["state", "rm", "x"],
            &["workspace", "select", "dev"],
            &["taint", "x"],
            &["untaint", "x"],
            &["force-unlock", "id"],
            &["providers"],
            &["providers", "schema", "-json"],
            &["graph"],
            &["-chdir=x", "plan"],
        ] {
            assert_eq!(class(args), CommandClass::LoadsBackend, "{args:?}");
        }
        for args in [
            &[][..],
            &["version"],
            &["-version"],
            &["plan", "-help"],
            &["validate"],
            &["fmt"],
            &["get"],
            &["test"],
            &["show", "plan.out"],
            &["workspace", "show"],
            &["state"],
            &["providers", "lock"],
            &["login"],
            &["no-such-command"],
            &["-no-color", "plan"],
            &["-chdir=a", "-chdir=b", "plan"],
        ] {
            assert_eq!(class(args), CommandClass::PassThrough, "{args:?}");
        }
        assert!(matches!(
            class(&["init", "-upgrade"]),
            CommandClass::Init(_)
        ));
    }

    fn facts(class: CommandClass, saved: Saved) -> Facts {
        Facts {
            mode: Mode::Fix,
            class,
            saved,
            init_change: InitChange::Same,
            saved_verdict: None,
            ambient_verdict: None,
            key_in_config: None,
        }
    }

    fn valid() -> Option<Verdict> {
        Some(Verdict::Valid { arn: "arn".into() })
    }
    fn rejected() -> Option<Verdict> {
        Some(Verdict::Rejected {
            code: "InvalidClientTokenId".into(),
        })
    }
    fn unknown() -> Option<Verdict> {
        Some(Verdict::unknown("timeout"))
    }

    /// (class, saved, saved verdict, ambient verdict, mode, expected step)
    type Row = (
        CommandClass,
        Saved,
        Option<Verdict>,
        Option<Verdict>,
        Mode,
        Step,
    );

    #[test]
    fn decision_table() {
        let plan = CommandClass::LoadsBackend;
        let init = CommandClass::Init(InitFlags::default());
        // (class, saved, saved verdict, ambient verdict, mode, expected)
        let rows: Vec<Row> = vec![
            (plan.clone(), Saved::StaticKey, None, None, Mode::Off, Run),
            (
                CommandClass::PassThrough,
                Saved::StaticKey,
                None,
                None,
                Mode::Fix,
                Run,
            ),
            (
                plan.clone(),
                Saved::NothingToCheck,
                None,
                None,
                Mode::Fix,
                Run,
            ),
            (
                plan.clone(),
                Saved::ValidationSkipped,
                None,
                None,
                Mode::Fix,
                Run,
            ),
            (
                plan.clone(),
                Saved::Unreadable("x".into()),
                None,
                None,
                Mode::Fix,
                RunUnchecked("x".into()),
            ),
            (
                plan.clone(),
                Saved::Uncheckable("y".into()),
                None,
                None,
                Mode::Fix,
                RunUnchecked("y".into()),
            ),
            (
                plan.clone(),
                Saved::StaticKey,
                None,
                None,
                Mode::Fix,
                CheckSavedKey,
            ),
            (
                plan.clone(),
                Saved::StaticKey,
                valid(),
                None,
                Mode::Fix,
                Run,
            ),
            (
                plan.clone(),
                Saved::StaticKey,
                unknown(),
                None,
                Mode::Fix,
                RunUnchecked("timeout".into()),
            ),
            (
                plan.clone(),
                Saved::StaticKey,
                rejected(),
                None,
                Mode::Fix,
                CheckAmbient,
            ),
            (
                plan.clone(),
                Saved::StaticKey,
                rejected(),
                valid(),
                Mode::Fix,
                Repair,
            ),
            (
                plan.clone(),
                Saved::StaticKey,
                rejected(),
                rejected(),
                Mode::Fix,
                Refuse,
            ),
            (
                plan.clone(),
                Saved::StaticKey,
                rejected(),
                unknown(),
                Mode::Fix,
                AmbientUnchecked("timeout".into()),
            ),
            (
                plan.clone(),
                Saved::StaticKey,
                rejected(),
                Some(Verdict::Missing),
                Mode::Fix,
                Refuse,
            ),
            (
                plan.clone(),
                Saved::StaticKey,
                rejected(),
                None,
                Mode::Warn,
                WarnStale,
            ),
            (
                init.clone(),
                Saved::StaticKey,
                rejected(),
                valid(),
                Mode::Fix,
                Repair,
            ),
            (
                init.clone(),
                Saved::NothingToCheck,
                None,
                None,
                Mode::Fix,
                Run,
            ),
        ];
        for (class, saved, sv, av, mode, expected) in rows {
            let f = Facts {
                mode,
                saved_verdict: sv,
                ambient_verdict: av,
                ..facts(class, saved)
            };
            assert_eq!(next(&f), expected, "{f:?}");
        }
    }

    #[test]
    fn a_key_written_in_the_tf_block_is_not_repaired() {
        for (mode, class) in [
            (Mode::Fix, CommandClass::LoadsBackend),
            (Mode::Warn, CommandClass::LoadsBackend),
            (Mode::Fix, CommandClass::Init(InitFlags::default())),
        ] {
            let mut f = facts(class, Saved::StaticKey);
            f.mode = mode;
            f.key_in_config = Some("main.tf".into());
            assert_eq!(next(&f), CheckSavedKey);
            f.saved_verdict = valid();
            assert_eq!(next(&f), Run);
            f.saved_verdict = rejected();
            // No fallback check, no repair: the reconfigure would read the key back.
            assert_eq!(next(&f), KeyInConfiguration("main.tf".into()));
        }
    }

    #[test]
    fn init_special_cases() {
        let reconf = CommandClass::Init(InitFlags {
            reconfigures: true,
            ..Default::default()
        });
        assert_eq!(next(&facts(reconf, Saved::StaticKey)), Run);
        let no_backend = CommandClass::Init(InitFlags {
            backend_disabled: true,
            ..Default::default()
        });
        assert_eq!(next(&facts(no_backend, Saved::StaticKey)), Run);
        let init = CommandClass::Init(InitFlags::default());
        let mut f = facts(init, Saved::StaticKey);
        f.init_change = InitChange::CredentialsOnly;
        assert_eq!(next(&f), ReconfigureInit);
        f.mode = Mode::Warn;
        assert_eq!(next(&f), WarnCredentialChange);
        f.init_change = InitChange::Other;
        assert_eq!(next(&f), Run);
    }

    #[test]
    fn init_change_detection() {
        let saved_config = serde_json::json!({"bucket": "b", "access_key": "OLD", "encrypt": true,
            "endpoints": {"sts": "x", "s3": null}});
        let saved = |k: &str| saved_config.get(k).cloned();
        let cred = &["access_key", "secret_key", "token"];
        let given = |v: Value| Ok(Given(v.as_object().unwrap().clone()));
        let change = |v: Value| init_change(&given(v), saved, cred, false);
        assert_eq!(change(serde_json::json!({})), InitChange::Same);
        assert_eq!(
            change(serde_json::json!({"access_key": "OLD", "bucket": "b", "encrypt": "true"})),
            InitChange::Same
        );
        // The same settings without the saved key (the user dropped it from the file).
        assert_eq!(
            change(serde_json::json!({"bucket": "b", "endpoints": {"sts": "x"}})),
            InitChange::KeysDropped
        );
        // …unless the .tf block writes the key (it comes back).
        assert_eq!(
            init_change(
                &given(serde_json::json!({"bucket": "b"})),
                saved,
                cred,
                true
            ),
            InitChange::Same
        );
        assert_eq!(
            change(serde_json::json!({"access_key": "NEW", "secret_key": "s", "bucket": "b"})),
            InitChange::CredentialsOnly
        );
        assert_eq!(
            change(serde_json::json!({"access_key": "NEW", "bucket": "other"})),
            InitChange::Other
        );
        assert_eq!(
            change(serde_json::json!({"access_key": "NEW", "endpoints": {"sts": "y"}})),
            InitChange::Other
        );
        assert_eq!(
            init_change(&Err("unreadable".into()), saved, cred, false),
            InitChange::Other
        );
        let mut f = facts(CommandClass::Init(InitFlags::default()), Saved::StaticKey);
        f.init_change = InitChange::KeysDropped;
        assert_eq!(next(&f), ReconfigureInit);
        f.mode = Mode::Warn;
        assert_eq!(next(&f), WarnCredentialChange);
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse(None), Ok(Mode::Fix));
        assert_eq!(Mode::parse(Some("warn")), Ok(Mode::Warn));
        assert_eq!(Mode::parse(Some(" off ")), Ok(Mode::Off));
        assert!(Mode::parse(Some("yes")).is_err());
    }

    #[cfg(unix)]
    /// The pass-through fast path (`proxy/fast.rs`) never passes through what the full path would check: for every terraform 1.11
    /// subcommand (and a few odd words), with any arguments after it and with `-v` or a `-chdir` in
    /// TF_CLI_ARGS, "fast" implies `classify_command` says pass-through.
    #[test]
    fn agrees_with_the_full_classification() {
        let words = [
            "apply",
            "console",
            "destroy",
            "env",
            "fmt",
            "force-unlock",
            "get",
            "graph",
            "import",
            "init",
            "login",
            "logout",
            "metadata",
            "modules",
            "output",
            "plan",
            "providers",
            "push",
            "refresh",
            "show",
            "state",
            "taint",
            "test",
            "untaint",
            "validate",
            "version",
            "workspace",
            "help",
            "",
            "x",
            "PLAN",
            "plan2",
            "stat",
        ];
        let tails: [&[&str]; 5] = [
            &[],
            &["list"],
            &["-json"],
            &["schema", "-json"],
            &["select", "prod"],
        ];
        let envs = [
            None,
            Some("-v"),
            Some("-no-color"),
            Some("-chdir=elsewhere"),
        ];
        for word in words {
            for tail in tails {
                for env in envs {
                    let args: Vec<OsString> = std::iter::once(word)
                        .chain(tail.iter().copied())
                        .map(OsString::from)
                        .collect();
                    let inv = Invocation::parse(args);
                    let effective = inv.effective_args(|name| {
                        (name == "TF_CLI_ARGS")
                            .then(|| env.map(str::to_owned))
                            .flatten()
                    });
                    let full = classify_command(&inv, &effective);
                    if fast::plan(b"tfshim", Some(word.as_bytes()), &fast::Vars::default())
                        .is_some()
                    {
                        assert_eq!(full, CommandClass::PassThrough, "{word} {tail:?} {env:?}");
                    }
                }
            }
        }
    }
}
