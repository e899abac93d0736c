//! Running terraform: the user's final command, and the child commands of a repair.
//!
//! The final command replaces tfshim (`exec`) on Unix, so terraform owns the terminal, the signals
//! and the exit code with nothing in between. Windows has no `exec`: tfshim starts terraform as a
//! child, survives Ctrl-C itself (the console delivers it to terraform too), waits, and exits with
//! all 32 bits of terraform's code, as rustup does.
//!
//! Some runs need terraform as a child, because tfshim checks the result afterwards: a repair's
//! `init`, the reactive fallback's first run, a credential-only `init`. For all of them a [`Signals`]
//! guard catches SIGINT, SIGQUIT, SIGTERM and SIGHUP from before the child starts until the check
//! (and any restore) is done, so the saved backend is never left half-repaired. Each such signal
//! must reach terraform exactly once, as it would without tfshim (#12): terraform counts them, and a
//! second SIGINT or SIGTERM makes it stop at once ("data loss may have occurred"). The child stays in
//! tfshim's process group — so that everything that reaches the group reaches terraform, as it would
//! reach terraform alone: a terminal's Ctrl-C, Ctrl-Z and hang-up, and a CI runner's SIGKILL of the
//! group (a child in a group of its own would outlive that, still running an `init` or holding the
//! state lock, and the next run would race it). Who sent a signal then says whether terraform has it
//! already:
//! - the kernel (SI_KERNEL on Linux, 0 on macOS: the terminal's keys, a hang-up) sends to the
//!   foreground process group, terraform included: tfshim does not forward it;
//! - a process (`kill`, `sigqueue`, `tgkill`: SI_USER, SI_QUEUE, SI_TKILL, in each kernel's numbers,
//!   [`si_code`]) usually aims at one pid — CI runners that cancel by signalling tfshim's pid,
//!   `docker stop` — and tfshim forwards it to the child. The sender's pid plays no part: it reads 0
//!   when the sender is outside tfshim's PID namespace (#20 item 3).
//!
//! A signal tfshim was started with ignored is not caught (terraform alone would ignore it too), and
//! every child gets the dispositions and mask tfshim was started with (`inherit.rs`).
//!
//! What is left: a process that signals tfshim's whole group (`kill -INT -PGID`, `kill %1`) reaches
//! terraform directly and through tfshim, twice. Nothing in the signal tells a group from a pid, and
//! detecting whether the child already got it is a race; the alternative (the child in a group of its
//! own) trades that for a terraform that outlives a group SIGKILL, which is worse.
//!
//! A signal that arrives between spawning the child and registering it is kept and forwarded at
//! registration (no window). When the child has ended by a signal, tfshim ends by the same one
//! (default disposition, re-raised: [`die_by`]), so a parent shell sees what it would see with
//! terraform alone; a repair interrupted before the user's command ran ends tfshim by the signal it
//! received.
//!
//! On Windows the console delivers Ctrl-C and Ctrl-Break to terraform itself; tfshim only notes them
//! (as SIGINT and SIGBREAK) and finishes its check.

use std::io::{self, Write};
use std::process::{Child, Command, ExitCode, ExitStatus};

/// Replaces the current process with `cmd` (Unix) or runs it to completion and exits with its code
/// (Windows). Returns only on failure to start it.
pub fn exec(mut cmd: Command) -> io::Result<ExitCode> {
    let _ = io::stderr().flush();
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        crate::proxy::inherit::apply(&mut cmd);
        Err(cmd.exec())
    }
    #[cfg(windows)]
    {
        imp::survive_interrupts();
        let status = cmd.status()?;
        // Windows exit codes are 32 bits (terraform's 256 must not read as 0, nor 0xC000013A after
        // Ctrl-C as 58), and `ExitCode` carries only 8 of them on stable Rust
        // (`ExitCodeExt::from_raw` is unstable), so this is the one exit outside `main`.
        // `std::process::exit` hands the i32 to `ExitProcess` bit for bit.
        std::process::exit(status.code().unwrap_or(1))
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
    let mut child = spawn(&mut cmd, signals)?;
    // `cmd` holds the pipe's write ends: without it the reader sees the end of the output.
    drop(cmd);
    let status = child.wait();
    signals.forward_to(0);
    let output = reader.map(finish).unwrap_or_default();
    Ok(ChildRun {
        status: status?,
        output,
    })
}

/// Starts `cmd` as a child that `signals` forwards to (see the module comment).
pub fn spawn(cmd: &mut Command, signals: &Signals) -> io::Result<Child> {
    crate::proxy::inherit::apply(cmd);
    let child = cmd.spawn()?;
    signals.forward_to(child.id());
    Ok(child)
}

/// How a process ended, as its parent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Code(u8),
    Signal(i32),
}

impl Ending {
    pub fn of(status: &ExitStatus) -> Ending {
        match (status.code(), killed_by(status)) {
            (Some(code), _) => Ending::Code(code.clamp(0, 255) as u8),
            (None, Some(signal)) => Ending::Signal(signal),
            (None, None) => Ending::Code(1),
        }
    }
}

