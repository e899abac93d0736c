//! Data safety of the repair under crashes, full disks and read-only mounts (issue #12): whatever
//! happens, the saved backend is byte-identical, or terraform's complete file, or correctly repaired;
//! the state it addresses never changes; no settings file or backup outlives a run that finished,
//! and the next run puts right what a killed one left.
//!
//! Faults are real: a tmpfs mounted on the data dir (filled, or remounted read-only), SIGKILL of
//! tfshim's whole process group, and a terraform slowed with `strace -e inject=write:delay_…`, which
//! holds terraform inside its own write of the saved file — after its `ftruncate`, before its bytes
//! land (docs/saved-backend-writes.md). Mounting needs root (CAP_SYS_ADMIN), as these tests run.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Layout, Run, Sandbox};

const SAVED: &str = "terraform.tfstate";
const BACKUP: &str = "terraform.tfstate.tfshim-backup";

/// A tmpfs mounted on a directory for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    #[track_caller]
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("cannot run `mount`");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} ({status}); these tests need root (CAP_SYS_ADMIN)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }

    #[track_caller]
    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Takes every free byte of the filesystem holding `dir`; the write that fails must be ENOSPC.
#[track_caller]
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            return;
        }
    }
}

/// A sandbox whose data dir is a fresh tmpfs, with the seed's stale key saved in it.
fn stale_on_tmpfs(size: &str) -> (Sandbox, Tmpfs) {
    let mut sb = Sandbox::new(Layout::default());
    let mount = Tmpfs::mount(&sb.data_dir(), size);
    sb.init_with_saved_key(&[]);
    sb.rotate();
    (sb, mount)
}

