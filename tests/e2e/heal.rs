//! The mission: after a rotation, tfshim notices the saved key is dead, re-initialises the backend
//! without it (keeping every other setting and the hash), and runs the user's command.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Layout, Sandbox};

const CREDENTIALS: &[&str] = &["access_key", "secret_key", "token"];

/// The saved backend after a repair equals the one before except that the keys are gone.
#[track_caller]
fn assert_only_keys_removed(before: &Value, after: &Value) {
    assert_eq!(before["type"], after["type"]);
    assert_eq!(before["hash"], after["hash"], "the backend hash changed");
    let (b, a) = (
        before["config"].as_object().unwrap(),
        after["config"].as_object().unwrap(),
    );
    assert!(b["access_key"].is_string(), "the key was not saved before");
    for k in CREDENTIALS {
        assert!(a.get(*k).is_none_or(Value::is_null), "{k} is still saved");
    }
    for (k, v) in b {
        if !CREDENTIALS.contains(&k.as_str()) {
            assert_eq!(a.get(k), Some(v), "attribute {k} changed");
        }
    }
    assert_eq!(a.len(), b.len(), "the attribute set changed");
}

fn heal_with(command: &[&str]) {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_backend();
    let old = sb.rotate();
    sb.record_terraform_calls();
    let run = sb.tfshim(command);
    run.success();
    let last4 = &old.id[old.id.len() - 4..];
    run.stderr_has(&format!(
        "tfshim: the saved S3 backend key {}…{last4} was rejected by STS (InvalidClientTokenId); re-initialising the backend without it",
        &old.id[..4]
    ));
    assert_eq!(sb.reconfigures(), 1, "{:?}", sb.terraform_calls());
    // Interactively the repair's init output is held back (it is shown if the init fails).
    run.stderr_lacks("Successfully configured the backend");
    assert!(!sb.saved_text().contains(&old.id));
    assert_only_keys_removed(&before, &sb.saved_backend());
    assert_eq!(
        sb.sts.tfshim_calls(),
        2,
        "one check of the saved key, one of the ambient chain"
    );
    // Healed for good: the next run checks nothing and repairs nothing.
    let again = sb.tfshim(&["plan", "-input=false", "-detailed-exitcode"]);
    assert!(again.tfshim_lines().is_empty(), "{}", again.stderr());
    assert_eq!(sb.sts.tfshim_calls(), 2);
    assert_eq!(sb.reconfigures(), 1);
}

#[test]
fn seed_heals_on_plan() {
    heal_with(&["plan", "-input=false"]);
}

#[test]
fn seed_heals_on_init() {
    heal_with(&["init", "-input=false"]);
}

#[test]
fn seed_heals_on_apply() {
    heal_with(&["apply", "-input=false", "-auto-approve"]);
}

#[test]
fn plan_stdout_carries_only_terraform() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    let healed = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    healed.success();
    // The repair's init output went to stderr: stdout is exactly what terraform's plan prints.
    let plain = sb.terraform(&["plan", "-input=false", "-no-color"]);
    assert_eq!(healed.stdout(), plain.stdout());
}

#[test]
fn ci_sees_the_repair_init_output() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    sb.env("CI", "true");
    sb.tfshim(&["plan", "-input=false"])
        .success()
        .stderr_has("Successfully configured the backend");
}