/// Ends tfshim by `signal` with its default disposition, as terraform ended (Unix). Returns only if
/// that did not end the process (a signal whose default is not to terminate; Windows): then with
/// the conventional code 128+N.
pub fn die_by(signal: i32) -> ExitCode {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    #[cfg(unix)]
    // SAFETY: resets one disposition, unblocks that signal and raises it; nothing is borrowed.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    ExitCode::from(signal_exit_code(signal))
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

/// The `si_code` values that say a process sent the signal — kill(2) and raise(3), sigqueue(3),
/// tkill(2)/tgkill(2) — as each kernel numbers them. Linux: `SI_USER` 0, `SI_QUEUE` -1, `SI_TKILL`
/// -6 (its terminal's signals say `SI_KERNEL`, 0x80). macOS and FreeBSD: `SI_USER` 0x10001,
/// `SI_QUEUE` 0x10002, FreeBSD's `SI_LWP` (thr_kill) 0x10007; their 0 is the kernel's own (a
/// terminal's signal). `libc` has only Linux's, so all are spelled out here, and checked against
/// `libc` where it has them.
#[cfg(any(unix, test))]
mod si_code {
    use std::ffi::c_int;

    #[cfg(any(test, target_os = "linux", target_os = "android"))]
    pub const LINUX: &[c_int] = &[0, -1, -6];
    #[cfg(any(test, target_vendor = "apple"))]
    pub const APPLE: &[c_int] = &[0x10001, 0x10002];
    #[cfg(any(test, target_os = "freebsd"))]
    pub const FREEBSD: &[c_int] = &[0x10001, 0x10002, 0x10007];

    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub const HERE: &[c_int] = LINUX;
    #[cfg(target_vendor = "apple")]
    pub const HERE: &[c_int] = APPLE;
    #[cfg(target_os = "freebsd")]
    pub const HERE: &[c_int] = FREEBSD;
    /// Elsewhere (NetBSD, OpenBSD…) `SI_USER` is 0, as POSIX has it on most systems.
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        target_os = "freebsd",
        windows
    )))]
    pub const HERE: &[c_int] = &[0];
}

/// Whether a signal whose siginfo says `code` was sent by a process (so it reached tfshim alone and
/// must be forwarded), on a kernel that numbers them as `encoding` ([`si_code`]). The sender's pid
/// plays no part: it reads 0 from another PID namespace (#20 item 3).
#[cfg(any(unix, test))]
fn sent_by_a_process(code: std::ffi::c_int, encoding: &[std::ffi::c_int]) -> bool {
    encoding.contains(&code)
}

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The child that signals are forwarded to (0: none yet, or no more).
    static TARGET: AtomicI32 = AtomicI32::new(0);
    /// A signal to forward that arrived while there was no target yet.
    static PENDING: AtomicI32 = AtomicI32::new(0);
    static RECEIVED: AtomicI32 = AtomicI32::new(0);

    extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // Only async-signal-safe work here: atomics and kill(2).
        let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
        let code = unsafe { (*info).si_code };
        // A terminal's signals come from the kernel and reached the child, which shares tfshim's
        // group, already. Who sent it is told by si_code alone: si_pid is 0 when the sender is in
        // another PID namespace (`docker stop`, kubelet), and such a signal must be forwarded too.
        if !super::sent_by_a_process(code, super::si_code::HERE) {
            return;
        }
        let target = TARGET.load(Ordering::SeqCst);
        if target != 0 {
            unsafe { libc::kill(target, sig) };
            return;
        }
        // No child registered yet: leave it for `forward_to`, then look again — one of the two
        // sides takes it (both swap PENDING), whichever order they run in.
        PENDING.store(sig, Ordering::SeqCst);
        let target = TARGET.load(Ordering::SeqCst);
        if target != 0 {
            let pending = PENDING.swap(0, Ordering::SeqCst);
            if pending != 0 {
                unsafe { libc::kill(target, pending) };
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
            PENDING.store(0, Ordering::SeqCst);
            let mut previous = Vec::with_capacity(CAUGHT.len());
            for sig in CAUGHT {
                // SAFETY: plain sigaction(2) calls with a handler that is async-signal-safe.
                unsafe {
                    // A signal tfshim was started with ignored stays ignored (#20 item 7): terraform
                    // started directly would ignore it too (`inherit.rs` keeps it so in the child).
                    let mut current: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, std::ptr::null(), &mut current) == 0
                        && current.sa_sigaction == libc::SIG_IGN
                    {
                        continue;
                    }
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = on_signal as *const () as usize;
                    // One handler at a time: the caught signals are blocked while one runs.
                    libc::sigemptyset(&mut action.sa_mask);
                    for other in CAUGHT {
                        libc::sigaddset(&mut action.sa_mask, other);
                    }
                    action.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO;
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, &action, &mut old) == 0 {
                        previous.push((sig, old));
                    }
                }
            }
            Signals { previous }
        }

        /// Registers the child that signals are forwarded to (0: none), and forwards one that
        /// arrived before it could be registered.
        pub fn forward_to(&self, pid: u32) {
            let target = pid as i32;
            TARGET.store(target, Ordering::SeqCst);
            if target != 0 {
                let pending = PENDING.swap(0, Ordering::SeqCst);
                if pending != 0 {
                    // SAFETY: kill(2) on the child just started.
                    unsafe { libc::kill(target, pending) };
                }
            }
        }

        /// The first signal received since [`Signals::catch`].
        pub fn received(&self) -> Option<i32> {
            Some(RECEIVED.load(Ordering::SeqCst)).filter(|s| *s != 0)
        }
    }

    impl Drop for Signals {
        fn drop(&mut self) {
            TARGET.store(0, Ordering::SeqCst);
            PENDING.store(0, Ordering::SeqCst);
            for (sig, old) in &self.previous {
                // SAFETY: restores the disposition saved by `catch`.
                unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
            }
        }
    }
}

