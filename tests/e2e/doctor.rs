//! `shim doctor`, the security warnings, the plan-file check and the CI integration.

use std::process::Command;

use serde_json::Value;

use crate::support::{Layout, Run, Sandbox};

fn doctor(sb: &Sandbox) -> (Run, Value) {
    let run = sb.tfshim(&["shim", "doctor", "--json"]);
    let json: Value = serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}):\n{}", run.stdout()));
    assert_schema(&json);
    (run, json)
}

/// The codes of a report's warnings.
fn warning_codes(report: &Value) -> Vec<Value> {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].clone())
        .collect()
}

/// The documented schema (README, "shim doctor --json").
#[track_caller]
fn assert_schema(j: &Value) {
    for key in [
        "terraform",
        "data_dir",
        "backend",
        "saved_credentials",
        "ambient_credentials",
        "action",
        "action_reason",
        "warnings",
    ] {
        assert!(j.get(key).is_some(), "missing {key}: {j}");
    }
    let verdicts = ["valid", "rejected", "unverified", "none"];
    for block in ["saved_credentials", "ambient_credentials"] {
        let v = j[block]["verdict"].as_str().unwrap();
        assert!(verdicts.contains(&v), "{block}.verdict = {v}");
    }
    assert!(j["saved_credentials"].get("access_key").is_some());
    assert!(j["ambient_credentials"].get("source").is_some());
    assert!(["none", "reconfigure", "cannot-repair"].contains(&j["action"].as_str().unwrap()));
    for w in j["warnings"].as_array().unwrap() {
        assert!(w["code"].is_string() && w["message"].is_string(), "{w}");
    }
}

#[test]
fn healthy_directory() {
    let sb = Sandbox::new(Layout::default());
    sb.set_ambient(Some(&sb.key));
    sb.terraform(&["init", "-input=false"]).success();
    let (run, j) = doctor(&sb);
    run.code_is(0);
    assert_eq!(j["action"], "none");
    assert_eq!(j["saved_credentials"]["verdict"], "none");
    assert_eq!(j["ambient_credentials"]["verdict"], "valid");
    assert!(j["ambient_credentials"]["source"]
        .as_str()
        .unwrap()
        .contains("profile default"));
    assert_eq!(j["backend"]["type"], "s3");
    assert_eq!(j["backend"]["bucket"], crate::support::BUCKET);
    assert!(j["warnings"].as_array().unwrap().is_empty(), "{j}");
    let human = sb.tfshim(&["shim", "doctor"]);
    human.code_is(0);
    assert!(
        human.stdout().contains("next plan       none"),
        "{}",
        human.stdout()
    );
    assert!(!human.stdout().contains('\x1b'), "no colour off a terminal");
}

#[test]
fn after_rotation_a_repair_is_due_then_cannot_be_done() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let (run, j) = doctor(&sb);
    run.code_is(0);
    assert_eq!(j["saved_credentials"]["verdict"], "valid");
    assert_eq!(j["warnings"][0]["code"], "plaintext-keys");
    let old = sb.rotate();
    let before = sb.saved_bytes();
    let (run, j) = doctor(&sb);
    run.code_is(3);
    assert_eq!(j["action"], "reconfigure");
    assert_eq!(j["saved_credentials"]["verdict"], "rejected");
    assert_eq!(j["saved_credentials"]["code"], "InvalidClientTokenId");
    let shown = j["saved_credentials"]["access_key"].as_str().unwrap();
    assert_eq!(
        shown,
        format!("{}…{}", &old.id[..4], &old.id[old.id.len() - 4..])
    );
    sb.set_ambient(None);
    let (run, j) = doctor(&sb);
    run.code_is(4);
    assert_eq!(j["action"], "cannot-repair");
    assert_eq!(j["ambient_credentials"]["verdict"], "none");
    assert_eq!(sb.saved_bytes(), before, "doctor changes nothing");
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
        .args(args)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn git_tracked_saved_file_is_flagged() {
    let sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    git(&sb.work, &["init", "-q"]);
    git(&sb.work, &["add", "-f", ".terraform/terraform.tfstate"]);
    git(&sb.work, &["commit", "-qm", "oops"]);
    let (_, j) = doctor(&sb);
    let codes = warning_codes(&j);
    assert!(
        codes.contains(&Value::from("state-tracked-by-git")),
        "{codes:?}"
    );
    // The same warning reaches stderr once during a proxied run…
    let mut loud = sb.tfshim_cmd();
    loud.env("TFSHIM_QUIET", "0");
    let run = sb.run(loud, &["plan", "-input=false"]);
    run.success();
    assert_eq!(
        run.stderr().matches("is tracked by git").count(),
        1,
        "{}",
        run.stderr()
    );
    // …unless TFSHIM_QUIET=1.
    let mut quiet = sb.tfshim_cmd();
    quiet.env("TFSHIM_QUIET", "1");
    let run = sb.run(quiet, &["plan", "-input=false"]);
    assert!(run.tfshim_lines().is_empty(), "{}", run.stderr());
}

