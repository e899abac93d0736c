//! Running terraform: the user's final command, and the child commands of a repair.
//!
//! The final command replaces tfshim (`exec`) on Unix, so terraform owns the terminal, the signals
//! and the exit code with nothing in between. Windows has no `exec`: tfshim ignores Ctrl-C itself
//! (the console delivers it to terraform too), waits, and exits with terraform's code, as rustup does.
//!
//! A repair's `init` must be a child, because tfshim checks the result afterwards. While it runs,
//! SIGINT/SIGQUIT from the terminal reach terraform directly (same process group), so tfshim only
//! notes them; SIGTERM/SIGHUP sent to tfshim alone are forwarded to the child once. Either way tfshim
//! then finishes its check, so the saved backend is never left half-repaired.

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

/// The outcome of a child run: its status, the first terminating signal tfshim received meanwhile,
/// and, when asked for, what the child printed.
#[derive(Debug)]
pub struct ChildRun {
    pub status: ExitStatus,
    pub interrupted_by: Option<i32>,
    pub output: Vec<u8>,
}

/// At most this much of a captured child's output is kept (the start of it: that is where
/// terraform's errors are).
const CAPTURE_LIMIT: usize = 1 << 20;

/// Runs `cmd` as a child, as described in the module comment. With `capture`, its stdout and stderr
/// go, interleaved as written, into [`ChildRun::output`] instead of the terminal.
pub fn run_child(mut cmd: Command, capture: bool) -> io::Result<ChildRun> {
    let _ = io::stderr().flush();
    let reader = if capture {
        let (reader, writer) = io::pipe()?;
        cmd.stdout(writer.try_clone()?).stderr(writer);
        Some(std::thread::spawn(move || {
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
    #[cfg(unix)]
    let run = unix::run(cmd);
    #[cfg(windows)]
    let run = {
        windows::ignore_ctrl_c();
        cmd.status().map(|status| ChildRun {
            status,
            interrupted_by: None,
            output: Vec::new(),
        })
    };
    // `cmd` (holding the pipe's write ends) is gone now, so the reader sees the end of the output.
    let mut run = run?;
    if let Some(reader) = reader {
        run.output = reader.join().unwrap_or_default();
    }
    Ok(run)
}

/// The conventional exit code of a process ended by `signal`.
pub fn signal_exit_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

#[cfg(unix)]
mod unix {
    use super::ChildRun;
    use std::io;
    use std::process::Command;
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

    const WATCHED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP];

    pub fn run(mut cmd: Command) -> io::Result<ChildRun> {
        RECEIVED.store(0, Ordering::SeqCst);
        let mut child = cmd.spawn()?;
        CHILD.store(child.id() as i32, Ordering::SeqCst);
        let mut previous: Vec<libc::sigaction> = Vec::with_capacity(WATCHED.len());
        // Handlers are installed after the spawn so that the child starts with default dispositions
        // (an ignored signal would stay ignored across exec).
        unsafe {
            for sig in WATCHED {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                libc::sigemptyset(&mut action.sa_mask);
                action.sa_flags = libc::SA_RESTART;
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, &action, &mut old);
                previous.push(old);
            }
        }
        let status = child.wait();
        CHILD.store(0, Ordering::SeqCst);
        unsafe {
            for (sig, old) in WATCHED.iter().zip(previous.iter()) {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
        let received = RECEIVED.swap(0, Ordering::SeqCst);
        Ok(ChildRun {
            status: status?,
            interrupted_by: (received != 0).then_some(received),
            output: Vec::new(),
        })
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
