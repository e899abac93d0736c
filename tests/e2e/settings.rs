//! tfshim's settings, read once, checked once, said once (issue #22): an invalid `TFSHIM_*` value is
//! one line on stderr naming the value used instead, and the real terraform runs all the same; enum
//! values are taken in any case. The plaintext-keys warning is one short line pointing at doctor
//! (named as tfshim was invoked), an annotation instead of the line under GitHub Actions, and
//! `TFSHIM_QUIET` takes warning codes. Colour follows `NO_COLOR`, `CLICOLOR_FORCE`/`FORCE_COLOR`,
//! `TERM=dumb` and `-no-color`.
#![cfg(unix)]

use std::fs;
use std::path::PathBuf;

use crate::support::{real_terraform, tfshim_bin, Layout, Run, Sandbox};

const ESC: &str = "\x1b[";

/// A root initialised with a working key saved by `-backend-config` (the plaintext-keys case).
fn root_with_saved_key() -> Sandbox {
    let sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb
}

#[track_caller]
fn plan_with(sb: &Sandbox, vars: &[(&str, &str)]) -> Run {
    let mut cmd = sb.tfshim_cmd();
    for (k, v) in vars {
        cmd.env(k, v);
    }
    sb.run(cmd, &["plan", "-input=false", "-no-color"])
}

/// Every invalid value is said once, with the value used, and terraform's plan runs as it would
/// without tfshim (same stdout, same exit code). On 8578e8a most were silent, and
/// `TFSHIM_ENGINE=pulumi` stopped with exit 1 before terraform ran.
#[test]
fn each_invalid_value_is_said_once_and_terraform_runs() {
    let sb = root_with_saved_key();
    let plain = sb.terraform(&["plan", "-input=false", "-no-color"]);
    plain.success();
    for (name, value, said) in [
        (
            "TFSHIM_STS_TIMEOUT",
            "abc",
            "TFSHIM_STS_TIMEOUT=abc is not a number of seconds; using 5",
        ),
        (
            "TFSHIM_STS_TIMEOUT",
            "-1",
            "TFSHIM_STS_TIMEOUT=-1 is not more than 0 seconds; using 5",
        ),
        (
            "TFSHIM_STS_TIMEOUT",
            "1e9",
            "TFSHIM_STS_TIMEOUT=1e9 is more than the 300 seconds allowed; using 300",
        ),
        (
            "TFSHIM_FRESH_KEY_WAIT",
            "abc",
            "TFSHIM_FRESH_KEY_WAIT=abc is not a number of seconds; using 10",
        ),
        (
            "TFSHIM_RETRY",
            "abc",
            "TFSHIM_RETRY=abc is not 0 or 1; using 1",
        ),
        (
            "TFSHIM_LOG",
            "verbose",
            "TFSHIM_LOG=verbose is not debug, trace or off; using off",
        ),
        (
            "TFSHIM_ENGINE",
            "pulumi",
            "TFSHIM_ENGINE=pulumi is not terraform or tofu; using terraform",
        ),
        (
            "TFSHIM_QUIET",
            "plaintext-keys,nonsense",
            "TFSHIM_QUIET=plaintext-keys,nonsense: nonsense is not a warning code",
        ),
        (
            "TFSHIM_MODE",
            "repair",
            "TFSHIM_MODE=repair is not one of off, warn, fix; using off",
        ),
    ] {
        let run = plan_with(&sb, &[(name, value)]);
        run.code_is(plain.code().unwrap());
        assert_eq!(run.stdout(), plain.stdout(), "{name}={value}");
        let lines: Vec<String> = run
            .tfshim_lines()
            .into_iter()
            .filter(|l| l.contains(name))
            .collect();
        assert_eq!(lines.len(), 1, "{name}={value}: {}", run.stderr());
        assert!(lines[0].contains(said), "{name}={value}: {lines:?}");
    }
}