#[test]
fn ignored_data_dir_is_not_flagged() {
    let sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    git(&sb.work, &["init", "-q"]);
    std::fs::write(sb.work.join(".gitignore"), ".terraform/\n").unwrap();
    let (_, j) = doctor(&sb);
    let codes = warning_codes(&j);
    assert_eq!(codes, vec![Value::from("plaintext-keys")]);
    std::fs::remove_file(sb.work.join(".gitignore")).unwrap();
    let (_, j) = doctor(&sb);
    let codes = warning_codes(&j);
    assert!(
        codes.contains(&Value::from("data-dir-not-ignored")),
        "{codes:?}"
    );
}

/// Watches a directory for files created in it (inotify: every creation is queued, so none is missed
/// however briefly the file lives).
#[cfg(target_os = "linux")]
struct CreatedFiles(std::os::fd::OwnedFd);

#[cfg(target_os = "linux")]
impl CreatedFiles {
    fn watch(dir: &std::path::Path) -> CreatedFiles {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: plain inotify calls; the descriptor is owned from here on.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            assert!(fd >= 0, "inotify_init1");
            let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
            let wd =
                libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_CREATE | libc::IN_MOVED_TO);
            assert!(wd >= 0, "inotify_add_watch");
            CreatedFiles(owned)
        }
    }

    /// The names created since [`CreatedFiles::watch`] (or the last call).
    fn names(&self) -> Vec<String> {
        use std::os::fd::AsRawFd;
        let mut names = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: reads into a buffer of the given length.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return names;
            }
            let mut at = 0;
            while at < n as usize {
                // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
                let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                let name = &buf[at + 16..at + 16 + len];
                let end = name.iter().position(|b| *b == 0).unwrap_or(len);
                names.push(String::from_utf8_lossy(&name[..end]).into_owned());
                at += 16 + len;
            }
        }
    }
}

