//! What terraform inherits from whoever started tfshim: which signals are ignored, and the signal
//! mask (#20 item 7). Started directly, terraform gets both unchanged through `exec`; a shell that
//! runs it in the background ignores SIGINT, `nohup` ignores SIGHUP, a pipeline's writer may ignore
//! SIGPIPE, and a supervisor may block signals. tfshim changes both for itself — it ignores SIGPIPE
//! (a closed pipe is an error to handle), catches SIGINT, SIGQUIT, SIGTERM and SIGHUP around its
//! child runs — and std's `Command` resets SIGPIPE to default and empties the mask in every child.
//! So the original state is captured at start-up, before anything changes it ([`capture`]), and put
//! back in every terraform tfshim starts, spawned or exec'ed, just before the `exec` ([`apply`]).
//!
//! The fast path (`fast.rs`) execs before any of this changes, so it needs nothing.

pub use imp::apply;
#[cfg(unix)]
pub use imp::capture;

#[cfg(unix)]
mod imp {
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    use std::sync::OnceLock;

    /// The highest signal number looked at: Linux has 64 (real-time ones included), the BSDs and
    /// macOS 31 that `sigaction` takes.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const LAST: libc::c_int = 64;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const LAST: libc::c_int = 31;

    #[derive(Clone, Copy)]
    struct Original {
        /// Bit N-1 set: signal N was ignored.
        ignored: u64,
        mask: libc::sigset_t,
    }

    static ORIGINAL: OnceLock<Original> = OnceLock::new();

    /// Notes the dispositions and the mask tfshim was started with. Call it first thing, before
    /// anything changes a disposition; later calls change nothing.
    pub fn capture() {
        let mut ignored = 0u64;
        for sig in 1..=LAST {
            // SAFETY: sigaction(2) that only reads the disposition into a zeroed struct.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN
                {
                    ignored |= 1 << (sig - 1);
                }
            }
        }
        // SAFETY: reads the calling thread's mask (the only thread at start-up) into a zeroed set.
        let mask = unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            if libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) != 0 {
                return;
            }
            mask
        };
        let _ = ORIGINAL.set(Original { ignored, mask });
    }

    /// Makes `cmd`'s process start with the captured dispositions and mask. Without a capture (unit
    /// tests, which start in std's `main`), std's own reset stands.
    pub fn apply(cmd: &mut Command) {
        let Some(original) = ORIGINAL.get().copied() else {
            return;
        };
        // SAFETY: the closure runs in the child between fork and exec (after std's reset of SIGPIPE
        // and the mask) and calls only sigaction(2) and sigprocmask(2), which are async-signal-safe;
        // it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                restore(&original);
                Ok(())
            });
        }
    }

    /// In the child: every originally ignored signal ignored, every other one default (a handler
    /// would be reset by `exec` anyway; SIGPIPE, ignored by tfshim, must not stay so), then the mask.
    fn restore(original: &Original) {
        for sig in 1..=LAST {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let disposition = if original.ignored & (1 << (sig - 1)) != 0 {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            // SAFETY: sigaction(2) with a zeroed action; a number the system reserves (glibc's 32
            // and 33) fails with EINVAL and is left as it is.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = disposition;
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
        // SAFETY: sets the (single-threaded) child's mask to the captured one.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &original.mask, std::ptr::null_mut()) };
    }
}

#[cfg(windows)]
mod imp {
    //! Windows has no signal dispositions to inherit: the console's Ctrl-C state is inherited as is
    //! (see `exec.rs`).
    use std::process::Command;

    pub fn apply(_: &mut Command) {}
}
