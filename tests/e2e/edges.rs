//! Never worse than terraform at the edges of the process (#20 items 3, 5 and 7):
//! - a signal sent from outside tfshim's PID namespace (`docker stop`, kubelet, a CI runner's
//!   docker executor: the kernel reports the sender's pid as 0) reaches the real terraform of a
//!   child path exactly once (item 3);
//! - in a mount namespace without `/proc` terraform runs through tfshim as it runs alone, and the
//!   self-skip on PATH still holds (item 5);
//! - terraform inherits the ignored signals and the signal mask tfshim was started with, on every
//!   path (item 7; the rows with the real terraform as the reference are in `differential.rs`).
//!
//! The namespaces come from `unshare` (util-linux), as root: without it these tests fail and say
//! so, they never skip.

#![cfg(target_os = "linux")]

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::signals::{attach_strace, setup, ChildPath};
use crate::support::{real_terraform, tfshim_bin, Layout, Run, Sandbox};

const NEED_UNSHARE: &str = "`unshare` (util-linux) is needed by these tests, run as root: it \
                            makes the PID and mount namespaces they check tfshim in";

/// The pid, in this (the parent) namespace, of the process among `root`'s descendants that is
/// `inner` in a PID namespace of their own.
fn outer_pid(root: u32, inner: &str) -> String {
    let parent_of = |pid: &str| {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit_once(')')?.1.to_owned();
        after.split_whitespace().nth(1).map(str::to_owned)
    };
    let procs: Vec<(String, String)> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|p| Some((p.clone(), parent_of(&p)?)))
        .collect();
    let mut family = vec![root.to_string()];
    loop {
        let before = family.len();
        for (pid, parent) in &procs {
            if family.contains(parent) && !family.contains(pid) {
                family.push(pid.clone());
            }
        }
        if family.len() == before {
            break;
        }
    }
    family
        .into_iter()
        .find(|p| {
            let status = fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            let nspid: Vec<String> = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .map(|l| l.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
            nspid.len() == 2 && nspid[1] == inner
        })
        .unwrap_or_else(|| {
            panic!("no process below {root} is {inner} in a PID namespace of its own")
        })
}

/// How the signal reaches tfshim, which runs in a PID namespace of its own.
#[derive(Clone, Copy, Debug)]
enum Sender {
    /// SIGTERM from a process in the parent namespace to tfshim's pid (`docker stop`): the kernel
    /// gives tfshim the sender's pid as 0. tfshim must forward it, once.
    OutsideProcess,
    /// Ctrl-C at tfshim's terminal (a pseudo-terminal made by `script`): the kernel sends SIGINT to
    /// the foreground group, terraform included. tfshim must not add one.
    Terminal,
}

/// The namespace's init: a shell that survives Ctrl-C (a handler, which its children do not
/// inherit), since the namespace ends when its init does.
const INIT: &str = "trap : INT; \"$0\" \"$@\"; exit $?";

