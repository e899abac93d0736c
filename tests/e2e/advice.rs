//! Every command tfshim tells a user to run is safe to run verbatim (issue #20, item 10): the advice
//! of warn mode (also as a GitHub annotation), of doctor, of the `plaintext-keys` warning, of the
//! refusal for a key written in the `.tf` block and of `forget-keys` is captured from the real
//! output, and each command it names is RUN as printed, by `sh -c`, in the root. Afterwards the root
//! must address the same state: the saved settings are those of before but the keys, and a
//! `plan -detailed-exitcode` against the state (which holds the applied resource) finds nothing to
//! change. The old advice, a bare `terraform init -reconfigure`, fails that: it drops the `key`
//! given at init, and terraform then addresses other (empty) state, or stops to ask for it.
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{tfshim_bin, Layout, Run, Sandbox};

/// The commands named in backquotes in `text` (words starting `tfshim`, `terraform` or `tofu`, or
/// an environment assignment before one).
fn named_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        for (i, span) in line.split('`').enumerate() {
            let first = span.split_whitespace().find(|w| !w.contains('='));
            let command = first.is_some_and(|w| ["tfshim", "terraform", "tofu"].contains(&w));
            if i % 2 == 1 && command && !out.contains(&span.to_owned()) {
                out.push(span.to_owned());
            }
        }
    }
    out
}

/// A sandbox whose `key` was overridden at `init` (main.tf names another), with one resource applied
/// in that state, and a PATH on which `tfshim` is the build under test (the advice names it).
fn overridden_root(layout_tf: Option<&dyn Fn(&Sandbox) -> String>) -> (Sandbox, String) {
    let mut sb = Sandbox::new(Layout::default());
    let bin: PathBuf = sb.root.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(tfshim_bin(), bin.join("tfshim")).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    sb.env("PATH", path);
    let other = format!("{}/overridden.tfstate", sb.user);
    let mut init = vec![
        "init".to_owned(),
        "-input=false".to_owned(),
        format!("-backend-config=key={other}"),
    ];
    match layout_tf {
        Some(tf) => fs::write(sb.work.join("main.tf"), tf(&sb)).unwrap(),
        None => init.extend(Sandbox::key_args(&sb.key)),
    }
    sb.terraform(&init).success();
    assert!(sb.saved_text().contains(&sb.key.id));
    sb.terraform(&["apply", "-input=false", "-auto-approve"])
        .success();
    (sb, other)
}