#[cfg(windows)]
mod imp {
    //! Ctrl-C and Ctrl-Break reach every process attached to the console, terraform included, so
    //! tfshim only has to outlive them: a handler that returns TRUE. Never
    //! `SetConsoleCtrlHandler(NULL, TRUE)`: that sets an "ignore Ctrl-C" flag that child processes
    //! inherit, and terraform would never see the interrupt (Microsoft's SetConsoleCtrlHandler
    //! documentation: "This attribute of ignoring or processing CTRL+C is inherited by child
    //! processes").
    use std::sync::atomic::{AtomicI32, Ordering};

    use windows_sys::core::BOOL;
    use windows_sys::Win32::System::Console::{
        SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT,
    };

    /// The C runtime's numbers for the two console interrupts (`signal.h`).
    const SIGINT: i32 = 2;
    const SIGBREAK: i32 = 21;

    static RECEIVED: AtomicI32 = AtomicI32::new(0);

    /// Runs on a thread the system starts for each event. Other events (closing the console,
    /// logoff, shutdown) go on to the default handler.
    unsafe extern "system" fn on_event(event: u32) -> BOOL {
        let sig = match event {
            CTRL_C_EVENT => SIGINT,
            CTRL_BREAK_EVENT => SIGBREAK,
            _ => return 0,
        };
        let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        1
    }

    /// Keeps tfshim alive through Ctrl-C and Ctrl-Break from now on.
    pub fn survive_interrupts() {
        // SAFETY: registers a handler that only touches an atomic.
        unsafe { SetConsoleCtrlHandler(Some(on_event), 1) };
    }

    /// Notes Ctrl-C and Ctrl-Break while alive (see the module comment).
    pub struct Signals;

    impl Signals {
        pub fn catch() -> Signals {
            RECEIVED.store(0, Ordering::SeqCst);
            survive_interrupts();
            Signals
        }

        /// Nothing to forward: the console delivers the interrupts to terraform itself.
        pub fn forward_to(&self, _pid: u32) {}

        /// The first interrupt received since [`Signals::catch`], as a C runtime signal number.
        pub fn received(&self) -> Option<i32> {
            Some(RECEIVED.load(Ordering::SeqCst)).filter(|s| *s != 0)
        }
    }

    impl Drop for Signals {
        fn drop(&mut self) {
            // SAFETY: removes the registration made by `catch`.
            unsafe { SetConsoleCtrlHandler(Some(on_event), 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{sent_by_a_process, si_code};

    /// Each kernel's encoding of "a process sent it" (#20 item 3): forwarded whatever the sender's
    /// pid; the kernel's own (a terminal's key, a hang-up) never.
    #[test]
    fn who_sent_a_signal() {
        let linux = si_code::LINUX;
        for process in [0, -1, -6] {
            assert!(sent_by_a_process(process, linux), "{process}");
        }
        // SI_KERNEL (a terminal), a kernel code such as CLD_EXITED or SEGV_MAPERR, SI_TIMER.
        for kernel in [0x80, 1, 2, -2] {
            assert!(!sent_by_a_process(kernel, linux), "{kernel}");
        }
        for encoding in [si_code::APPLE, si_code::FREEBSD] {
            // SI_USER and SI_QUEUE.
            for process in [0x10001, 0x10002] {
                assert!(sent_by_a_process(process, encoding), "{process}");
            }
            // 0 is the kernel's own there (a terminal's signal), as are the small codes.
            for kernel in [0, 1, 0x80, 0x10003] {
                assert!(!sent_by_a_process(kernel, encoding), "{kernel}");
            }
        }
        assert!(sent_by_a_process(0x10007, si_code::FREEBSD));
        assert!(!sent_by_a_process(0x10007, si_code::APPLE));
    }

    /// The spelled-out numbers are `libc`'s where it has them.
    #[cfg(target_os = "linux")]
    #[test]
    fn linux_numbers_are_libcs() {
        assert_eq!(
            si_code::LINUX,
            &[libc::SI_USER, libc::SI_QUEUE, libc::SI_TKILL]
        );
        assert!(!sent_by_a_process(libc::SI_KERNEL, si_code::HERE));
    }
}