/// A signal reaches the real terraform exactly once while it runs as tfshim's child (`path`) and
/// tfshim is in a PID namespace of its own (#20 item 3): one sent from outside the namespace, which
/// tfshim sees with sender pid 0 and before the fix dropped (terraform ran on), is forwarded; the
/// terminal's, which terraform has already, is not.
fn reaches_terraform_once_in_a_pid_namespace(path: ChildPath, from: Sender) {
    let s = setup(path, None);
    let calls_before = s.sb.sts.other_calls();
    let unshare = ["--pid", "--fork", "--mount-proc", "sh", "-c", INIT];
    let mut cmd = match from {
        Sender::OutsideProcess => {
            let mut cmd = s.sb.command(Path::new("unshare"));
            cmd.args(unshare).arg(tfshim_bin()).args(&s.args);
            cmd
        }
        Sender::Terminal => {
            let mut cmd = s.sb.command(Path::new("script"));
            let line = std::iter::once("exec unshare".to_owned())
                .chain(unshare.iter().map(|a| format!("'{a}'")))
                .chain(std::iter::once(format!("'{}'", tfshim_bin())))
                .chain(s.args.iter().map(|a| format!("'{a}'")))
                .collect::<Vec<_>>()
                .join(" ");
            cmd.args(["-qec", &line, "/dev/null"])
                .env("SHELL", "/bin/sh");
            cmd
        }
    };
    let (signal, name) = match from {
        Sender::OutsideProcess => (libc::SIGTERM, "SIGTERM"),
        Sender::Terminal => (libc::SIGINT, "SIGINT"),
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect(NEED_UNSHARE);
    let mut keyboard = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.started.exists() {
        assert!(Instant::now() < deadline, "the child never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let inner = fs::read_to_string(&s.started).unwrap();
    let mut inner = inner.split_whitespace();
    let (terraform_inner, tfshim_inner) = (inner.next().unwrap(), inner.next().unwrap());
    let terraform = outer_pid(child.id(), terraform_inner);
    let tfshim = outer_pid(child.id(), tfshim_inner);
    let kills = s.sb.root.path().join("tfshim-kills.log");
    let tracers = [
        attach_strace(
            &terraform,
            &["-e", "trace=none", "-e", &format!("signal={name}")],
            &s.trace,
        ),
        attach_strace(
            &tfshim,
            &["-e", "trace=kill,tgkill,tkill", "-e", "signal=none"],
            &kills,
        ),
    ];
    fs::write(&s.go, "").unwrap();
    // terraform is waiting for STS (slowed down once tfshim's own checks are done).
    loop {
        assert!(Instant::now() < deadline, "terraform never got going");
        s.sb.sts.delay(Duration::from_secs(4));
        if s.sb.sts.other_calls() > calls_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    match from {
        Sender::OutsideProcess => {
            let pid: i32 = tfshim.parse().unwrap();
            // SAFETY: kill(2) on tfshim, a process this test started (through unshare and sh).
            assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        }
        Sender::Terminal => std::io::Write::write_all(&mut keyboard, b"\x03").unwrap(),
    }
    let out = child.wait_with_output().unwrap();
    drop(keyboard);
    for mut tracer in tracers {
        let _ = tracer.wait();
    }
    let run = Run::checked(&s.sb, "tfshim in a PID namespace", out);
    let log = fs::read_to_string(&s.trace).expect("the traced terraform never ran");
    let delivered = log.matches(&format!("--- {name} ")).count();
    let call = format!("kill({terraform_inner}, {name})");
    let forwarded = fs::read_to_string(&kills)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&call))
        .count();
    let want_forwarded = match from {
        Sender::OutsideProcess => 1,
        Sender::Terminal => 0,
    };
    assert_eq!(
        (delivered, forwarded),
        (1, want_forwarded),
        "{path:?}, {name} from {from:?}: terraform got {delivered}, tfshim forwarded {forwarded}\n{}",
        run.stderr()
    );
}

#[test]
fn sigterm_from_outside_the_pid_namespace_reaches_the_repairs_init_once() {
    reaches_terraform_once_in_a_pid_namespace(ChildPath::Repair, Sender::OutsideProcess);
}

#[test]
fn sigterm_from_outside_the_pid_namespace_reaches_the_reactive_first_run_once() {
    reaches_terraform_once_in_a_pid_namespace(ChildPath::Reactive, Sender::OutsideProcess);
}

/// The terminal's Ctrl-C in the namespace (sender pid 0 too, but sent by the kernel to the whole
/// foreground group) is still not doubled.
#[test]
fn ctrl_c_in_a_pid_namespace_reaches_the_repairs_init_once() {
    reaches_terraform_once_in_a_pid_namespace(ChildPath::Repair, Sender::Terminal);
}

/// `program args` in a mount namespace of its own where `/proc` is unmounted, with `path` as PATH.
fn without_proc(sb: &Sandbox, path: &std::ffi::OsStr, program: &str, args: &[&str]) -> Run {
    let mut cmd = sb.command(Path::new("unshare"));
    // The checks make sure `/proc` is really gone, so the test cannot pass with it there.
    cmd.args(["--mount", "--fork", "sh", "-c"])
        .arg(
            "umount -l /proc || exit 97; test -e /proc/self/exe && exit 98; PATH=\"$TEST_PATH\"; \
             exec \"$0\" \"$@\"",
        )
        .arg(program)
        .args(args)
        .env("TEST_PATH", path);
    let out = cmd.output().expect(NEED_UNSHARE);
    let run = Run::checked(sb, &format!("{program} {args:?} without /proc"), out);
    assert!(
        !matches!(run.code(), Some(97 | 98)),
        "could not take /proc away: {}",
        run.stderr()
    );
    run
}

/// In a mount namespace without `/proc`, tfshim installed as `terraform` first on PATH runs the
/// real terraform after it, as terraform alone would run: `version`, `-version`, `plan` (the full
/// path), and `TFSHIM_TERRAFORM=… tfshim plan` (#20 item 5). Before the fix every one exited 1 with
/// "no /proc/self/exe available".
#[test]
fn terraform_runs_without_proc() {
    let sb = Sandbox::new(Layout {
        local: true,
        ..Layout::default()
    });
    let bin = sb.root.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(tfshim_bin(), bin.join("terraform")).unwrap();
    let real = real_terraform();
    let path = std::env::join_paths([bin.clone(), real.parent().unwrap().to_path_buf()]).unwrap();
    let alone = std::env::join_paths([real.parent().unwrap().to_path_buf()]).unwrap();
    sb.terraform(&["init", "-input=false"]).success();
    for args in [
        &["version"][..],
        &["-version"],
        &["plan", "-input=false", "-no-color"],
    ] {
        let expected = without_proc(&sb, &alone, "terraform", args);
        assert_eq!(expected.code(), Some(0), "{}", expected.stderr());
        let shim = without_proc(&sb, &path, "terraform", args);
        assert_eq!(
            (shim.code(), shim.stdout()),
            (expected.code(), expected.stdout()),
            "terraform {args:?} through tfshim without /proc\n{}",
            shim.stderr()
        );
    }
    let mut sb = sb;
    sb.env("TFSHIM_TERRAFORM", &real);
    let shim = without_proc(&sb, &alone, tfshim_bin(), &["plan", "-input=false"]);
    assert_eq!(shim.code(), Some(0), "{}", shim.stderr());
    assert!(
        shim.stdout().contains("terraform_data.x"),
        "{}",
        shim.stdout()
    );
}

/// Makes `cmd` start as from a shell that ignores SIGPIPE, SIGHUP and SIGINT (a pipeline under
/// `nohup`, in the background) and blocks SIGUSR1 and SIGWINCH (a supervisor's mask).
pub fn start_like_a_shell(cmd: &mut Command) {
    // SAFETY: only sigaction(2)/sigprocmask(2) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGPIPE, libc::SIGHUP, libc::SIGINT] {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigaddset(&mut set, libc::SIGWINCH);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// A stand-in terraform (not Go: the Go runtime installs its own SIGPIPE handler, so terraform's
/// `/proc` status cannot show an inherited ignored SIGPIPE) that prints the signals it was started
/// with ignored and blocked. Started directly and through tfshim (exec and fast path alike), it
/// must print the same (#20 item 7): std's `Command` resets SIGPIPE to default in a child, and
/// tfshim ignores SIGPIPE itself.
#[test]
fn ignored_sigpipe_and_the_mask_reach_terraform_on_every_path() {
    let mut sb = Sandbox::new(Layout {
        local: true,
        ..Layout::default()
    });
    let stand_in: PathBuf = sb.root.path().join("terraform-stand-in");
    fs::write(
        &stand_in,
        "#!/bin/sh\nexec grep -E '^Sig(Ign|Blk)' /proc/self/status\n",
    )
    .unwrap();
    fs::set_permissions(
        &stand_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    sb.env("TFSHIM_TERRAFORM", &stand_in);
    let run = |program: &Path, args: &[&str]| {
        let mut cmd = sb.command(program);
        start_like_a_shell(&mut cmd);
        sb.run(cmd, args)
    };
    let direct = run(&stand_in, &["version"]);
    direct.success();
    let ignored = direct
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .expect("the stand-in printed its SigIgn");
    assert_ne!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "the test could not start the stand-in with SIGPIPE ignored: {}",
        direct.stdout()
    );
    for args in [
        &["version"][..],
        &["-version"],
        &["plan", "-input=false"],
        &["init", "-input=false"],
    ] {
        let shim = run(Path::new(tfshim_bin()), args);
        assert_eq!(
            shim.stdout(),
            direct.stdout(),
            "tfshim {args:?}: terraform started with other signal dispositions or mask than \
             when started directly\n{}",
            shim.stderr()
        );
    }
}