#[test]
fn failed_repair_shows_terraform_output_and_restores() {
    // A bucket of this test's own, which disappears after the rotation: the repair's init then fails.
    let mut sb = Sandbox::new(Layout {
        partial: true,
        ..Layout::default()
    });
    let m = crate::support::moto();
    let bucket = format!("gone-{}", sb.user.to_lowercase());
    let s3 = |method: &str, path: &str| {
        let (status, body) =
            crate::support::moto::http(m.open_port, method, path, &[], b"").unwrap();
        assert!(status < 300, "{method} {path}: {status} {body}");
    };
    s3("PUT", &format!("/{bucket}"));
    sb.init_with_saved_key(&[
        format!("-backend-config=bucket={bucket}"),
        format!("-backend-config=key={}", sb.state_key),
    ]);
    sb.rotate();
    s3("DELETE", &format!("/{bucket}"));
    let before = sb.saved_bytes();
    // Issue #12: a file terraform did not touch keeps its inode, hard links, owner and mode.
    #[cfg(unix)]
    let (saved, identity) = {
        use std::os::unix::fs::PermissionsExt;
        let saved = sb.data_dir().join("terraform.tfstate");
        std::os::unix::fs::chown(&saved, Some(4242), Some(4343)).unwrap();
        std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o604)).unwrap();
        std::fs::hard_link(&saved, sb.root.path().join("hard-link")).unwrap();
        let identity = file_identity(&saved);
        assert_eq!(identity.1, 2, "the link is there");
        (saved, identity)
    };
    let run = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    run.code_is(1)
        .stderr_has("the repair's `terraform init -reconfigure` failed")
        // terraform's own explanation, held back while it ran, is shown.
        .stderr_has("Error:")
        .stderr_has("is unchanged");
    assert_eq!(
        sb.saved_bytes(),
        before,
        "the old file is back byte-for-byte"
    );
    #[cfg(unix)]
    assert_eq!(
        file_identity(&saved),
        identity,
        "(inode, links, uid, gid, mode)"
    );
    assert!(sb.tfshim_leftovers().is_empty());
}

/// (inode, hard links, owner, group, mode).
#[cfg(unix)]
fn file_identity(path: &std::path::Path) -> (u64, u64, u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.nlink(), m.uid(), m.gid(), m.mode() & 0o7777)
}

#[test]
fn partial_configuration_survives() {
    let mut sb = Sandbox::new(Layout {
        partial: true,
        ..Layout::default()
    });
    sb.init_with_saved_key(&[
        format!("-backend-config=bucket={}", crate::support::BUCKET),
        format!("-backend-config=key={}", sb.state_key),
    ]);
    sb.terraform(&["apply", "-input=false", "-auto-approve"])
        .success();
    let before = sb.saved_backend();
    sb.rotate();
    sb.tfshim(&["plan", "-input=false", "-detailed-exitcode"])
        .code_is(0);
    let after = sb.saved_backend();
    assert_only_keys_removed(&before, &after);
    assert_eq!(after["config"]["key"], Value::from(sb.state_key.clone()));
}

#[test]
fn chdir_with_spaces_and_tf_data_dir() {
    let mut sb = Sandbox::in_subdir(Layout::default(), "my infra dir");
    let dir = sb.work.clone();
    let outside = sb.root.path().to_path_buf();
    sb.env("TF_DATA_DIR", "tfdata");
    let chdir = format!("-chdir={}", dir.display());
    let mut init = vec![chdir.clone(), "init".into(), "-input=false".into()];
    init.extend(Sandbox::key_args(&sb.key));
    let mut cmd = sb.terraform_cmd();
    cmd.current_dir(&outside);
    sb.run(cmd, &init).success();
    let saved = dir.join("tfdata/terraform.tfstate");
    assert!(saved.is_file(), "TF_DATA_DIR is relative to -chdir");
    let before: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    sb.rotate();
    let mut cmd = sb.tfshim_cmd();
    cmd.current_dir(&outside);
    let run = sb.run(cmd, &[chdir.as_str(), "plan", "-input=false"]);
    run.success().stderr_has("re-initialising");
    let after: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    assert_only_keys_removed(&before["backend"], &after["backend"]);
    assert!(!dir.join(".terraform/terraform.tfstate").exists());
}

#[test]
fn stale_key_without_working_credentials_changes_nothing() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let old = sb.rotate();
    sb.set_ambient(None);
    let before = sb.saved_bytes();
    sb.record_terraform_calls();
    let run = sb.tfshim(&["plan", "-input=false"]);
    run.code_is(1)
        .stderr_has(&format!("…{}", &old.id[old.id.len() - 4..]))
        .stderr_has("no working credentials")
        .stderr_has("Nothing was changed");
    assert_eq!(sb.saved_bytes(), before);
    assert!(
        sb.terraform_calls().is_empty(),
        "terraform must not even run"
    );
}

