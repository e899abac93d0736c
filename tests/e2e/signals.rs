//! Signals on the child paths (#12 item 7): where tfshim runs terraform as a child (a repair's
//! `init`, the reactive fallback's first run, a credential-only `init`), a SIGINT sent to tfshim's
//! pid alone (as some CI cancellations do) or typed at its terminal (Ctrl-C, which the terminal
//! delivers to terraform itself) reaches the real terraform exactly once, and tfshim ends as
//! terraform did (its code, or the signal it died of).
//!
//! The count is terraform's own: the wrapper `exec`s the real terraform (so tfshim's child is
//! terraform, as without a wrapper), and the test attaches `strace` to it, which logs every SIGINT
//! delivered to it (any of its threads) and how it ended. The kernel merges a second SIGINT that
//! arrives while the first is still pending, so the test also attaches `strace` to tfshim and counts
//! the SIGINTs tfshim itself sends: one for a `kill` of its pid, none for the terminal's.

#![cfg(unix)]

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Layout, Run, Sandbox};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChildPath {
    /// `plan` with a rejected saved key: the repair's `init -reconfigure` is the child.
    Repair,
    /// `plan` when STS is too slow for the preflight: the watched first run is the child.
    Reactive,
    /// `init` with only new credentials: the user's init, plus `-reconfigure`, is the child.
    CredentialInit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// `kill(tfshim)`: only tfshim gets it.
    Pid,
    /// Ctrl-C typed at tfshim's terminal (a pseudo-terminal made by `script`): the kernel sends it
    /// to the whole foreground process group, terraform included.
    Terminal,
}

pub(crate) struct Setup {
    pub(crate) sb: Sandbox,
    pub(crate) args: Vec<String>,
    /// Holds the wrapper's pid (terraform's, after `exec`) and its parent's (tfshim's) once the
    /// child of interest has started.
    pub(crate) started: PathBuf,
    /// The wrapper waits for this file before it `exec`s terraform.
    pub(crate) go: PathBuf,
    pub(crate) trace: PathBuf,
}

/// A stale saved key, and a wrapper that, for the child of `path`, writes its pid to `started`,
/// then runs `then`: `exec`s the real terraform once `go` exists (`None`), or a stand-in.
pub(crate) fn setup(path: ChildPath, stand_in: Option<&str>) -> Setup {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    let started = sb.root.path().join("child-started");
    let go = sb.root.path().join("go");
    let trace = sb.root.path().join("terraform-signals.log");
    let (pattern, args) = match path {
        ChildPath::Repair => (
            "*\"init -reconfigure\"*",
            vec!["plan".into(), "-input=false".into()],
        ),
        ChildPath::Reactive => {
            sb.sts.delay(Duration::from_secs(4));
            sb.env("TFSHIM_STS_TIMEOUT", "1");
            ("plan*", vec!["plan".into(), "-input=false".into()])
        }
        ChildPath::CredentialInit => {
            let mut args = vec!["init".to_owned(), "-input=false".to_owned()];
            args.extend(Sandbox::key_args(&sb.key));
            ("init*-reconfigure*", args)
        }
    };
    let then = match stand_in {
        Some(command) => format!("exec {command}"),
        None => format!(
            "while [ ! -e '{}' ]; do sleep 0.02; done; exec \"$REAL\" \"$@\"",
            go.display()
        ),
    };
    sb.wrap_terraform(&format!(
        "case \"$*\" in {pattern}) echo $$ $PPID > '{s}.tmp'; mv '{s}.tmp' '{s}'; {then} ;; esac",
        s = started.display()
    ));
    Setup {
        sb,
        args,
        started,
        go,
        trace,
    }
}

