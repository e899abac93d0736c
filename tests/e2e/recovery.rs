//! Recovery after a killed repair never rolls back a deliberate change (issue #20 item 2), and the
//! repair machinery fails open (item 11).
//!
//! A repair is killed for real: its `init -reconfigure` is held by a wrapper before terraform
//! starts, and tfshim's whole process group gets SIGKILL, leaving the backup and its journal. Then
//! the user re-points the root with plain terraform — the http backend from team-A's address to
//! team-B's on the repo's state server, or the S3 backend to another bucket and key on moto — and
//! the next `tfshim plan` must keep that, say one line, and never contact team-A (the state
//! server's log) or use the backup's key (the STS proxy's log).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::state_server::StateServer;
use crate::support::{Layout, Sandbox};

const PLAN: &[&str] = &["plan", "-input=false", "-no-color"];
const BACKUP: &str = "terraform.tfstate.tfshim-backup";
const JOURNAL: &str = "terraform.tfstate.tfshim-journal";
const USER: &str = "alice";

/// Makes the repair's `init -reconfigure` wait (before terraform starts) when `HOLD` is set, after
/// touching a marker; returns the marker's path.
fn hold_repairs(sb: &mut Sandbox) -> PathBuf {
    let mark = sb.root.path().join("repair-started");
    sb.wrap_terraform(&format!(
        "case \"$*\" in *\"init -reconfigure\"*) if [ -n \"$HOLD\" ]; then \
         touch '{}'; sleep 60; fi ;; esac",
        mark.display()
    ));
    mark
}

