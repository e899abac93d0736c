//! The pass-through fast path (Unix): for a command that cannot load the saved backend (`version`,
//! `fmt`, `validate`, `providers lock`, …) tfshim finds terraform and execs it before Rust's runtime
//! has started, touching nothing but a few variables (`getenv`), one `stat` of itself, one `stat` per
//! PATH candidate, and execve(2): no allocation, no environment map, no other file.
//!
//! Why (issue #16): on a VM every start-up step costs a hypervisor exit or a page fault (README,
//! Performance), and pass-through is most of what a user runs through tfshim. This module owns only
//! the cases it is sure of; anything else — an option before the command, a value it would have to
//! interpret, a relative PATH entry, a failed exec — returns to the ordinary path, which decides the
//! same way with every check and says what went wrong. It must never decide differently from
//! `heal::decide::classify_command` (tested there) and `locate::locate`.

// Unit tests cover the decision; the exec itself runs in the real binary only (tests/e2e).
#![cfg_attr(test, allow(dead_code))]

use std::ffi::{c_char, c_int, CStr};

use crate::proxy::locate::{MAX_RECURSION, RECURSION_VAR};

/// The first words after which the full path must decide: every subcommand that may load the saved
/// backend (`decide::classify_command`), and tfshim's own `shim`. Any other first word passes
/// through whatever follows it.
const NEEDS_THE_FULL_PATH: &[&[u8]] = &[
    b"init",
    b"plan",
    b"refresh",
    b"import",
    b"console",
    b"graph",
    b"output",
    b"taint",
    b"untaint",
    b"force-unlock",
    b"apply",
    b"destroy",
    b"show",
    b"providers",
    b"state",
    b"workspace",
    b"env",
    b"shim",
];

/// The variables the decision reads, as raw bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vars<'a> {
    pub mode: Option<&'a [u8]>,
    pub log: Option<&'a [u8]>,
    pub engine: Option<&'a [u8]>,
    pub terraform: Option<&'a [u8]>,
    pub count: Option<&'a [u8]>,
}

/// Where to look for the real binary.
#[derive(Debug, PartialEq, Eq)]
pub enum Search<'a> {
    /// `TFSHIM_TERRAFORM` names it by absolute path.
    Absolute(&'a [u8]),
    /// Look up this name on PATH.
    OnPath(&'static [u8]),
}

/// What the fast path will do: find terraform there and exec it with this recursion count.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan<'a> {
    pub search: Search<'a>,
    pub count: u32,
}

/// The pure decision: `Some` only when the full path would, for certain, pass these arguments
/// through unchanged to a terraform found by `search`.
pub fn plan<'a>(argv0: &[u8], first_arg: Option<&[u8]>, vars: &Vars<'a>) -> Option<Plan<'a>> {
    let empty = |v: Option<&[u8]>| v.is_none_or(<[u8]>::is_empty);
    if !empty(vars.log) {
        return None;
    }
    let off = match vars.mode.unwrap_or_default() {
        b"" | b"fix" | b"warn" => false,
        b"off" => true,
        _ => return None,
    };
    // The invoked name decides in any case, as in `locate::Engine::choose`.
    let stem = file_stem(argv0)?;
    let name: &'static [u8] = if stem.eq_ignore_ascii_case(b"terraform") {
        b"terraform"
    } else if stem.eq_ignore_ascii_case(b"tofu") {
        b"tofu"
    } else {
        match vars.engine.unwrap_or_default() {
            b"" | b"terraform" => b"terraform",
            b"tofu" => b"tofu",
            _ => return None,
        }
    };
    match first_arg {
        Some(b"shim") => return None,
        Some(arg) if arg.starts_with(b"-") => return None,
        Some(arg) if !off && NEEDS_THE_FULL_PATH.contains(&arg) => return None,
        _ => {}
    }
    let count = match vars.count {
        None => 0,
        Some(v) if !v.is_empty() && v.len() <= 3 && v.iter().all(u8::is_ascii_digit) => {
            v.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
        }
        Some(_) => return None,
    };
    if count >= MAX_RECURSION {
        return None;
    }
    let search = match vars.terraform {
        None | Some(b"") => Search::OnPath(name),
        Some(path) if path.starts_with(b"/") => Search::Absolute(path),
        Some(_) => return None,
    };
    Some(Plan {
        search,
        count: count + 1,
    })
}

