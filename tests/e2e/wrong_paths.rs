//! A path tfshim's own commands cannot read is an error naming it, never a clean report (issue #20,
//! item 12): `shim doctor -chdir=/nonexistent` exits 1; `shim sweep` names each directory it cannot
//! read and exits 5 (README, exit codes) rather than 0 for a tree it did not fully see.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::tfshim_bin;

/// tfshim with a clean environment (no AWS, no TF_DATA_DIR) in `dir`.
fn tfshim(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(tfshim_bin());
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn dump(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

#[test]
fn doctor_with_a_missing_directory_is_an_error_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("no such root");
    let arg = format!("-chdir={}", missing.display());
    for json in [false, true] {
        let mut args = vec!["shim", "doctor", arg.as_str()];
        if json {
            args.push("--json");
        }
        let o = tfshim(t.path(), &args).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", dump(&o));
        let err = text(&o.stderr);
        assert!(err.contains(&missing.display().to_string()), "{}", dump(&o));
        assert!(err.starts_with("tfshim: "), "{}", dump(&o));
        assert!(o.stdout.is_empty(), "a report was printed:\n{}", dump(&o));
    }
    // A file is not a root either.
    let file = t.path().join("main.tf");
    fs::write(&file, "").unwrap();
    let o = tfshim(
        t.path(),
        &["shim", "doctor", "--chdir", file.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", dump(&o));
    assert!(text(&o.stderr).contains("not a directory"), "{}", dump(&o));
}

#[cfg(unix)]
#[test]
fn sweep_names_unreadable_directories_and_exits_5() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = tempfile::tempdir().unwrap();
    let tree = t.path();
    fs::set_permissions(tree, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(tree.join("readable/empty")).unwrap();
    // A directory nobody but its owner may read, and a root whose data dir is locked that way.
    let locked = tree.join("locked");
    fs::create_dir_all(locked.join("inside")).unwrap();
    let hidden_data = tree.join("team/.terraform");
    fs::create_dir_all(&hidden_data).unwrap();
    fs::write(hidden_data.join("terraform.tfstate"), "{}").unwrap();
    for dir in [&locked, &hidden_data] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    }
    let as_root = fs::metadata(tree).unwrap().uid() == 0;
    let run = |args: &[&str]| -> Output {
        let mut cmd = if as_root {
            // Root reads everything: run as `nobody`, to whom 0700 directories of root's are closed.
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                tfshim_bin(),
            ]);
            c.args(args)
                .current_dir(tree)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", tree)
                .env("AWS_EC2_METADATA_DISABLED", "true");
            c
        } else {
            // Not root: a mode of 0 closes it to its owner too.
            for dir in [&locked, &hidden_data] {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o000)).unwrap();
            }
            tfshim(tree, args)
        };
        let o = cmd
            .output()
            .expect("could not run tfshim (as root, setpriv is needed)");
        if !as_root {
            for dir in [&locked, &hidden_data] {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
            }
        }
        o
    };
    for json in [false, true] {
        let mut args = vec!["shim", "sweep", "."];
        if json {
            args.push("--json");
        }
        let o = run(&args);
        assert_eq!(o.status.code(), Some(5), "{}", dump(&o));
        let err = text(&o.stderr);
        for dir in ["./locked", "./team/.terraform"] {
            assert!(
                err.lines().any(
                    |l| l.starts_with("tfshim: ") && l.contains(&format!("cannot read {dir} "))
                ),
                "{dir} is not named:\n{}",
                dump(&o)
            );
        }
        // Each once, and nothing said of what could be read.
        assert_eq!(err.matches("cannot read").count(), 2, "{}", dump(&o));
        if json {
            let _: serde_json::Value = serde_json::from_slice(&o.stdout)
                .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", dump(&o)));
        }
    }
    // A tree read in full still exits 0.
    let o = run(&["shim", "sweep", "readable"]);
    assert_eq!(o.status.code(), Some(0), "{}", dump(&o));
    assert!(!text(&o.stderr).contains("cannot read"), "{}", dump(&o));
}