#[test]
fn unreachable_sts_fails_open_quickly() {
    let sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_bytes();
    sb.sts.refuse_connections();
    let start = Instant::now();
    let run = sb.tfshim(&["plan", "-input=false"]);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    let lines = run.tfshim_lines();
    assert_eq!(lines.len(), 1, "{}", run.stderr());
    assert!(
        lines[0].contains("could not check the saved backend key")
            && lines[0].contains("running terraform unchanged"),
        "{}",
        lines[0]
    );
    assert_eq!(sb.saved_bytes(), before);
    // terraform itself then ran (and met the same unreachable STS).
    run.stderr_has("GetCallerIdentity");
}

#[test]
fn no_saved_key_means_no_sts_request() {
    let sb = Sandbox::new(Layout::default());
    sb.set_ambient(Some(&sb.key));
    sb.terraform(&["init", "-input=false"]).success();
    assert!(!sb.saved_text().contains(&sb.key.id));
    sb.tfshim(&["plan", "-input=false"]).success();
    assert_eq!(sb.sts.tfshim_calls(), 0);
    // The counter does see terraform's own calls, so zero above is a measurement.
    assert!(sb.sts.other_calls() > 0);
}

#[test]
fn valid_saved_key_costs_one_request() {
    let sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_bytes();
    let run = sb.tfshim(&["plan", "-input=false"]);
    run.success();
    assert!(run.tfshim_lines().is_empty(), "{}", run.stderr());
    assert_eq!(sb.sts.tfshim_calls(), 1);
    assert_eq!(sb.saved_bytes(), before);
}

#[test]
fn credential_only_change_at_init() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_backend();
    sb.rotate();
    // The new key comes only from the command line, as in a pipeline that injects it from Vault.
    sb.set_ambient(None);
    let mut args = vec!["init".to_owned(), "-input=false".to_owned()];
    args.extend(Sandbox::key_args(&sb.key));
    let run = sb.tfshim(&args);
    run.success().stderr_lacks("migrate-state");
    let after = sb.saved_backend();
    assert_eq!(
        after["config"]["access_key"],
        Value::from(sb.key.id.clone())
    );
    assert_eq!(before["hash"], after["hash"]);
    for (k, v) in before["config"].as_object().unwrap() {
        if !CREDENTIALS.contains(&k.as_str()) {
            assert_eq!(&after["config"][k], v, "{k} changed");
        }
    }
    sb.tfshim(&["plan", "-input=false"]).success();
}

#[test]
fn real_backend_change_is_left_to_terraform() {
    let sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_bytes();
    let run = sb.tfshim(&[
        "init",
        "-input=false",
        "-backend-config=key=elsewhere/terraform.tfstate",
    ]);
    run.code_is(1).stderr_has("Backend configuration changed");
    assert!(run.tfshim_lines().is_empty(), "{}", run.stderr());
    assert_eq!(sb.saved_bytes(), before);
}

#[test]
fn warn_mode_changes_nothing() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    let before = sb.saved_bytes();
    sb.env("TFSHIM_MODE", "warn");
    let run = sb.tfshim(&["plan", "-input=false"]);
    run.code_is(1).stderr_has("TFSHIM_MODE=warn");
    assert_eq!(sb.saved_bytes(), before);
}