/// Enum values in any case, as terraform takes `TF_LOG=Debug`: `TFSHIM_ENGINE=Terraform` runs
/// terraform (exit 1 on 8578e8a), `TFSHIM_MODE=Warn` is warn mode (taken as unknown, i.e. off, on
/// 8578e8a), `TFSHIM_LOG=DEBUG` shows the decisions.
#[test]
fn enum_values_are_taken_in_any_case() {
    let mut sb = root_with_saved_key();
    let plain = sb.terraform(&["plan", "-input=false", "-no-color"]);
    let run = plan_with(&sb, &[("TFSHIM_ENGINE", "Terraform")]);
    run.success();
    assert_eq!(run.stdout(), plain.stdout());
    assert_eq!(run.tfshim_lines(), Vec::<String>::new());

    let run = plan_with(&sb, &[("TFSHIM_LOG", "DEBUG")]);
    run.success().stderr_has("tfshim: debug: ");

    sb.rotate();
    let before = sb.saved_bytes();
    let run = plan_with(&sb, &[("TFSHIM_MODE", "Warn")]);
    run.stderr_has("TFSHIM_MODE=warn, so nothing is changed")
        .stderr_lacks("is not one of off, warn, fix");
    assert_eq!(sb.saved_bytes(), before, "warn mode changed the saved file");
}

/// A PATH whose `terraform` is tfshim (a link), with the real one named by `TFSHIM_TERRAFORM`.
fn as_terraform(sb: &mut Sandbox) -> PathBuf {
    let bin = sb.root.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let link = bin.join("terraform");
    std::os::unix::fs::symlink(tfshim_bin(), &link).unwrap();
    sb.env("TFSHIM_TERRAFORM", real_terraform());
    link
}

/// The plaintext-keys line: under 120 characters, the details in doctor, named as tfshim was
/// invoked. On 8578e8a it was one ≈ 390-character line naming `tfshim shim forget-keys`.
#[test]
fn plaintext_keys_line_is_short_and_points_at_doctor_as_invoked() {
    let mut sb = root_with_saved_key();
    let loud = [("TFSHIM_QUIET", "0")];
    let run = plan_with(&sb, &loud);
    run.success();
    let lines = run.tfshim_lines();
    assert_eq!(lines.len(), 1, "{}", run.stderr());
    let message = lines[0].strip_prefix("tfshim: ").unwrap();
    assert!(message.contains("plain text"), "{message}");
    assert!(message.ends_with("see `tfshim shim doctor`"), "{message}");
    assert!(
        message.chars().count() < 120,
        "{} chars: {message}",
        message.chars().count()
    );

    let link = as_terraform(&mut sb);
    let mut cmd = sb.command(&link);
    cmd.env("TFSHIM_QUIET", "0");
    let run = sb.run(cmd, &["plan", "-input=false", "-no-color"]);
    run.success().stderr_has("see `terraform shim doctor`");
    // Doctor, the details, names the removal the same way.
    let doctor = sb.run(sb.command(&link), &["shim", "doctor"]);
    doctor.stdout_has("`terraform shim forget-keys`");
}

/// Under GitHub Actions the warning is the annotation, not the annotation and the line.
#[test]
fn github_actions_gets_the_annotation_instead_of_the_line() {
    let sb = root_with_saved_key();
    let run = plan_with(&sb, &[("TFSHIM_QUIET", "0"), ("GITHUB_ACTIONS", "true")]);
    run.success();
    let annotations: Vec<&str> = run
        .output
        .stderr
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| l.starts_with("::warning title=tfshim::"))
        .collect();
    assert_eq!(annotations.len(), 1, "{}", run.stderr());
    assert!(annotations[0].contains("plain text"));
    assert_eq!(run.tfshim_lines(), Vec::<String>::new(), "{}", run.stderr());
}

