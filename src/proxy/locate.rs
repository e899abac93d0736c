//! Finding the real `terraform` (or `tofu`) that tfshim stands in front of.
//!
//! tfshim is often installed *as* `terraform` (a symlink or copy earlier on PATH), so a naive PATH
//! lookup finds tfshim itself. Every candidate is compared with tfshim's own file and skipped when it
//! is the same one (mise's shims do the same): by device and inode on Unix (one `stat` each, which
//! sees through symlinks and hard links alike), by canonical path elsewhere. A counter in the
//! environment turns any loop we cannot see (a wrapper script that calls tfshim again) into a clear
//! error within a few hops, like rustup's `RUST_RECURSION_COUNT`. The pass-through fast path
//! (`fast.rs`) makes the same checks before Rust's runtime starts.

use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

/// Defined with the other settings (`TFSHIM_ENGINE`).
pub use crate::settings::Engine;

/// Set on every terraform tfshim starts; counts how many tfshims are on the current call chain.
pub const RECURSION_VAR: &str = "TFSHIM_RECURSION_COUNT";
/// More nested tfshims than this is a loop: real nesting (terraform running terraform from a
/// `local-exec`) never gets close.
pub const MAX_RECURSION: u32 = 8;

/// How the real binary was found, for `shim which` and debug logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `TFSHIM_TERRAFORM` held this value.
    Variable(OsString),
    /// Found on PATH, after skipping this many entries that were tfshim itself.
    Path { skipped_self: usize },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Variable(v) => write!(f, "from TFSHIM_TERRAFORM={}", v.to_string_lossy()),
            Source::Path { skipped_self: 0 } => write!(f, "first on PATH"),
            Source::Path { skipped_self } => write!(
                f,
                "on PATH, after skipping {skipped_self} entr{} that {} tfshim itself",
                if *skipped_self == 1 { "y" } else { "ies" },
                if *skipped_self == 1 { "is" } else { "are" }
            ),
        }
    }
}

/// The real binary and how it was found.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    pub source: Source,
    pub engine: Engine,
}

/// Errors that carry their own exit code: "not found" is 127, as in a shell.
#[derive(Debug)]
pub struct NotFound(pub String);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// Checks the recursion counter and returns the value to give the child.
pub fn next_recursion_count(current: Option<&OsStr>) -> Result<u32> {
    let count: u32 = current
        .and_then(|v| v.to_str())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if count >= MAX_RECURSION {
        bail!(
            "tfshim has started itself {count} times in a row, so the `terraform` it runs leads back \
             to tfshim (check TFSHIM_TERRAFORM and PATH with `tfshim shim which`); set \
             TFSHIM_TERRAFORM to the real binary, e.g. TFSHIM_TERRAFORM=/usr/local/bin/terraform"
        );
    }
    Ok(count + 1)
}

/// tfshim's own file, for the self-skip. `current_exe` reads `/proc/self/exe` on Linux, which a
/// mount namespace without `/proc` lacks (#20 item 5) — terraform alone runs there, so tfshim must
/// too. Then the path the kernel executed (`AT_EXECFN`: what the shell or PATH lookup handed to
/// execve, needing no `/proc`) stands in. `None` if neither answers: no entry is skipped as tfshim's,
/// and the recursion counter still turns a loop into an error within a few hops.
pub fn own_path() -> Option<PathBuf> {
    if let Ok(me) = env::current_exe() {
        return Some(me);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: getauxval(3) returns 0 or a pointer to the NUL-terminated path on the initial
        // stack, which lives as long as the process.
        let execfn = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const std::ffi::c_char;
        if !execfn.is_null() {
            use std::os::unix::ffi::OsStrExt;
            let bytes = unsafe { std::ffi::CStr::from_ptr(execfn) }.to_bytes();
            return Some(PathBuf::from(OsStr::from_bytes(bytes)));
        }
    }
    None
}