/// Runs `tfshim plan` in its own process group with the environment `extra`, its output going
/// to files (the test may kill it at any moment).
fn spawn_plan(sb: &Sandbox, extra: &[(&str, &str)], name: &str) -> std::process::Child {
    let out = |suffix: &str| fs::File::create(sb.root.path().join(format!("{name}.{suffix}")));
    let mut cmd = sb.tfshim_cmd();
    cmd.args(["plan", "-input=false", "-no-color"])
        .stdout(Stdio::from(out("out").unwrap()))
        .stderr(Stdio::from(out("err").unwrap()))
        .process_group(0);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// The output of a run started by [`spawn_plan`], checked for secrets.
#[track_caller]
fn finished(sb: &Sandbox, child: std::process::Child, name: &str) -> Run {
    let output = child.wait_with_output().unwrap();
    let read = |suffix: &str| {
        fs::read(sb.root.path().join(format!("{name}.{suffix}"))).unwrap_or_default()
    };
    let output = std::process::Output {
        status: output.status,
        stdout: read("out"),
        stderr: read("err"),
    };
    if std::env::var_os("TFSHIM_TEST_SHOW").is_some() {
        eprintln!(
            "{name}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Run::checked(sb, name, output)
}

/// Polls `ready` every few milliseconds, for at most 60 s.
#[track_caller]
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// The repair's `init` goes through `strace`, which holds terraform `delay_enter` µs before and
/// `delay_exit` µs after its write of the saved file; markers in `marks` say when terraform starts
/// (`started`) and has exited (`finished`, then the wrapper waits `post` seconds). Only when the
/// variable `SLOW` is set: the other commands run terraform directly.
fn slow_repair(sb: &mut Sandbox, delay_enter: u32, delay_exit: u32, post: &str) -> PathBuf {
    let marks = sb.root.path().join("marks");
    fs::create_dir_all(&marks).unwrap();
    let saved = sb.data_dir().join(SAVED);
    sb.wrap_terraform(&format!(
        "case \"$*\" in *\"init -reconfigure\"*) if [ -n \"$SLOW\" ]; then\n\
         touch '{m}/started'\n\
         strace -f -qq -o /dev/null -P '{saved}' -e trace=write \
         -e inject=write:delay_enter={delay_enter}:delay_exit={delay_exit} \"$REAL\" \"$@\"\n\
         rc=$?; touch '{m}/finished'; sleep {post}; exit $rc\n\
         fi ;; esac",
        m = marks.display(),
        saved = saved.display(),
    ));
    marks
}

/// SIGKILL to the whole process group `pgid`, then waits until none of it is running (zombies
/// re-parented elsewhere do not count: they hold no file and no lock).
fn kill_group(pgid: u32) {
    unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
    wait_until("the killed process group to die", || {
        !fs::read_dir("/proc").unwrap().flatten().any(|e| {
            fs::read_to_string(e.path().join("stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid pgrp …`; comm may hold spaces, so split after the `)`.
                let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                let fields: Vec<&str> = rest.split_whitespace().collect();
                fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z"
            })
        })
    });
}

fn is_file(path: &Path) -> bool {
    path.is_file()
}

fn saved_len(sb: &Sandbox) -> Option<u64> {
    fs::metadata(sb.data_dir().join(SAVED))
        .ok()
        .map(|m| m.len())
}

// ---- item 5: the settings file ----

#[test]
fn settings_file_is_private_in_the_data_dir_and_removed() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    let seen = sb.root.path().join("seen");
    let backup = sb.data_dir().join(BACKUP);
    // What the repair's init is handed, and the backup beside it while it runs.
    sb.wrap_terraform(&format!(
        "for a in \"$@\"; do case \"$a\" in -backend-config=*) \
         stat -c '%a %n' \"${{a#-backend-config=}}\" >> '{seen}';; esac; done\n\
         case \"$*\" in *\"init -reconfigure\"*) stat -c '%a %n' '{backup}' >> '{seen}';; esac",
        seen = seen.display(),
        backup = backup.display()
    ));
    sb.env("TMPDIR", sb.root.path().join("no-such-dir"));
    sb.tfshim(&["plan", "-input=false"])
        .success()
        .stderr_has("re-initialising");
    let seen = fs::read_to_string(&seen).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 2, "{seen}");
    let settings = Path::new(lines[0].strip_prefix("600 ").expect(lines[0]));
    assert_eq!(settings.parent(), Some(sb.data_dir().as_path()), "{seen}");
    let name = settings.file_name().unwrap().to_string_lossy();
    assert!(
        name.starts_with("tfshim-settings-") && name.ends_with(".json"),
        "{name}"
    );
    for secret in &sb.secrets {
        assert!(!name.contains(secret.as_str()));
    }
    assert_eq!(lines[1], format!("600 {}", backup.display()));
    let leftovers = sb.tfshim_leftovers();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---- items 2 and 4: full disk, read-only data dir ----

#[test]
fn disk_full_before_the_repair_runs_terraform_unchanged() {
    let (sb, _mount) = stale_on_tmpfs("1m");
    fill(&sb.data_dir());
    let before = sb.saved_bytes();
    let plain = sb.terraform(&["plan", "-input=false", "-no-color"]);
    let run = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    // No room for the backup, so no repair: said in one line, then terraform's own outcome.
    run.stderr_has("cannot keep a copy of the saved backend")
        .stderr_has("No space left on device")
        .stderr_has("running terraform unchanged");
    assert_eq!(run.code(), plain.code(), "{}", run.stderr());
    assert_eq!(run.stdout(), plain.stdout());
    assert_eq!(sb.saved_bytes(), before);
    assert!(
        sb.tfshim_leftovers().is_empty(),
        "{:?}",
        sb.tfshim_leftovers()
    );
}

#[test]
fn disk_full_inside_terraforms_write_puts_the_old_file_back() {
    let (mut sb, _mount) = stale_on_tmpfs("1m");
    let before = sb.saved_bytes();
    slow_repair(&mut sb, 1_500_000, 0, "0");
    let child = spawn_plan(&sb, &[("SLOW", "1")], "full");
    // terraform has truncated the file and sits in its write: now the disk fills up, so that
    // write fails for real (ENOSPC) and leaves the file empty.
    wait_until("terraform's truncate", || saved_len(&sb) == Some(0));
    fill(&sb.data_dir());
    let run = finished(&sb, child, "full");
    run.code_is(1)
        .stderr_has("no space left on device")
        .stderr_has("was put back as it was")
        .stderr_has("the repair's `terraform init -reconfigure` failed");
    // Put back without a byte of free space: the backup was renamed over the empty file.
    assert_eq!(sb.saved_bytes(), before);
    assert!(
        sb.tfshim_leftovers().is_empty(),
        "{:?}",
        sb.tfshim_leftovers()
    );
}

#[test]
fn read_only_data_dir_runs_terraform_unchanged() {
    let (sb, mount) = stale_on_tmpfs("1m");
    mount.remount("ro");
    let before = sb.saved_bytes();
    let plain = sb.terraform(&["plan", "-input=false", "-no-color"]);
    let run = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    run.stderr_has("Read-only file system")
        .stderr_has("running terraform unchanged");
    assert_eq!(run.code(), plain.code(), "{}", run.stderr());
    assert_eq!(run.stdout(), plain.stdout());
    assert_eq!(sb.saved_bytes(), before);
}

/// The `.tf` backend block changed since the last init: terraform's reconfigure succeeds, but with
/// another hash, so tfshim must put the old file back.
fn change_the_backend_block(sb: &Sandbox) {
    let tf = sb.main_tf(Layout::default());
    fs::write(
        sb.work.join("main.tf"),
        tf.replace(
            "use_path_style = true",
            "use_path_style = true\n    encrypt = true",
        ),
    )
    .unwrap();
}

#[test]
fn data_dir_read_only_before_the_restore_leaves_terraforms_complete_file() {
    let (mut sb, mount) = stale_on_tmpfs("1m");
    let before = sb.saved_bytes();
    change_the_backend_block(&sb);
    // Right after terraform's rewrite (and before tfshim's check), the data dir turns read-only.
    sb.wrap_terraform(&format!(
        "case \"$*\" in *\"init -reconfigure\"*) \"$REAL\" \"$@\"; rc=$?; \
         mount -o remount,ro '{}' || exit 99; exit $rc ;; esac",
        sb.data_dir().display()
    ));
    let run = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    // Fail open (#20 item 11): a restore that failed is said in one line, and terraform runs
    // unchanged on the file it wrote itself — here its plan succeeds.
    run.success()
        .stderr_has("the backend hash changed")
        .stderr_has("could not put the previous saved backend back")
        .stderr_has("Read-only file system")
        .stderr_has("the next tfshim run restores it")
        .stderr_has("; running terraform unchanged")
        .stdout_has("Plan: 1 to add");
    // terraform's complete file: valid, the keys gone, the new hash.
    let written = sb.saved_backend();
    assert_ne!(sb.saved_bytes(), before);
    assert!(written["config"]["access_key"].is_null(), "{written}");
    assert!(sb.data_dir().join(BACKUP).is_file(), "the backup is kept");
    // Writable again: the next run recovers the old file first — in `warn` mode too, since it
    // only undoes tfshim's own unfinished change — and then only warns about the stale key.
    mount.remount("rw");
    fs::write(sb.work.join("main.tf"), sb.main_tf(Layout::default())).unwrap();
    sb.wrap_terraform("");
    sb.env("TFSHIM_MODE", "warn");
    let next = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    next.stderr_has("a repair that was interrupted left")
        .stderr_has("the backend hash changed")
        .stderr_has("putting back the copy tfshim kept")
        .stderr_has("TFSHIM_MODE=warn");
    assert_eq!(sb.saved_bytes(), before, "the old file, byte for byte");
    sb.env("TFSHIM_MODE", "fix");
    sb.tfshim(&["plan", "-input=false", "-no-color"]).success();
    assert!(
        sb.tfshim_leftovers().is_empty(),
        "{:?}",
        sb.tfshim_leftovers()
    );
}

// ---- item 4: crash consistency ----

/// What the crash test checks after each kill: the next `tfshim plan` succeeds, the saved backend
/// addresses the same state (type, hash, bucket, key, region, workspace), the key is gone, and no
/// settings file or backup is left.
#[track_caller]
fn next_plan_heals_and_addresses_the_same_state(sb: &Sandbox, before: &Value, label: &str) {
    let run = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    assert!(
        run.output.status.success(),
        "{label}: the next plan failed:\n{}",
        run.stderr()
    );
    let after = sb.saved_backend();
    for field in ["type", "hash"] {
        assert_eq!(after[field], before[field], "{label}: {field}");
    }
    for attr in ["bucket", "key", "region", "endpoints"] {
        assert_eq!(
            after["config"][attr], before["config"][attr],
            "{label}: {attr}"
        );
    }
    assert!(after["config"]["access_key"].is_null(), "{label}: healed");
    assert_eq!(
        fs::read_to_string(sb.data_dir().join("environment")).unwrap(),
        "blue",
        "{label}: the workspace"
    );
    let leftovers = sb.tfshim_leftovers();
    assert!(leftovers.is_empty(), "{label}: {leftovers:?}");
}

/// Whether an event of the repair has happened (given the sandbox and the markers' directory).
type Probe = Box<dyn Fn(&Sandbox, &Path) -> bool>;

/// A point of the repair at which the process group is killed.
enum KillAt {
    /// When this becomes true (then at once).
    Event(&'static str, Probe),
    /// This long after tfshim started.
    Time(Duration),
}

#[test]
fn sigkill_of_the_process_group_at_any_point_of_a_repair_loses_nothing() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    // A workspace other than `default`: the state addressed includes it.
    sb.terraform(&["workspace", "new", "-no-color", "blue"])
        .success();
    let before = sb.saved_backend();
    let old_key = sb.rotate().id;
    let stale = sb.saved_bytes();
    // Slow phases: 0.3 s before terraform's write of the saved file (it is empty then), 0.3 s
    // after it (complete, not yet fsynced), 0.3 s between terraform's exit and tfshim's check.
    let marks = slow_repair(&mut sb, 300_000, 300_000, "0.3");
    let saved = sb.data_dir().join(SAVED);
    let backup = sb.data_dir().join(BACKUP);
    let reset = |sb: &Sandbox| {
        fs::write(&saved, &stale).unwrap();
        let _ = fs::remove_dir_all(&marks);
        fs::create_dir_all(&marks).unwrap();
        assert!(sb.tfshim_leftovers().is_empty());
    };

    // A full slowed repair, not killed: how long the repair takes here (until its backup is gone).
    reset(&sb);
    let start = Instant::now();
    let child = spawn_plan(&sb, &[("SLOW", "1")], "calibration");
    wait_until("the backup", || is_file(&backup));
    wait_until("the repair's end", || !is_file(&backup));
    let repair = start.elapsed();
    finished(&sb, child, "calibration").success();

    let has = |name: &'static str| -> Probe {
        Box::new(move |_, marks: &Path| marks.join(name).exists())
    };
    let data_has = |name: &'static str| -> Probe {
        Box::new(move |sb: &Sandbox, _: &Path| sb.data_dir().join(name).exists())
    };
    let mut points = vec![
        KillAt::Event("at once", Box::new(|_, _| true)),
        KillAt::Event("backup written", data_has(BACKUP)),
        KillAt::Event(
            "settings file written",
            Box::new(|sb: &Sandbox, _: &Path| {
                fs::read_dir(sb.data_dir()).unwrap().flatten().any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("tfshim-settings-")
                })
            }),
        ),
        KillAt::Event("terraform starting", has("started")),
        KillAt::Event(
            "terraform inside its write (file truncated)",
            Box::new(|sb: &Sandbox, _: &Path| saved_len(sb) == Some(0)),
        ),
        KillAt::Event(
            "terraform just after its write",
            Box::new(move |sb: &Sandbox, _: &Path| {
                fs::read(sb.data_dir().join(SAVED))
                    .is_ok_and(|b| !b.is_empty() && !String::from_utf8_lossy(&b).contains(&old_key))
            }),
        ),
        KillAt::Event("terraform exited, tfshim not yet checking", has("finished")),
        KillAt::Event(
            "repair verified, the user's plan running",
            Box::new(move |sb: &Sandbox, marks: &Path| {
                marks.join("finished").exists() && !sb.data_dir().join(BACKUP).exists()
            }),
        ),
    ];
    // And evenly over the whole repair and a little beyond, so that no phase is missed however
    // long it takes here.
    const TIMED: u32 = 25;
    for i in 0..TIMED {
        points.push(KillAt::Time(repair * 11 / 10 * i / (TIMED - 1)));
    }
    assert!(points.len() >= 30);
    let mut seen = std::collections::BTreeSet::new();

    for (n, point) in points.iter().enumerate() {
        reset(&sb);
        let name = format!("kill-{n}");
        let child = spawn_plan(&sb, &[("SLOW", "1")], &name);
        let start = Instant::now();
        let label = match point {
            KillAt::Event(label, ready) => {
                wait_until(label, || ready(&sb, &marks));
                format!("kill {n} ({label})")
            }
            KillAt::Time(at) => {
                std::thread::sleep(at.saturating_sub(start.elapsed()));
                format!("kill {n} (at {at:?} of {repair:?})")
            }
        };
        kill_group(child.id());
        finished(&sb, child, &name);
        let left = what_the_kill_left(&saved, &backup, &stale);
        if std::env::var_os("TFSHIM_TEST_SHOW").is_some() {
            eprintln!("{label}: {left}");
        }
        seen.insert(left);
        next_plan_heals_and_addresses_the_same_state(&sb, &before, &label);
    }
    // The kills did land in every phase (else this test would prove less than it says).
    for state in [
        "untouched",
        "backed up, untouched",
        "backed up, truncated by terraform",
        "backed up, rewritten by terraform",
        "repaired",
    ] {
        assert!(seen.contains(state), "no kill left {state:?}: {seen:?}");
    }
}

