//! What the Linux builds link, chosen for the cost of a start and of the STS check (issue #16).
//!
//! - **Default build (glibc): tfshim's own `pow`, so that the binary needs no `libm.so.6`.** Every
//!   shared library the dynamic loader maps costs each start of tfshim — each pass-through of a
//!   terraform command — its open, mappings and symbol lookups, ≈ 85 µs for libm on the project's VM.
//!   The only libm function the program uses is `pow`, reached through `f64::powf` in the AWS SDK's
//!   client-side rate limiter (a cube root; not on tfshim's paths, which use the standard retry mode,
//!   but linked). Defining `pow` here satisfies that reference at link time, so the linker, which
//!   rustc runs with `--as-needed`, records no dependency on libm. The body is the `libm` crate's, a
//!   port of musl's. (`build.rs` does the same for `libgcc_s.so.1`.)
//! - **Static musl build (the Linux releases): mimalloc as the allocator, started on first use.**
//!   musl's own allocator returns memory to the kernel eagerly: one STS check made ≈ 490 `mmap` and
//!   ≈ 440 `munmap` calls with it and took ≈ 3.5 ms more system time than the glibc build (`strace
//!   -c`). mimalloc starts itself in a C constructor (random seed, `sysinfo`, reading
//!   `/proc/sys/vm/overcommit_memory`, ten more pages touched): ≈ 65 µs on every start, a third of the
//!   static pass-through's whole cost, for a path (`proxy::fast`) that never allocates.
//!   `shell/build-release.sh` turns it on (`--features mimalloc`; other musl builds keep musl's
//!   allocator and need no `-lgcc`), compiles mimalloc without its constructor
//!   (`MI_PRIM_HAS_PROCESS_ATTACH`, the switch its own Windows builds use) and `LazyMimalloc` runs the
//!   constructor's body, `_mi_auto_process_init`, before the first allocation instead. Built with the
//!   feature but without that switch, the constructor runs as usual and the lazy start sees mimalloc
//!   initialised and does nothing.
//!   Without the constructor its counterpart at exit does not run either: it only frees and, with
//!   `MIMALLOC_SHOW_STATS`, prints statistics, neither of which a process about to end needs.

/// C's `pow(x, y)`, the symbol `f64::powf` calls.
#[cfg(target_env = "gnu")]
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[cfg(all(target_env = "musl", feature = "mimalloc"))]
mod lazy {
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::Once;

    use mimalloc::MiMalloc;

    #[global_allocator]
    static ALLOCATOR: LazyMimalloc = LazyMimalloc;

    extern "C" {
        /// mimalloc's process start (the body of its constructor): idempotent parts only, but it is
        /// still called at most once, and not at all when the constructor has already run.
        fn _mi_auto_process_init();
        /// Set by mimalloc once the process is initialised (written by C: `mut`).
        static mut _mi_process_is_initialized: bool;
    }

    /// mimalloc, started before the first allocation rather than when the process starts.
    pub struct LazyMimalloc;

    static START: Once = Once::new();

    #[inline]
    fn start() {
        // `Once` neither allocates nor, once done, costs more than one atomic load.
        START.call_once(|| {
            // SAFETY: both are defined by mimalloc's C code (libmimalloc-sys); the flag is only read,
            // and `call_once` runs this on one thread, before any allocation, with others waiting.
            unsafe {
                if !std::ptr::addr_of!(_mi_process_is_initialized).read() {
                    _mi_auto_process_init();
                }
            }
        });
    }

    // SAFETY: every call is forwarded to mimalloc's `GlobalAlloc` after it has been started; a pointer
    // passed to `dealloc`/`realloc` came from `alloc`, so mimalloc was started for it.
    unsafe impl GlobalAlloc for LazyMimalloc {
        #[inline]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            start();
            // SAFETY: the caller's contract, passed on.
            unsafe { MiMalloc.alloc(layout) }
        }
        #[inline]
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            start();
            // SAFETY: the caller's contract, passed on.
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
        #[inline]
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract, passed on.
            unsafe { MiMalloc.dealloc(ptr, layout) }
        }
        #[inline]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract, passed on.
            unsafe { MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn powf_is_exact_where_c_is() {
        // `f64::powf` is the path the SDK takes; `black_box` keeps the call from being folded.
        let p = |x: f64, y: f64| std::hint::black_box(x).powf(std::hint::black_box(y));
        assert_eq!(p(2.0, 10.0), 1024.0);
        assert_eq!(p(10.0, -2.0), 0.01);
        assert_eq!(p(0.0, 0.0), 1.0);
        assert!(p(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(p(f64::INFINITY, -1.0), 0.0);
        assert!((p(27.0, 1.0 / 3.0) - 3.0).abs() < 1e-15);
        #[cfg(target_env = "gnu")]
        assert_eq!(super::pow(1.5, 2.0), 2.25);
    }
}