/// tfshim with the security warnings on and GitHub Actions' annotations.
fn tfshim_loud(sb: &Sandbox, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = sb.tfshim_cmd();
    cmd.env_remove("TFSHIM_QUIET").env("GITHUB_ACTIONS", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    sb.run(cmd, args)
}

/// The saved settings but the credentials (which the advice is there to remove).
fn settings(sb: &Sandbox) -> Value {
    let mut b = sb.saved_backend();
    for k in ["access_key", "secret_key", "token"] {
        b["config"][k] = Value::Null;
    }
    b.as_object_mut().unwrap().remove("hash");
    b
}

/// Runs `cmd` verbatim in the root, then checks the root addresses the same state, without the key.
#[track_caller]
fn run_verbatim(sb: &Sandbox, cmd: &str, before: &Value, other: &str) {
    let run = sb.run(sb.command(Path::new("/bin/sh")), &["-c", cmd]);
    // `shim doctor`, where a short warning points for its details (#22), only reads: it runs
    // verbatim and changes nothing (its exit code says whether a repair is due).
    if cmd.ends_with(" shim doctor") {
        assert!(
            matches!(run.code(), Some(0 | 3 | 4)),
            "`{cmd}`:\n{}",
            run.stderr()
        );
        run.stdout_has("next plan");
        assert_eq!(&settings(sb), before, "`{cmd}` changed the saved settings");
        assert_eq!(
            sb.saved_backend()["config"]["key"],
            other,
            "`{cmd}` changed the root"
        );
        return;
    }
    assert_eq!(
        run.code(),
        Some(0),
        "`{cmd}` failed:\n{}\n{}",
        run.stdout(),
        run.stderr()
    );
    assert_eq!(&settings(sb), before, "`{cmd}` changed the saved settings");
    assert_eq!(sb.saved_backend()["config"]["key"], other, "`{cmd}`");
    assert!(
        !sb.saved_text().contains(&sb.secrets[0]),
        "`{cmd}` left the old key saved"
    );
    // The resource applied before is in the state now addressed: nothing to change.
    sb.terraform(&["plan", "-input=false", "-detailed-exitcode"])
        .code_is(0);
}

#[test]
fn warn_mode_doctor_and_the_warning_name_commands_that_are_safe_verbatim() {
    let (mut sb, other) = overridden_root(None);
    sb.rotate();
    let before = settings(&sb);
    let warn = tfshim_loud(
        &sb,
        &[("TFSHIM_MODE", "warn")],
        &["plan", "-input=false", "-no-color"],
    );
    warn.stderr_has("TFSHIM_MODE=warn")
        .stderr_has("::warning title=tfshim::");
    let doctor = tfshim_loud(&sb, &[], &["shim", "doctor"]);
    doctor.code_is(3);
    let sweep = tfshim_loud(&sb, &[], &["shim", "sweep"]);
    sweep.code_is(3);
    assert_eq!(
        settings(&sb),
        before,
        "warn mode, doctor or sweep changed something"
    );

    let text = [
        warn.stderr(),
        doctor.stdout(),
        doctor.stderr(),
        sweep.stdout(),
        sweep.stderr(),
    ]
    .join("\n");
    let commands = named_commands(&text);
    assert!(
        commands.iter().any(|c| c.contains("shim forget-keys")),
        "warn mode names no repair: {commands:?}\n{text}"
    );
    assert!(
        commands
            .iter()
            .any(|c| c.contains("shim sweep") && c.contains("--fix")),
        "sweep names no repair: {commands:?}\n{text}"
    );
    // The annotation names the same commands as the stderr line.
    let annotation: String = warn
        .stderr()
        .lines()
        .filter(|l| l.starts_with("::warning"))
        .collect();
    let in_annotation = named_commands(&annotation);
    assert!(
        in_annotation.iter().any(|c| c.contains("shim forget-keys")),
        "{annotation}"
    );
    for c in in_annotation {
        assert!(commands.contains(&c));
    }
    eprintln!("commands named: {commands:#?}");
    for cmd in &commands {
        run_verbatim(&sb, cmd, &before, &other);
    }
}

#[test]
fn a_key_in_the_tf_block_gets_the_full_init_which_is_safe_verbatim() {
    let with_key = |sb: &Sandbox| {
        sb.main_tf(Layout::default()).replace(
            "    region = ",
            &format!(
                "    access_key = \"{}\"\n    secret_key = \"{}\"\n    region = ",
                sb.key.id, sb.key.secret
            ),
        )
    };
    let (mut sb, other) = overridden_root(Some(&with_key));
    // Before the rotation: the plaintext-keys warning (doctor) and forget-keys, which keeps the key.
    let doctor = tfshim_loud(&sb, &[], &["shim", "doctor"]);
    let forget = tfshim_loud(&sb, &[], &["shim", "forget-keys"]);
    sb.rotate();
    // After: the proxy's refusal.
    let refused = tfshim_loud(&sb, &[], &["plan", "-input=false", "-no-color"]);
    refused.stderr_has("it is written in the backend block in");
    let before = settings(&sb);
    let text = [
        doctor.stdout(),
        doctor.stderr(),
        forget.stderr(),
        forget.stdout(),
        refused.stderr(),
    ]
    .join("\n");
    let commands = named_commands(&text);
    assert!(
        commands.iter().any(|c| c.contains("-backend-config=key=")),
        "no command keeps the key given at init: {commands:?}\n{text}"
    );
    // The advice: remove the keys from the block, then run the command.
    fs::write(sb.work.join("main.tf"), sb.main_tf(Layout::default())).unwrap();
    eprintln!("commands named: {commands:#?}");
    for cmd in &commands {
        run_verbatim(&sb, cmd, &before, &other);
    }
}