/// The state a kill left the data dir in.
fn what_the_kill_left(saved: &Path, backup: &Path, stale: &[u8]) -> &'static str {
    let bytes = fs::read(saved).unwrap_or_default();
    match (backup.exists(), bytes.as_slice()) {
        (false, b) if b == stale => "untouched",
        (false, _) => "repaired",
        (true, b) if b == stale => "backed up, untouched",
        (true, []) => "backed up, truncated by terraform",
        (true, _) => "backed up, rewritten by terraform",
    }
}

#[test]
fn sweep_fix_recovers_a_killed_repair_then_repairs() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_backend();
    sb.rotate();
    let stale = sb.saved_bytes();
    slow_repair(&mut sb, 2_000_000, 0, "0");
    let child = spawn_plan(&sb, &[("SLOW", "1")], "killed");
    wait_until("terraform's truncate", || saved_len(&sb) == Some(0));
    kill_group(child.id());
    finished(&sb, child, "killed");
    assert!(sb.data_dir().join(BACKUP).is_file());
    // Doctor names the leftover and what the next run will do with it, and changes nothing.
    let doctor = sb.tfshim(&["shim", "doctor", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&doctor.stdout()).unwrap();
    let warning = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "interrupted-repair")
        .unwrap_or_else(|| panic!("no interrupted-repair warning: {doc}"));
    let message = warning["message"].as_str().unwrap();
    assert!(
        message.contains(BACKUP) && message.contains("puts it back over"),
        "{message}"
    );
    assert_eq!(saved_len(&sb), Some(0));
    assert!(sb.data_dir().join(BACKUP).is_file());
    // A plain sweep changes nothing, and reports the root as unreadable.
    let root = sb.work.display().to_string();
    let look = sb.tfshim(&["shim", "sweep", root.as_str()]);
    assert!(look.stdout().contains("unverified"), "{}", look.stdout());
    assert_eq!(saved_len(&sb), Some(0));
    let run = sb.tfshim(&["shim", "sweep", root.as_str(), "--fix"]);
    run.success()
        .stderr_has("putting back the copy tfshim kept");
    assert!(run.stdout().contains("repaired"), "{}", run.stdout());
    let after = sb.saved_backend();
    assert_eq!(after["hash"], before["hash"]);
    assert_eq!(after["config"]["key"], before["config"]["key"]);
    assert!(after["config"]["access_key"].is_null());
    assert_ne!(sb.saved_bytes(), stale);
    assert!(
        sb.tfshim_leftovers().is_empty(),
        "{:?}",
        sb.tfshim_leftovers()
    );
}