/// `Path::file_stem` of argv[0] on bytes, without the path machinery (its code is pages to fault in);
/// `None` — go the full way — where the last component is not a plain name (`/`, `.`, `..`, a trailing
/// slash), which `Path` normalises.
fn file_stem(argv0: &[u8]) -> Option<&[u8]> {
    let name = &argv0[argv0.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1)..];
    if name.is_empty() || name == b"." || name == b".." {
        return None;
    }
    Some(match name.iter().rposition(|b| *b == b'.') {
        Some(0) | None => name,
        Some(i) => &name[..i],
    })
}

/// Most environment entries the fast path passes on; more go the full way.
const MAX_ENV: usize = 1024;
/// The longest candidate path the fast path builds (PATH entry + `/` + name, NUL-terminated); a longer
/// one goes the full way. Small, because every page of stack touched is a page fault.
const MAX_PATH: usize = 1024;

/// Execs terraform when the fast path applies; returns when it does not or when execve(2) failed
/// (the full path then tries again and reports).
///
/// # Safety
/// `argc`/`argv` must be what the C runtime passed to `main`, and no other thread may be running.
pub unsafe fn try_exec(argc: c_int, argv: *const *const c_char) {
    let argc = usize::try_from(argc).unwrap_or(0);
    if argc == 0 {
        return;
    }
    // SAFETY: the C runtime's argv holds argc valid C strings.
    let arg = |i: usize| unsafe { CStr::from_ptr(*argv.add(i)) }.to_bytes();
    let var = |name: &CStr| {
        // SAFETY: getenv with a C string literal; single-threaded (no one is changing the environment).
        let v = unsafe { libc::getenv(name.as_ptr()) };
        // SAFETY: a non-null getenv result is a valid C string.
        (!v.is_null()).then(|| unsafe { CStr::from_ptr(v) }.to_bytes())
    };
    let vars = Vars {
        mode: var(c"TFSHIM_MODE"),
        log: var(c"TFSHIM_LOG"),
        engine: var(c"TFSHIM_ENGINE"),
        terraform: var(c"TFSHIM_TERRAFORM"),
        count: var(c"TFSHIM_RECURSION_COUNT"),
    };
    let Some(plan) = plan(arg(0), (argc > 1).then(|| arg(1)), &vars) else {
        return;
    };
    let mut path = [0u8; MAX_PATH];
    let Some(me) = stat(c"/proc/self/exe") else {
        return;
    };
    // The program's path is left in `path` by the search that finds it.
    let found = match plan.search {
        Search::Absolute(p) => put(&mut path, &[p]).is_some_and(|c| is_other_program(c, me)),
        Search::OnPath(name) => {
            let Some(dirs) = var(c"PATH") else { return };
            let mut found = false;
            for dir in dirs.split(|b| *b == b':') {
                // An empty or relative entry means the working directory to `which`: left to it.
                if !dir.starts_with(b"/") {
                    return;
                }
                let end = if dir.ends_with(b"/") { &[][..] } else { b"/" };
                let Some(candidate) = put(&mut path, &[dir, end, name]) else {
                    return;
                };
                if is_other_program(candidate, me) {
                    found = true;
                    break;
                }
            }
            found
        }
    };
    let Ok(program) = CStr::from_bytes_until_nul(&path) else {
        return;
    };
    if !found {
        return;
    }

    let mut count_entry = [0u8; 64];
    let Some(count_entry) = put(
        &mut count_entry,
        &[
            RECURSION_VAR.as_bytes(),
            b"=",
            decimal(plan.count, &mut [0u8; 10]),
        ],
    ) else {
        return;
    };
    // The environment, minus any old count, plus the new one. Left uninitialised but for the slots
    // used: zeroing it would touch (fault in) every page of it.
    let mut envp = std::mem::MaybeUninit::<[*const c_char; MAX_ENV]>::uninit();
    let slots = envp.as_mut_ptr().cast::<*const c_char>();
    let mut n = 0;
    // SAFETY: `environ` is the C runtime's NULL-terminated array of C strings.
    let mut entry = unsafe { environ };
    loop {
        // SAFETY: walking the NULL-terminated array.
        let e = unsafe { *entry };
        if e.is_null() {
            break;
        }
        // SAFETY: every entry is a valid C string.
        let bytes = unsafe { CStr::from_ptr(e) }.to_bytes();
        let ours = bytes.starts_with(RECURSION_VAR.as_bytes())
            && bytes.get(RECURSION_VAR.len()) == Some(&b'=');
        if !ours {
            if n + 2 >= MAX_ENV {
                return;
            }
            // SAFETY: n + 2 < MAX_ENV.
            unsafe { slots.add(n).write(e) };
            n += 1;
        }
        // SAFETY: not past the terminating NULL.
        entry = unsafe { entry.add(1) };
    }
    // SAFETY: n + 2 <= MAX_ENV; slots 0..n are written above.
    unsafe {
        slots.add(n).write(count_entry.as_ptr());
        slots.add(n + 1).write(std::ptr::null());
    }
    // argv is the C runtime's own array (writable, like any C program's): terraform gets its path as
    // argv[0], as `Command` gives it, and the rest unchanged; argv[0] is put back if execve fails.
    let argv = argv.cast_mut();
    // SAFETY: argc >= 1, so argv[0] exists; the arrays are NULL-terminated and hold valid C strings
    // that outlive the call; execve returns only on failure.
    unsafe {
        let own = *argv;
        *argv = program.as_ptr();
        libc::execve(program.as_ptr(), argv, slots);
        *argv = own;
    }
}