/// Finds the real binary. `override_var` is `TFSHIM_TERRAFORM`; `self_exe` is tfshim's own path
/// ([`own_path`]), if known.
pub fn locate(
    engine: Engine,
    override_var: Option<OsString>,
    self_exe: Option<&Path>,
) -> Result<Located> {
    let me = self_exe.and_then(file_id);
    let name = engine.binary_name();
    if let Some(value) = override_var.filter(|v| !v.is_empty()) {
        let path = if Path::new(&value).is_absolute() {
            PathBuf::from(&value)
        } else {
            which::which(&value).map_err(|_| {
                NotFound(format!(
                    "TFSHIM_TERRAFORM={} is not an absolute path and no such program is on PATH; \
                     set it to the real {name} binary",
                    value.to_string_lossy()
                ))
            })?
        };
        // What the path is, said plainly (#22): a directory or a file that cannot be run is not
        // "does not exist", and a run would fail on it (126, as a shell says for a file it cannot
        // execute), so `shim which` fails on it too.
        match std::fs::metadata(&path) {
            Err(_) => {
                return Err(NotFound(format!(
                    "TFSHIM_TERRAFORM={} does not exist; set it to the real {name} binary",
                    value.to_string_lossy()
                ))
                .into())
            }
            Ok(m) if m.is_dir() => {
                return Err(NotRunnable(format!(
                    "TFSHIM_TERRAFORM={} is a directory; set it to the real {name} binary (e.g. \
                     {})",
                    value.to_string_lossy(),
                    Path::new(&value).join(name).display()
                ))
                .into())
            }
            Ok(m) if !m.is_file() => {
                return Err(NotRunnable(format!(
                    "TFSHIM_TERRAFORM={} is not a regular file; set it to the real {name} binary",
                    value.to_string_lossy()
                ))
                .into())
            }
            Ok(m) if !is_executable(&m) => {
                return Err(NotRunnable(format!(
                    "TFSHIM_TERRAFORM={} is not executable (chmod +x it, or set TFSHIM_TERRAFORM \
                     to the real {name} binary)",
                    value.to_string_lossy()
                ))
                .into())
            }
            Ok(_) => {}
        }
        if me.is_some() && file_id(&path) == me {
            bail!(
                "TFSHIM_TERRAFORM={} is tfshim itself; set it to the real {name} binary",
                value.to_string_lossy()
            );
        }
        return Ok(Located {
            path,
            source: Source::Variable(value),
            engine,
        });
    }
    let mut skipped_self = 0;
    // `which_all` yields every executable match in PATH order.
    let candidates = which::which_all(name).into_iter().flatten();
    for candidate in candidates {
        if me.is_some() && file_id(&candidate) == me {
            skipped_self += 1;
            continue;
        }
        return Ok(Located {
            path: candidate,
            source: Source::Path { skipped_self },
            engine,
        });
    }
    let path_var = env::var_os("PATH").unwrap_or_default();
    let dirs = env::split_paths(&path_var).count();
    let why = if skipped_self > 0 {
        format!("searched {dirs} PATH entries; the only {name} found is tfshim itself")
    } else {
        format!("searched {dirs} PATH entries")
    };
    Err(NotFound(format!(
        "no {name} found on PATH ({why}); install {name} or set TFSHIM_TERRAFORM to its path"
    ))
    .into())
}

/// What makes two paths the same file (see the module comment).
#[cfg(unix)]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok()
}

/// The file stem tfshim was invoked under (`terraform` for `/x/terraform.exe`).
pub fn invoked_as(argv0: Option<&OsStr>) -> Option<String> {
    let stem = Path::new(argv0?).file_stem()?.to_str()?;
    Some(stem.to_owned())
}

/// For errors: which error was "not found" (exit 127) rather than another failure (exit 1).
pub fn is_not_found(err: &anyhow::Error) -> bool {
    err.downcast_ref::<NotFound>().is_some()
}

/// A binary that is there but cannot be run (a directory, a file without the execute bit): exit
/// 126, the shell's code for it.
#[derive(Debug)]
pub struct NotRunnable(pub String);

impl fmt::Display for NotRunnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotRunnable {}