/// Attaches strace to `pid` (and all its threads) with `filter` (`-e` options), logging to `log`;
/// returns once it is attached.
pub(crate) fn attach_strace(
    pid: &str,
    filter: &[&str],
    log: &std::path::Path,
) -> std::process::Child {
    let mut strace = std::process::Command::new("strace")
        .arg("-f")
        .args(filter)
        .arg("-o")
        .arg(log)
        .args(["-p", pid])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace is needed (shell/test.sh installs it)");
    let mut said = std::io::BufReader::new(strace.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    assert!(line.contains("attached"), "strace: {line}");
    // Drain the rest (one line per thread) so strace never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
    strace
}

/// Runs tfshim, waits until `ready`, sends SIGINT as `delivery` says, and waits for the end. With
/// [`Delivery::Terminal`] tfshim runs under `script`, whose exit code is 128+N when tfshim died of
/// signal N: the result is then given in the same words as [`ended_as`] uses.
fn interrupt(s: &Setup, delivery: Delivery, ready: impl Fn() -> bool) -> (String, Run) {
    let mut cmd = match delivery {
        Delivery::Pid => {
            let mut cmd = s.sb.tfshim_cmd();
            cmd.args(&s.args);
            cmd
        }
        Delivery::Terminal => {
            let mut cmd = s.sb.command(std::path::Path::new("script"));
            let line = std::iter::once(crate::support::tfshim_bin().to_owned())
                .chain(s.args.iter().cloned())
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" ");
            cmd.args(["-qec", &format!("exec {line}"), "/dev/null"])
                .env("SHELL", "/bin/sh");
            cmd
        }
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut keyboard = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.started.exists() {
        assert!(Instant::now() < deadline, "the child never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let strace = traced_child(s);
    while !ready() {
        assert!(Instant::now() < deadline, "the child never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    match delivery {
        // SAFETY: kill(2) on the process this test started.
        Delivery::Pid => assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0),
        Delivery::Terminal => keyboard.write_all(b"\x03").unwrap(),
    }
    let out = child.wait_with_output().unwrap();
    drop(keyboard);
    for mut tracer in strace {
        let _ = tracer.wait();
    }
    let ended = match (delivery, out.status.code()) {
        (Delivery::Terminal, Some(130)) => "killed by SIGINT".to_owned(),
        _ => ended_as(&out.status),
    };
    (ended, Run::checked(&s.sb, "tfshim under SIGINT", out))
}

/// For the real terraform (not a stand-in): strace attached to it (the SIGINTs it receives) and
/// to tfshim (the `kill`s it makes), and `go` given.
fn traced_child(s: &Setup) -> Vec<std::process::Child> {
    let pids = std::fs::read_to_string(&s.started).unwrap();
    let mut pids = pids.split_whitespace();
    let (terraform, tfshim) = (pids.next().unwrap(), pids.next().unwrap());
    let mut tracers = Vec::new();
    if !is_stand_in(s) {
        let signals = ["-e", "trace=none", "-e", "signal=SIGINT"];
        tracers.push(attach_strace(terraform, &signals, &s.trace));
        let kills = ["-e", "trace=kill,tgkill,tkill", "-e", "signal=none"];
        tracers.push(attach_strace(tfshim, &kills, &s.kills()));
    }
    std::fs::write(&s.go, "").unwrap();
    tracers
}

impl Setup {
    /// The signals tfshim itself sent (strace's log of its `kill` calls).
    fn kills(&self) -> PathBuf {
        self.sb.root.path().join("tfshim-kills.log")
    }

    /// The SIGINTs tfshim sent to terraform (not its own re-raise when it ends by the signal).
    fn sigints_sent_by_tfshim(&self) -> usize {
        let pids = std::fs::read_to_string(&self.started).unwrap();
        let terraform = pids.split_whitespace().next().unwrap();
        let call = format!("kill({terraform}, SIGINT)");
        std::fs::read_to_string(self.kills())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&call))
            .count()
    }
}

fn is_stand_in(s: &Setup) -> bool {
    let wrapper = std::fs::read_to_string(s.sb.root.path().join("terraform-wrapper")).unwrap();
    !wrapper.contains(&s.go.display().to_string())
}

/// What strace saw: SIGINTs delivered to terraform, and how it ended (`exited with N` or
/// `killed by SIGINT`).
fn traced(s: &Setup) -> (usize, String) {
    let log = std::fs::read_to_string(&s.trace).expect("the traced terraform never ran");
    let delivered = log.matches("--- SIGINT ").count();
    let end = log
        .lines()
        .rev()
        .find_map(|l| l.split("+++ ").nth(1))
        .map(|e| e.trim_end_matches(" +++").to_owned())
        .unwrap_or_default();
    (delivered, end)
}

fn ended_as(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(sig)) if sig == libc::SIGINT => "killed by SIGINT".into(),
        (None, sig) => format!("killed by {sig:?}"),
    }
}