/// Starts `tfshim plan` (its own process group), waits for its repair to be held, then SIGKILLs the
/// whole group: the backup and its journal are left behind.
#[track_caller]
fn kill_a_repair(sb: &Sandbox, mark: &Path) {
    let mut cmd = sb.tfshim_cmd();
    cmd.args(PLAN)
        .env("HOLD", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "the repair never started");
        assert!(child.try_wait().unwrap().is_none(), "tfshim ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    child.wait().unwrap();
    // The held wrapper and its `sleep` die with the group; give them a moment.
    std::thread::sleep(Duration::from_millis(200));
    assert!(sb.data_dir().join(BACKUP).is_file(), "no backup was left");
}

/// The http backend's settings as `-backend-config` flags, aimed at state `name`.
fn http_flags(server: &StateServer, name: &str) -> Vec<String> {
    [
        ("address", server.address(name)),
        ("lock_address", server.lock_address(name)),
        ("unlock_address", server.lock_address(name)),
        ("lock_method", "POST".into()),
        ("unlock_method", "DELETE".into()),
        ("username", USER.into()),
    ]
    .iter()
    .map(|(k, v)| format!("-backend-config={k}={v}"))
    .collect()
}

fn token(n: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("glpat-{n}{}x{nanos}", std::process::id())
}

#[test]
fn a_root_re_pointed_to_team_b_after_a_killed_repair_stays_on_team_b() {
    let server = StateServer::start();
    let mut sb = Sandbox::new(Layout::default());
    fs::write(
        sb.work.join("main.tf"),
        "terraform {\n  backend \"http\" {}\n}\n\nresource \"terraform_data\" \"x\" {\n  input = \"hello\"\n}\n",
    )
    .unwrap();
    let (t1, t2) = (token("one"), token("two"));
    sb.secrets.extend([t1.clone(), t2.clone()]);
    server.grant(USER, &t1);
    // team-A, its token saved by -backend-config (the GitLab way).
    let mut init = vec!["init".to_owned(), "-input=false".into(), "-no-color".into()];
    init.extend(http_flags(&server, "team-A"));
    init.push(format!("-backend-config=password={t1}"));
    sb.terraform(&init).success();
    // The token is revoked; a fresh one is in TF_HTTP_PASSWORD: tfshim repairs — and is killed.
    server.revoke(&t1);
    server.grant(USER, &t2);
    sb.env("TF_HTTP_PASSWORD", &t2);
    let mark = hold_repairs(&mut sb);
    kill_a_repair(&sb, &mark);
    assert!(sb.data_dir().join(JOURNAL).is_file(), "no journal was left");
    // The user moves the root to team-B with plain terraform.
    let mut repoint = vec![
        "init".to_owned(),
        "-reconfigure".into(),
        "-input=false".into(),
        "-no-color".into(),
    ];
    repoint.extend(http_flags(&server, "team-B"));
    sb.terraform(&repoint).success();
    let team_b = sb.saved_text();
    assert!(team_b.contains("/state/team-B"));
    server.clear_log();

    let run = sb.tfshim(PLAN);
    run.success()
        .stdout_has("Plan: 1 to add")
        .stderr_has("was re-initialised since a repair here was interrupted (")
        .stderr_has("keeping it as it is");
    assert_eq!(run.tfshim_lines().len(), 1, "{}", run.stderr());
    assert!(
        run.tfshim_lines()[0].contains("address"),
        "{}",
        run.stderr()
    );
    // team-B stays, byte for byte; the backup and journal are gone.
    assert_eq!(sb.saved_text(), team_b);
    assert!(
        sb.tfshim_leftovers().is_empty(),
        "{:?}",
        sb.tfshim_leftovers()
    );
    // team-A was never contacted — by tfshim or by terraform — and its lock never taken.
    let log = server.log();
    assert!(
        log.iter().all(|l| !l.path.contains("team-A")),
        "team-A was contacted: {log:?}"
    );
    assert!(log.iter().any(|l| l.path.contains("team-B")), "{log:?}");
    assert!(!server.locked("team-A"));
}

#[test]
fn an_s3_root_moved_to_another_bucket_and_key_after_a_killed_repair_stays_moved() {
    let mut sb = Sandbox::new(Layout {
        partial: true,
        ..Layout::default()
    });
    let m = crate::support::moto();
    let bucket_b = format!("moved-{}", sb.user.to_lowercase());
    let (status, body) =
        crate::support::moto::http(m.open_port, "PUT", &format!("/{bucket_b}"), &[], b"").unwrap();
    assert!(status < 300, "{status} {body}");
    sb.init_with_saved_key(&[
        format!("-backend-config=bucket={}", crate::support::BUCKET),
        format!("-backend-config=key={}", sb.state_key),
    ]);
    let old_key = sb.rotate();
    let mark = hold_repairs(&mut sb);
    kill_a_repair(&sb, &mark);
    // Moved with plain terraform, with the credentials file's new key (none saved).
    sb.terraform(&[
        "init",
        "-reconfigure",
        "-input=false",
        "-no-color",
        &format!("-backend-config=bucket={bucket_b}"),
        "-backend-config=key=elsewhere/terraform.tfstate",
    ])
    .success();
    let moved = sb.saved_text();
    let signed_before = sb.sts.requests_signed_by(&old_key.id);

    let run = sb.tfshim(PLAN);
    run.success()
        .stdout_has("Plan: 1 to add")
        .stderr_has("was re-initialised since a repair here was interrupted (bucket, key differ)");
    assert_eq!(run.tfshim_lines().len(), 1, "{}", run.stderr());
    assert_eq!(sb.saved_text(), moved, "the move stays, byte for byte");
    let after = sb.saved_backend();
    assert_eq!(after["config"]["bucket"], bucket_b.as_str());
    // The backup's backend was never used: no request signed with its key.
    assert_eq!(sb.sts.requests_signed_by(&old_key.id), signed_before);
    assert!(
        sb.tfshim_leftovers().is_empty(),
        "{:?}",
        sb.tfshim_leftovers()
    );
}

/// Item 11: a panic in recovery — in the preflight and again in the recovery `main` runs after a
/// caught panic — is contained: one line, terraform runs unchanged, the backup is left for later.
#[test]
fn a_panic_in_recovery_runs_terraform_unchanged() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    let mark = hold_repairs(&mut sb);
    kill_a_repair(&sb, &mark);
    let stale = sb.saved_bytes();
    let alone = sb.terraform(PLAN);
    // The injected panic's message holds the backup's bytes (the secret key): never shown.
    sb.env("TFSHIM_TEST_PANIC", "recovery");
    let run = sb.tfshim(PLAN);
    assert_eq!(run.code(), alone.code(), "{}", run.stderr());
    assert_eq!(run.stdout(), alone.stdout());
    let lines = run.tfshim_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("internal error at src/heal/datadir/recover.rs")
            && lines[0].ends_with("running terraform unchanged"),
        "{}",
        lines[0]
    );
    assert_eq!(sb.saved_bytes(), stale);
    assert!(sb.data_dir().join(BACKUP).is_file());
    // Without the panic, the next run recovers (the file is untouched: the backup goes) and heals.
    sb.env("TFSHIM_TEST_PANIC", "");
    sb.tfshim(PLAN)
        .success()
        .stderr_has("re-initialising the backend without it");
    assert!(sb.saved_backend()["config"]["access_key"].is_null());
    assert!(
        sb.tfshim_leftovers().is_empty(),
        "{:?}",
        sb.tfshim_leftovers()
    );
}