/// The exit code of a failure of tfshim's own: 127 not found, 126 not runnable (as a shell), else 1.
pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    if is_not_found(err) {
        127
    } else if err.downcast_ref::<NotRunnable>().is_some() {
        126
    } else {
        1
    }
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

/// Windows runs any file it can read as a program by its extension; `CreateProcess` says the rest.
#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    true
}

/// Whether `path` is a copy of tfshim (`self_exe`) under another name: the same bytes. Only `shim
/// which` asks (it reads both files): a run reaches the same verdict through the recursion
/// counter, a few hops later.
pub fn is_copy_of_self(path: &Path, self_exe: &Path) -> bool {
    let same_len = match (std::fs::metadata(path), std::fs::metadata(self_exe)) {
        (Ok(a), Ok(b)) => a.len() == b.len(),
        _ => false,
    };
    same_len
        && matches!(
            (std::fs::read(path), std::fs::read(self_exe)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// The first line of `terraform version`.
pub fn version_of(path: &Path) -> Option<String> {
    let mut cmd = Command::new(path);
    crate::proxy::inherit::apply(&mut cmd);
    let out = cmd
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .env("TFSHIM_MODE", "off")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    first_version_line(&String::from_utf8_lossy(&out.stdout))
}

/// The first line of `terraform version`'s output, without the `o:` some third-party builds put
/// before each line of terraform's own (CloudRail's 0.12–0.15: `o:Terraform v0.12.29`, #21).
fn first_version_line(stdout: &str) -> Option<String> {
    let line = stdout.lines().next()?;
    Some(line.strip_prefix("o:").unwrap_or(line).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_without_cloudrail_prefix() {
        assert_eq!(
            first_version_line("o:Terraform v0.12.29\no:\n").as_deref(),
            Some("Terraform v0.12.29")
        );
        assert_eq!(
            first_version_line("Terraform v1.11.4\non linux_amd64\n").as_deref(),
            Some("Terraform v1.11.4")
        );
        assert_eq!(first_version_line(""), None);
    }

    #[test]
    fn engine_choice() {
        assert_eq!(
            Engine::choose(Some("tofu"), Engine::Terraform),
            Engine::Tofu
        );
        assert_eq!(
            Engine::choose(Some("terraform"), Engine::Tofu),
            Engine::Terraform
        );
        assert_eq!(Engine::choose(Some("tfshim"), Engine::Tofu), Engine::Tofu);
        assert_eq!(
            Engine::choose(Some("tfshim"), Engine::Terraform),
            Engine::Terraform
        );
        assert_eq!(
            Engine::choose(
                invoked_as(Some(OsStr::new("C:/bin/Tofu.exe"))).as_deref(),
                Engine::Terraform
            ),
            Engine::Tofu
        );
        assert_eq!(
            Engine::choose(Some("TERRAFORM"), Engine::Tofu),
            Engine::Terraform
        );
    }

    #[test]
    fn recursion_counter() {
        assert_eq!(next_recursion_count(None).unwrap(), 1);
        assert_eq!(next_recursion_count(Some(OsStr::new("3"))).unwrap(), 4);
        assert_eq!(next_recursion_count(Some(OsStr::new("junk"))).unwrap(), 1);
        let err = next_recursion_count(Some(OsStr::new("8"))).unwrap_err();
        assert!(err.to_string().contains("TFSHIM_TERRAFORM"));
    }

    #[test]
    fn invoked_names() {
        assert_eq!(
            invoked_as(Some(OsStr::new("/usr/bin/terraform"))).as_deref(),
            Some("terraform")
        );
        assert_eq!(
            invoked_as(Some(OsStr::new("C:/bin/terraform.exe"))).as_deref(),
            Some("terraform")
        );
        assert_eq!(
            invoked_as(Some(OsStr::new("tfshim"))).as_deref(),
            Some("tfshim")
        );
        #[cfg(windows)]
        assert_eq!(
            invoked_as(Some(OsStr::new(r"C:\Program Files\tfshim\terraform.exe"))).as_deref(),
            Some("terraform")
        );
    }
}
