//! Running terraform: the user's final command, and the child commands of a repair.
//!
//! The final command replaces tfshim (`exec`) on Unix, so terraform owns the terminal, the signals
//! and the exit code with nothing in between. Windows has no `exec`: tfshim ignores Ctrl-C itself
//! (the console delivers it to terraform too), waits, and exits with terraform's code, as rustup does.
//!
//! A repair's `init` must be a child, because tfshim checks the result afterwards. For the whole
//! repair — from before the child starts until the check (and any restore) is done — a [`Signals`]
//! guard catches SIGINT, SIGQUIT, SIGTERM and SIGHUP: the terminal already delivers SIGINT/SIGQUIT to
//! terraform (same process group), so tfshim only notes them; SIGTERM/SIGHUP sent to tfshim alone are
//! forwarded to the child once. Either way tfshim finishes its check, so the saved backend is never
//! left half-repaired, and then exits with the signal's conventional code.

use std::io::{self, Write};
use std::process::{Command, ExitCode, ExitStatus};

/// Replaces the current process with `cmd` (Unix) or runs it to completion (Windows). Returns only on
/// failure to start it, or on Windows with the child's exit code.
pub fn exec(mut cmd: Command) -> io::Result<ExitCode> {
    let _ = io::stderr().flush();
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(cmd.exec())
    }
    #[cfg(windows)]
    {
        windows::ignore_ctrl_c();
        let status = cmd.status()?;
        Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
    }
}

/// Whether tfshim has started the user's own command as a child (the reactive fallback's first run,
/// a credential-only `init`): after that, a failure inside tfshim must not run it a second time.
static USERS_COMMAND_STARTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Notes that the user's own command is about to start as a child.
pub fn starting_users_command() {
    USERS_COMMAND_STARTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub fn users_command_started() -> bool {
    USERS_COMMAND_STARTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// The outcome of a child run: its status and, when asked for, what it printed.
#[derive(Debug)]
pub struct ChildRun {
    pub status: ExitStatus,
    pub output: Vec<u8>,
}

/// At most this much of a captured child's output is kept (the start of it: that is where
/// terraform's errors are).
const CAPTURE_LIMIT: usize = 1 << 20;

/// Runs `cmd` as a child while `signals` is held. With `capture`, its stdout and stderr go,
/// interleaved as written, into [`ChildRun::output`] instead of the terminal.
pub fn run_child(mut cmd: Command, capture: bool, signals: &Signals) -> io::Result<ChildRun> {
    let _ = io::stderr().flush();
    let reader = if capture {
        let (reader, writer) = io::pipe()?;
        cmd.stdout(writer.try_clone()?).stderr(writer);
        Some(background(move || {
            let mut kept = Vec::new();
            let _ = io::Read::read_to_end(
                &mut io::Read::take(&reader, CAPTURE_LIMIT as u64),
                &mut kept,
            );
            // Drain the rest so the child never blocks on a full pipe.
            let _ = io::copy(&mut &reader, &mut io::sink());
            kept
        }))
    } else {
        None
    };
    let mut child = cmd.spawn()?;
    // `cmd` holds the pipe's write ends: without it the reader sees the end of the output.
    drop(cmd);
    signals.forward_to(child.id());
    let status = child.wait();
    signals.forward_to(0);
    let output = reader.map(finish).unwrap_or_default();
    Ok(ChildRun {
        status: status?,
        output,
    })
}

/// How long, after a child has exited, tfshim waits for the rest of its output: a grandchild that
/// inherited the pipe (an ssh control master, a daemon started by a data source) may hold it open
/// for ever.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `work` on a thread whose result can be awaited with a deadline ([`finish`]).
pub fn background<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx
}

/// The result of a [`background`] reader, or the default if it is not done within [`DRAIN`].
pub fn finish<T: Default>(rx: std::sync::mpsc::Receiver<T>) -> T {
    rx.recv_timeout(DRAIN).unwrap_or_default()
}

/// The conventional exit code of a process ended by `signal`.
pub fn signal_exit_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

/// The signal that ended a child, if one did.
pub fn killed_by(status: &ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    {
        std::os::unix::process::ExitStatusExt::signal(status)
    }
    #[cfg(windows)]
    {
        let _ = status;
        None
    }
}

pub use imp::Signals;

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicI32, Ordering};

    static CHILD: AtomicI32 = AtomicI32::new(0);
    static RECEIVED: AtomicI32 = AtomicI32::new(0);

    extern "C" fn on_signal(sig: libc::c_int) {
        // Only async-signal-safe work here: atomics and kill(2).
        let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        if sig == libc::SIGTERM || sig == libc::SIGHUP {
            let child = CHILD.load(Ordering::SeqCst);
            if child > 0 {
                unsafe { libc::kill(child, sig) };
            }
        }
    }

    const CAUGHT: [libc::c_int; 4] = [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP];

    /// Catches terminating signals while alive (see the module comment); restores the previous
    /// dispositions when dropped. Handlers, unlike ignored signals, are reset in a child at exec, so
    /// terraform starts with default dispositions.
    pub struct Signals {
        previous: Vec<(libc::c_int, libc::sigaction)>,
    }

    impl Signals {
        pub fn catch() -> Signals {
            RECEIVED.store(0, Ordering::SeqCst);
            let mut previous = Vec::with_capacity(CAUGHT.len());
            for sig in CAUGHT {
                // SAFETY: plain sigaction(2) calls with a handler that is async-signal-safe.
                unsafe {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = on_signal as *const () as usize;
                    libc::sigemptyset(&mut action.sa_mask);
                    action.sa_flags = libc::SA_RESTART;
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, &action, &mut old) == 0 {
                        previous.push((sig, old));
                    }
                }
            }
            Signals { previous }
        }

        /// The child that SIGTERM/SIGHUP are forwarded to (0: none).
        pub fn forward_to(&self, pid: u32) {
            CHILD.store(pid as i32, Ordering::SeqCst);
        }

        /// The first signal received since [`Signals::catch`].
        pub fn received(&self) -> Option<i32> {
            Some(RECEIVED.load(Ordering::SeqCst)).filter(|s| *s != 0)
        }
    }

    impl Drop for Signals {
        fn drop(&mut self) {
            CHILD.store(0, Ordering::SeqCst);
            for (sig, old) in &self.previous {
                // SAFETY: restores the disposition saved by `catch`.
                unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
            }
        }
    }
}

#[cfg(windows)]
mod imp {
    /// On Windows Ctrl-C reaches every process on the console; tfshim ignores it and lets terraform
    /// handle it.
    pub struct Signals;

    impl Signals {
        pub fn catch() -> Signals {
            super::windows::ignore_ctrl_c();
            Signals
        }
        pub fn forward_to(&self, _pid: u32) {}
        pub fn received(&self) -> Option<i32> {
            None
        }
    }
}

#[cfg(windows)]
mod windows {
    /// Ctrl-C goes to every process on the console; terraform handles it, tfshim must outlive it.
    pub fn ignore_ctrl_c() {
        unsafe {
            windows_sys::Win32::System::Console::SetConsoleCtrlHandler(None, 1);
        }
    }
}