#[track_caller]
fn reaches_terraform_once(path: ChildPath, delivery: Delivery) {
    let s = setup(path, None);
    let calls_before = s.sb.sts.other_calls();
    let (ended, run) = match path {
        // The reactive run's terraform is already held by the slow STS.
        ChildPath::Reactive => interrupt(&s, delivery, || s.sb.sts.other_calls() > calls_before),
        // The others: slow STS down once tfshim's own checks are done, and interrupt terraform
        // while it waits for it.
        _ => interrupt(&s, delivery, || {
            s.sb.sts.delay(Duration::from_secs(4));
            s.sb.sts.other_calls() > calls_before
        }),
    };
    let case = format!("{path:?}, SIGINT to the {delivery:?}");
    let (delivered, terraform_end) = traced(&s);
    assert_eq!(
        delivered,
        1,
        "{case}: terraform got {delivered} SIGINTs\n{}",
        run.stderr()
    );
    // The terminal delivered it to terraform itself: tfshim must not add one; a SIGINT sent to
    // tfshim alone: tfshim passes it on, once.
    let forwarded = s.sigints_sent_by_tfshim();
    let want = match delivery {
        Delivery::Pid => 1,
        Delivery::Terminal => 0,
    };
    assert_eq!(forwarded, want, "{case}: tfshim sent {forwarded} SIGINTs");
    let expected = match path {
        // The repair was interrupted before the user's command ran: tfshim stops, by that signal.
        ChildPath::Repair => "killed by SIGINT".to_owned(),
        // The user's own command: tfshim ends exactly as terraform did.
        _ => terraform_end.clone(),
    };
    assert_eq!(
        ended,
        expected,
        "{case}: terraform {terraform_end}\n{}",
        run.stderr()
    );
    assert!(
        !run.stderr().contains("Two interrupts"),
        "{case}: {}",
        run.stderr()
    );
}

#[test]
fn sigint_to_tfshim_reaches_the_repairs_init_once() {
    reaches_terraform_once(ChildPath::Repair, Delivery::Pid);
    reaches_terraform_once(ChildPath::Repair, Delivery::Terminal);
}

#[test]
fn sigint_to_tfshim_reaches_the_reactive_first_run_once() {
    reaches_terraform_once(ChildPath::Reactive, Delivery::Pid);
    reaches_terraform_once(ChildPath::Reactive, Delivery::Terminal);
}

#[test]
fn sigint_to_tfshim_reaches_the_credential_only_init_once() {
    reaches_terraform_once(ChildPath::CredentialInit, Delivery::Pid);
    reaches_terraform_once(ChildPath::CredentialInit, Delivery::Terminal);
}

/// A terraform that dies of the signal (here a stand-in that sleeps, as a shell does): the parent
/// of tfshim sees the same signal, not an exit code.
#[test]
fn the_parent_sees_the_signal_terraform_died_of() {
    for path in [
        ChildPath::Repair,
        ChildPath::Reactive,
        ChildPath::CredentialInit,
    ] {
        let s = setup(path, Some("sleep 30"));
        let (ended, run) = interrupt(&s, Delivery::Pid, || true);
        assert_eq!(ended, "killed by SIGINT", "{path:?}: {}", run.stderr());
    }
}
