//! tfshim's own command line (issue #22): terraform-style flags, `-chdir` before `shim`, help and
//! suggestions, reports that tell the truth (the mode in force, an unreadable saved file, a
//! directory that is not a root, every run kept in `TFSHIM_REPORT`), write errors, and a
//! `TFSHIM_TERRAFORM` that cannot be run. The real binary; the real terraform where a root is
//! involved.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{tfshim_bin, Layout, Sandbox};

/// tfshim in `dir`, with nothing of this machine's terraform set-up in the way.
fn shim(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(tfshim_bin())
        .current_dir(dir)
        .args(args)
        .env_remove("TFSHIM_MODE")
        .env_remove("TFSHIM_TERRAFORM")
        .env_remove("TF_DATA_DIR")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn flags_take_one_dash_or_two_and_doctor_takes_a_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("a root");
    std::fs::create_dir(&root).unwrap();
    for args in [
        &["shim", "doctor", "-json", "a root"][..],
        &["shim", "doctor", "--json", "a root"],
        &["shim", "doctor", "-chdir=a root", "-json"],
        &["-chdir=a root", "shim", "doctor", "-json"],
    ] {
        let out = shim(tmp.path(), args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        let data_dir = j["data_dir"].as_str().unwrap();
        assert!(
            Path::new(data_dir) == Path::new("./.terraform")
                || Path::new(data_dir) == Path::new("a root/.terraform"),
            "{args:?}: {data_dir}"
        );
    }
    // -chdir before `shim` changes into the directory, as terraform's does.
    let out = shim(tmp.path(), &["-chdir=a root", "shim", "doctor", "-json"]);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["data_dir"], "./.terraform");
    let out = shim(tmp.path(), &["-chdir=nowhere", "shim", "doctor"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nowhere"),
        "{}",
        text(&out.stderr)
    );
    // sweep's flags too, and its exit code 1 for a missing directory stays.
    let out = shim(tmp.path(), &["shim", "sweep", "-json", "-jobs=2", "."]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap();
}

#[test]
fn help_version_and_suggestions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = shim(tmp.path(), &["shim", "--version"]);
    assert_eq!(
        text(&out.stdout),
        format!("tfshim {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = shim(tmp.path(), &["shim", "help", "doctor"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("doctor [OPTIONS] [DIR]"),
        "{}",
        text(&out.stdout)
    );
    let out = shim(tmp.path(), &["shim", "doctr"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("'doctor'"),
        "{}",
        text(&out.stderr)
    );
    let out = shim(tmp.path(), &["shim", "sweep", "-fx"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("'--fix'"),
        "{}",
        text(&out.stderr)
    );
    // --help: http, gcs and azurerm heal too; every command's exit codes, as the README's table.
    let help = text(&shim(tmp.path(), &["shim", "--help"]).stdout);
    assert!(help.contains("S3, http, gcs and azurerm"), "{help}");
    for line in [
        "forget-keys  0 every saved key removed",
        "reinit       0 every root re-initialised",
        "5 instead of 0: some directory could not be read",
        "126 when TFSHIM_TERRAFORM cannot be run",
    ] {
        assert!(help.contains(line), "{line} missing from --help");
    }
}

#[test]
fn doctor_says_what_the_mode_in_force_does() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    for (mode, code, action) in [
        ("fix", 3, "reconfigure"),
        ("warn", 3, "none"),
        ("off", 0, "none"),
    ] {
        sb.env("TFSHIM_MODE", mode);
        let run = sb.tfshim(&["shim", "doctor", "-json"]);
        run.code_is(code);
        let j: Value = serde_json::from_str(&run.stdout()).unwrap();
        assert_eq!(j["mode"], mode);
        assert_eq!(j["action"], action, "{mode}");
        assert_eq!(j["fix_action"], "reconfigure", "{mode}");
        if mode != "fix" {
            let reason = j["action_reason"].as_str().unwrap();
            assert!(reason.contains(&format!("TFSHIM_MODE={mode}")), "{reason}");
            let human = sb.tfshim(&["shim", "doctor"]);
            assert!(
                human.stdout().contains("with fix        reconfigure"),
                "{}",
                human.stdout()
            );
        }
    }
}

#[test]
fn an_unreadable_saved_file_is_unknown_not_none() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("r/.terraform");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("terraform.tfstate"), "{\"backend\": ").unwrap();
    let out = shim(tmp.path(), &["shim", "doctor", "r", "-json"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["saved_credentials"]["verdict"], "unreadable");
    assert!(j["saved_credentials"]["reason"]
        .as_str()
        .unwrap()
        .contains("JSON"));
    let out = shim(tmp.path(), &["shim", "doctor", "r"]);
    let said = text(&out.stdout);
    assert!(said.contains("saved key       unreadable ("), "{said}");
    // forget-keys does not count it as a root with a key, and fails (nothing was done).
    let out = shim(tmp.path(), &["shim", "forget-keys", "-all", "."]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let said = text(&out.stdout);
    assert!(said.contains("1 root, 0 with a saved key"), "{said}");
    assert!(said.contains("cannot be read"), "{said}");
}

#[test]
fn forget_keys_and_reinit_outside_a_root_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    for sub in ["forget-keys", "reinit"] {
        let out = shim(tmp.path(), &["shim", sub]);
        assert_eq!(out.status.code(), Some(1), "{sub}");
        let said = text(&out.stdout);
        assert!(said.contains("not a Terraform root"), "{said}");
        assert!(said.contains(&format!("shim {sub} --all")), "{said}");
    }
}

#[test]
fn the_report_keeps_every_run() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    let report = sb.root.path().join("report.jsonl");
    sb.env("TFSHIM_REPORT", &report);
    sb.tfshim(&["plan", "-input=false", "-no-color"]).success();
    sb.tfshim(&["plan", "-input=false", "-no-color"]).success();
    let text = std::fs::read_to_string(&report).unwrap();
    let runs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 2, "{text}");
    assert_eq!(runs[0]["action"], "reconfigure");
    assert_eq!(runs[1]["action"], "none");
    assert_eq!(runs[1]["mode"], "fix");
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_is_an_error_and_a_closed_pipe_is_not() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["shim", "doctor", "--json"][..], &["shim", "which"]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(tfshim_bin())
            .current_dir(tmp.path())
            .args(args)
            .env_remove("TFSHIM_TERRAFORM")
            .stdout(full)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("tfshim: cannot write to stdout"), "{err}");
    }
    // A reader that goes away (`| head -1`): quiet.
    let mut child = Command::new(tfshim_bin())
        .args(["shim", "completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}

#[cfg(unix)]
#[test]
fn which_fails_where_a_run_would() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |var: &Path, args: &[&str]| {
        Command::new(tfshim_bin())
            .current_dir(tmp.path())
            .args(args)
            .env("TFSHIM_TERRAFORM", var)
            .env("TFSHIM_MODE", "off")
            .output()
            .unwrap()
    };
    // A directory: said as such (126, as a shell says for it), not "does not exist".
    let out = run(tmp.path(), &["shim", "which"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(
        text(&out.stderr).contains("is a directory"),
        "{}",
        text(&out.stderr)
    );
    // A file without the execute bit: `which` fails, and so does a run, with 126.
    let plain = tmp.path().join("terraform");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    for args in [&["shim", "which"][..], &["plan"]] {
        let out = run(&plain, args);
        assert_eq!(
            out.status.code(),
            Some(126),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("not executable"),
            "{}",
            text(&out.stderr)
        );
    }
    // A copy of tfshim under another name: a run would loop back to tfshim.
    let copy = tmp.path().join("tf-copy");
    std::fs::copy(tfshim_bin(), &copy).unwrap();
    let out = run(&copy, &["shim", "which"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("copy of tfshim"),
        "{}",
        text(&out.stderr)
    );
}

/// `shell/install.sh` on a machine without cargo names the prebuilt installer (README ## Install's
/// URL form), not only "install Rust". PATH holds only the tools the script needs before cargo, so
/// no cargo can be found (and nothing is built).
#[cfg(unix)]
#[test]
fn install_sh_without_cargo_points_at_the_prebuilt_installer() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["dirname", "sed", "git"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(tool))
            .find(|p| p.is_file());
        if let Some(found) = found {
            std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("shell/install.sh");
    let out = Command::new("/bin/sh")
        .arg(&script)
        .args(["--link", "/nonexistent-dir"])
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cargo not found"), "{err}");
    assert!(
        err.contains(
            "/releases/latest/download/tfshim-installer.sh | sh -s -- --link /nonexistent-dir"
        ),
        "{err}"
    );
    assert!(err.contains("rustup.rs"), "{err}");
    assert!(!Path::new("/nonexistent-dir").exists());
}