#[test]
fn concurrent_runs_repair_once() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_backend();
    sb.rotate();
    sb.record_terraform_calls();
    let children: Vec<_> = (0..8)
        .map(|_| {
            let mut cmd = sb.tfshim_cmd();
            cmd.args(["plan", "-input=false", "-lock-timeout=60s"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        let run =
            crate::support::Run::checked(&sb, "concurrent plan", child.wait_with_output().unwrap());
        run.success();
    }
    assert_eq!(
        sb.reconfigures(),
        1,
        "exactly one run repairs: {:?}",
        sb.terraform_calls()
    );
    assert_only_keys_removed(&before, &sb.saved_backend());
}

#[test]
fn slow_sts_fails_open_within_the_timeout() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_bytes();
    // STS answers after 3 s: too slow for tfshim's 1 s, fast enough for terraform.
    sb.sts.delay(Duration::from_secs(3));
    sb.env("TFSHIM_STS_TIMEOUT", "1");
    let start = Instant::now();
    let run = sb.tfshim(&["plan", "-input=false"]);
    run.success();
    let lines = run.tfshim_lines();
    assert_eq!(lines.len(), 1, "{}", run.stderr());
    assert!(lines[0].contains("(timeout)"), "{}", lines[0]);
    assert_eq!(sb.saved_bytes(), before);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn hash_change_breaks_the_invariant_and_restores_the_old_file() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    let before = sb.saved_bytes();
    // The .tf backend block changed since the last init: terraform's reconfigure succeeds, but the
    // result belongs to a different block (another hash), so tfshim must undo it.
    let tf = sb.main_tf(Layout::default());
    std::fs::write(
        sb.work.join("main.tf"),
        tf.replace(
            "use_path_style = true",
            "use_path_style = true\n    encrypt = true",
        ),
    )
    .unwrap();
    sb.record_terraform_calls();
    let run = sb.tfshim(&["plan", "-input=false"]);
    run.code_is(1)
        .stderr_has("the backend hash changed")
        .stderr_has("was put back as it was");
    assert_eq!(sb.reconfigures(), 1, "the reconfigure did run");
    assert_eq!(sb.saved_bytes(), before, "…and was undone byte-for-byte");
}

#[cfg(unix)]
fn signal_during_repair(signal: i32) -> (Sandbox, std::process::Output, Vec<u8>) {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    let before = sb.saved_bytes();
    let marker = sb.root.path().join("repair-started");
    // The repair's init announces itself, then takes 2 s before terraform runs.
    sb.wrap_terraform(&format!(
        "case \"$*\" in *\"init -reconfigure\"*) touch '{}'; sleep 2 ;; esac",
        marker.display()
    ));
    let mut cmd = sb.tfshim_cmd();
    cmd.args(["plan", "-input=false"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the repair never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Sent to tfshim alone, as `kill` or a CI runner would.
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    let out = crate::support::Run::checked(&sb, "plan under a signal", out).output;
    // No settings file, backup or restore copy is left behind.
    assert_eq!(std::fs::read_dir(sb.tmp_dir()).unwrap().count(), 0);
    let leftovers = sb.tfshim_leftovers();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    (sb, out, before)
}

#[cfg(unix)]
#[test]
fn sigterm_during_repair_is_forwarded_and_the_file_restored() {
    use std::os::unix::process::ExitStatusExt;
    let (sb, out, before) = signal_during_repair(libc::SIGTERM);
    // The wrapper (terraform's stand-in) died of the forwarded SIGTERM before terraform ran, and
    // tfshim ended by the same signal (#12: no longer exit 128+N), as terraform alone would.
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    assert_eq!(sb.saved_bytes(), before);
}

#[cfg(unix)]
#[test]
fn sigint_during_repair_is_forwarded_and_the_file_restored() {
    use std::os::unix::process::ExitStatusExt;
    // Until #12, a SIGINT sent to tfshim alone was left "to the terminal" — which never delivers
    // one that a CI runner sent to tfshim's pid — so the repair finished and the exit was 128+2.
    // Now it is forwarded like SIGTERM: the repair's init dies of it, the file is put back, and
    // tfshim ends by SIGINT without running the plan.
    let (sb, out, before) = signal_during_repair(libc::SIGINT);
    assert_eq!(out.status.signal(), Some(libc::SIGINT), "{out:?}");
    assert_eq!(sb.saved_bytes(), before);
}

#[cfg(unix)]
#[test]
fn a_tfshim_found_again_as_terraform_does_not_deadlock() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_backend();
    sb.rotate();
    // The `terraform` tfshim runs is itself tfshim (a wrapper calling it), which finds the real one.
    sb.wrap_terraform(&format!(
        "TFSHIM_TERRAFORM=\"$REAL\"; export TFSHIM_TERRAFORM; REAL='{}'",
        crate::support::tfshim_bin()
    ));
    let mut cmd = sb.tfshim_cmd();
    cmd.args(["plan", "-input=false"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tfshim behind tfshim hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::support::Run::checked(
        &sb,
        "tfshim behind tfshim",
        child.wait_with_output().unwrap(),
    )
    .success();
    assert_only_keys_removed(&before, &sb.saved_backend());
}