extern "C" {
    static environ: *const *const c_char;
}

/// (device, inode) of the file `path` resolves to, if it is a regular file.
fn stat(path: &CStr) -> Option<(u64, u64)> {
    // SAFETY: stat(2) into a zeroed buffer with a valid C string.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::stat(path.as_ptr(), &mut st) } == 0;
    (ok && st.st_mode & libc::S_IFMT == libc::S_IFREG)
        .then_some((st.st_dev as u64, st.st_ino as u64))
}

/// An executable regular file that is not tfshim itself (`which`'s test, plus the self-check).
fn is_other_program(path: &CStr, me: (u64, u64)) -> bool {
    // SAFETY: access(2) with a valid C string.
    stat(path).is_some_and(|id| id != me) && unsafe { libc::access(path.as_ptr(), libc::X_OK) } == 0
}

/// Joins `parts` into `buf` as a C string; `None` if it does not fit or holds a NUL.
fn put<'b>(buf: &'b mut [u8], parts: &[&[u8]]) -> Option<&'b CStr> {
    let mut len = 0;
    for part in parts {
        buf.get_mut(len..len + part.len())?.copy_from_slice(part);
        len += part.len();
    }
    *buf.get_mut(len)? = 0;
    CStr::from_bytes_with_nul(&buf[..=len]).ok()
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// What Rust's runtime start-up does that the rest of tfshim relies on, for the full path after
/// `no_main`: a closed standard descriptor is opened on /dev/null (so no file tfshim opens can
/// become its stderr), and SIGPIPE is ignored (a closed pipe is an error to handle, not death).
pub fn std_start() {
    // Before SIGPIPE changes below: terraform must get what tfshim was given.
    crate::proxy::inherit::capture();
    for fd in 0..3 {
        // SAFETY: fcntl/open on descriptors 0–2, as std's own start-up does.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
                && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) == -1
            {
                libc::abort();
            }
        }
    }
    // SAFETY: setting a signal's disposition to ignore.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars::default()
    }

    #[test]
    fn plain_pass_through() {
        let p = plan(b"/usr/bin/tfshim", Some(b"version"), &vars()).unwrap();
        assert_eq!(p.search, Search::OnPath(b"terraform"));
        assert_eq!(p.count, 1);
        let p = plan(b"/x/tofu", None, &vars()).unwrap();
        assert_eq!(p.search, Search::OnPath(b"tofu"));
        // The invoked name wins over TFSHIM_ENGINE whatever its case, as on the full path.
        let tofu = Vars {
            engine: Some(b"tofu"),
            ..vars()
        };
        let p = plan(b"/x/Terraform", None, &tofu).unwrap();
        assert_eq!(p.search, Search::OnPath(b"terraform"));
        assert_eq!(
            crate::proxy::locate::Engine::choose(
                Some("Terraform"),
                crate::proxy::locate::Engine::Tofu
            ),
            crate::proxy::locate::Engine::Terraform
        );
        let v = Vars {
            engine: Some(b"tofu"),
            count: Some(b"3"),
            terraform: Some(b"/opt/tf"),
            mode: Some(b"warn"),
            ..vars()
        };
        let p = plan(b"tfshim", Some(b"fmt"), &v).unwrap();
        assert_eq!(p.search, Search::Absolute(b"/opt/tf"));
        assert_eq!(p.count, 4);
    }

    #[test]
    fn everything_unsure_goes_the_full_way() {
        let none = |argv0: &[u8], first: Option<&[u8]>, v: Vars| {
            assert_eq!(plan(argv0, first, &v), None, "{first:?} {v:?}");
        };
        none(b"tfshim", Some(b"plan"), vars());
        none(b"tfshim", Some(b"shim"), vars());
        none(b"tfshim", Some(b"-chdir=x"), vars());
        none(b"tfshim", Some(b"-version"), vars());
        let with = |f: fn(&mut Vars<'static>)| {
            let mut v = vars();
            f(&mut v);
            v
        };
        none(
            b"tfshim",
            Some(b"version"),
            with(|v| v.log = Some(b"debug")),
        );
        none(b"tfshim", Some(b"version"), with(|v| v.mode = Some(b"Fix")));
        none(
            b"tfshim",
            Some(b"version"),
            with(|v| v.engine = Some(b"pulumi")),
        );
        none(b"tfshim", Some(b"version"), with(|v| v.count = Some(b"8")));
        none(b"tfshim", Some(b"version"), with(|v| v.count = Some(b" 1")));
        none(
            b"tfshim",
            Some(b"version"),
            with(|v| v.terraform = Some(b"tf")),
        );
        // Off passes everything through, but tfshim's own commands still go the full way.
        let off = with(|v| v.mode = Some(b"off"));
        assert!(plan(b"tfshim", Some(b"plan"), &off).is_some());
        none(b"tfshim", Some(b"shim"), off);
    }

    /// Where the byte version decides, it agrees with `Path::file_stem`.
    #[test]
    fn file_stem_agrees_with_path() {
        use std::os::unix::ffi::OsStrExt;
        for argv0 in [
            "terraform",
            "/usr/bin/terraform",
            "./terraform",
            "terraform.exe",
            "/x/terraform.real",
            "tofu",
            "/a.b/tofu",
            ".terraform",
            "/x/.tofu",
            "terraform.",
            "a/b/c.d.e",
            "tfshim",
            "",
            "/",
            "x/",
            "x/.",
            "x/..",
            "..",
            "x//terraform",
            "terraform.tar.gz",
        ] {
            let ours = file_stem(argv0.as_bytes());
            let std = std::path::Path::new(argv0).file_stem();
            if let Some(stem) = ours {
                assert_eq!(Some(stem), std.map(|s| s.as_bytes()), "{argv0:?}");
            } else {
                assert!(argv0.is_empty() || argv0.ends_with(['/', '.']), "{argv0:?}");
            }
        }
    }

    #[test]
    fn helpers() {
        let mut buf = [0u8; 8];
        assert_eq!(put(&mut buf, &[b"/a", b"/", b"b"]).unwrap(), c"/a/b");
        assert!(put(&mut buf, &[b"/toolong/", b"x"]).is_none());
        assert!(put(&mut buf, &[b"a\0b"]).is_none());
        assert_eq!(decimal(0, &mut [0; 10]), b"0");
        assert_eq!(decimal(4_000_000_000, &mut [0; 10]), b"4000000000");
    }
}