/// `TFSHIM_QUIET` takes warning codes (any case, a comma list): it silences those and no others.
#[test]
fn quiet_takes_warning_codes() {
    let sb = root_with_saved_key();
    for quiet in [
        "plaintext-keys",
        "Plaintext-Keys",
        "state-tracked-by-git,plaintext-keys",
        "1",
    ] {
        let run = plan_with(&sb, &[("TFSHIM_QUIET", quiet)]);
        run.success();
        assert_eq!(
            run.tfshim_lines(),
            Vec::<String>::new(),
            "{quiet}: {}",
            run.stderr()
        );
    }
    for other in ["data-dir-not-ignored", "0"] {
        let run = plan_with(&sb, &[("TFSHIM_QUIET", other)]);
        run.success().stderr_has("plain text");
        assert_eq!(run.tfshim_lines().len(), 1, "{other}: {}", run.stderr());
    }
}

/// `shim doctor` in a directory with nothing saved, its output captured.
fn doctor_output(sb: &Sandbox, vars: &[(&str, &str)]) -> String {
    let mut cmd = sb.tfshim_cmd();
    for (k, v) in vars {
        cmd.env(k, v);
    }
    sb.run(cmd, &["shim", "doctor"]).stdout()
}

/// Forcing colour (`CLICOLOR_FORCE`, `FORCE_COLOR`) colours a pipe; `NO_COLOR` wins over it.
/// On 8578e8a a pipe was never coloured.
#[test]
fn colour_can_be_forced_and_no_color_wins() {
    let sb = Sandbox::new(Layout::default());
    assert!(!doctor_output(&sb, &[]).contains(ESC));
    for force in ["CLICOLOR_FORCE", "FORCE_COLOR"] {
        assert!(doctor_output(&sb, &[(force, "1")]).contains(ESC), "{force}");
        assert!(
            !doctor_output(&sb, &[(force, "1"), ("NO_COLOR", "1")]).contains(ESC),
            "{force} with NO_COLOR"
        );
    }
}

/// On a terminal (a pty from `script`), `TERM=dumb` means no colour. On 8578e8a it was coloured.
#[test]
fn a_dumb_terminal_gets_no_colour() {
    let sb = Sandbox::new(Layout::default());
    let on_tty = |term: &str| {
        let mut cmd = sb.command(std::path::Path::new("script"));
        cmd.env("TERM", term);
        let line = format!("'{}' shim doctor", tfshim_bin());
        sb.run(cmd, &["-qec", &line, "/dev/null"]).stdout()
    };
    let xterm = on_tty("xterm");
    assert!(xterm.contains(ESC), "{xterm}");
    let dumb = on_tty("dumb");
    assert!(dumb.contains("next plan"), "{dumb}");
    assert!(!dumb.contains(ESC), "{dumb}");
}

/// A repair's own `init`, shown on stderr in CI, is not coloured under `NO_COLOR` (tfshim's colour
/// off, as with terraform's `-no-color`). On 8578e8a only `-no-color` turned it off.
#[test]
fn no_color_reaches_the_repairs_own_init() {
    let mut sb = root_with_saved_key();
    sb.rotate();
    sb.env("CI", "true");
    let mut cmd = sb.tfshim_cmd();
    cmd.env("NO_COLOR", "1");
    let run = sb.run(cmd, &["plan", "-input=false"]);
    run.success()
        .stderr_has("re-initialising the backend without it");
    let repair_output: String = run
        .stderr()
        .lines()
        .filter(|l| !l.starts_with("tfshim:"))
        .collect();
    assert!(!repair_output.is_empty(), "{}", run.stderr());
    assert!(!repair_output.contains(ESC), "{repair_output}");
    // The same repair without NO_COLOR is coloured: the check above can fail.
    let mut sb = root_with_saved_key();
    sb.rotate();
    sb.env("CI", "true");
    let run = sb.tfshim(&["plan", "-input=false"]);
    run.success();
    assert!(run.stderr().contains(ESC), "{}", run.stderr());
}