/// The plaintext-key warning asks git about the saved file. A `git status` there would take
/// `.git/index.lock` (breaking a concurrent git command) and run the repository's fsmonitor hook;
/// the warnings must come without either, for the tracked and the not-ignored case alike.
#[cfg(target_os = "linux")]
#[test]
fn git_check_takes_no_index_lock_and_runs_no_hook() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    git(&sb.work, &["init", "-q"]);
    git(&sb.work, &["add", "main.tf"]);
    git(&sb.work, &["commit", "-qm", "root"]);
    let hook_log = sb.root.path().join("fsmonitor-calls");
    let hook = sb.root.path().join("fsmonitor-hook");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexit 1\n",
            hook_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    git(
        &sb.work,
        &["config", "core.fsmonitor", hook.to_str().unwrap()],
    );
    for (case, code, needle) in [
        (
            "not ignored",
            "data-dir-not-ignored",
            "is not ignored by git",
        ),
        ("tracked", "state-tracked-by-git", "is tracked by git"),
    ] {
        if case == "tracked" {
            git(&sb.work, &["add", "-f", ".terraform/terraform.tfstate"]);
            git(&sb.work, &["commit", "-qm", "oops"]);
            // A stat change git has not seen yet: `git status` would refresh (and write) the index.
            std::fs::write(
                sb.work.join("main.tf"),
                sb.main_tf(Layout::default()) + "\n",
            )
            .unwrap();
        }
        let _ = std::fs::remove_file(&hook_log);
        let created = CreatedFiles::watch(&sb.work.join(".git"));
        let (_, j) = doctor(&sb);
        assert!(
            warning_codes(&j).contains(&Value::from(code)),
            "{case}: {j}"
        );
        let mut loud = sb.tfshim_cmd();
        loud.env("TFSHIM_QUIET", "0");
        sb.run(loud, &["plan", "-input=false"])
            .success()
            .stderr_has(needle);
        let names = created.names();
        assert!(
            !names.iter().any(|n| n == "index.lock"),
            "{case}: tfshim created .git/index.lock: {names:?}"
        );
        let calls = std::fs::read_to_string(&hook_log).unwrap_or_default();
        assert!(calls.is_empty(), "{case}: the fsmonitor hook ran: {calls}");
    }
}

#[test]
fn github_actions_annotation_and_untouched_stdout() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    sb.env("GITHUB_ACTIONS", "true");
    let report = sb.root.path().join("report.json");
    sb.env("TFSHIM_REPORT", &report);
    let healed = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    healed.success();
    let annotations: Vec<_> = healed
        .stderr()
        .lines()
        .filter(|l| l.starts_with("::warning title=tfshim::"))
        .map(str::to_owned)
        .collect();
    assert_eq!(annotations.len(), 1, "{}", healed.stderr());
    assert!(annotations[0].contains("re-initialising"));
    // stdout is terraform's plan, byte for byte.
    let plain = sb.terraform(&["plan", "-input=false", "-no-color"]);
    assert_eq!(healed.output.stdout, plain.output.stdout);
    // The run's decision, as doctor's schema, 0600.
    let j: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_schema(&j);
    assert_eq!(j["action"], "reconfigure");
    assert_eq!(j["saved_credentials"]["verdict"], "rejected");
    let text = std::fs::read_to_string(&report).unwrap();
    for s in &sb.secrets {
        assert!(!text.contains(s.as_str()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&report).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn stale_key_in_a_plan_file_is_explained() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.terraform(&["plan", "-input=false", "-out=p.tfplan"])
        .success();
    sb.rotate();
    let run = sb.tfshim(&["apply", "-input=false", "p.tfplan"]);
    assert_ne!(run.code(), Some(0));
    let lines = run.tfshim_lines();
    assert_eq!(lines.len(), 1, "{}", run.stderr());
    assert!(
        lines[0].contains("p.tfplan") && lines[0].contains("make a new plan"),
        "{}",
        lines[0]
    );
    // It comes before terraform's own error.
    let err = run.stderr();
    assert!(
        err.find("tfshim:").unwrap() < err.find("Error").unwrap(),
        "{err}"
    );
}

#[test]
fn completions_and_help() {
    let sb = Sandbox::new(Layout {
        local: true,
        ..Layout::default()
    });
    let run = sb.tfshim(&["shim", "completions", "bash"]);
    run.success();
    assert!(run.stdout().contains("doctor"), "{}", run.stdout());
    let help = sb.tfshim(&["shim", "--help"]);
    for var in [
        "TFSHIM_MODE",
        "TFSHIM_TERRAFORM",
        "TFSHIM_ENGINE",
        "TFSHIM_STS_TIMEOUT",
        "TFSHIM_QUIET",
        "TFSHIM_REPORT",
        "TFSHIM_LOG",
    ] {
        assert!(help.stdout().contains(var), "{var} missing from help");
    }
}
