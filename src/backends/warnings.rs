//! Security warnings about what the saved backend exposes: static keys kept in plain text (the
//! seed's root cause), secrets of other backends, and a data dir that git tracks or does not ignore
//! (the seed's author saw the saved file "change in git": the keys had been committed).
//!
//! The checks on the saved configuration are pure; the git check runs `git` and is made only when the
//! saved backend holds a secret, so it costs nothing elsewhere.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::backends::saved::SavedBackend;
use crate::backends::secrets;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// A stable identifier (`plaintext-keys`, `secret-in-backend`, `state-tracked-by-git`,
    /// `data-dir-not-ignored`, `stale-plan-key`; doctor also `terraform-not-found` and
    /// `interrupted-repair`).
    pub code: &'static str,
    pub message: String,
}

/// What a proxied run says of a warning: the plaintext-keys warning, said on every plan and apply,
/// is its first sentence and where the rest is (`doctor`: the command that shows it, named as the
/// user runs tfshim); the others are said whole. Pure.
pub fn run_line(w: &Warning, doctor: &str) -> String {
    match w.code {
        "plaintext-keys" => {
            let headline = w.message.split_once(". ").map_or(&*w.message, |(h, _)| h);
            format!("{headline}; see `{doctor}`")
        }
        _ => w.message.clone(),
    }
}

/// Secrets saved in the backend configuration; `key_in_config` names the root's file whose `.tf`
/// backend block writes the S3 keys, when it does (`tf_block.rs`). Pure.
pub fn backend_warnings(b: &SavedBackend, key_in_config: Option<&Path>) -> Vec<Warning> {
    let file = b.path.display();
    let mut out = Vec::new();
    if let Some(creds) = b.s3_static_credentials() {
        // The first sentence is the run's line ([`run_line`]); the rest is doctor's.
        let headline = format!(
            "the S3 key {} and its secret are in plain text in {file}",
            creds.access_key
        );
        let message = match key_in_config {
            Some(tf) => format!(
                "{headline}. They are written in the backend block in {}; prefer the credential \
                 chain (environment, profile, SSO): remove access_key/secret_key from that block, {}",
                tf.display(),
                crate::backends::reinit::after_editing_block(b, tf)
            ),
            None => format!(
                "{headline}. They came from `-backend-config=access_key=…`; prefer the credential \
                 chain (environment, profile, SSO): with it in place, `{} shim forget-keys` in the root removes the \
                 saved keys and keeps every other setting (a bare init -reconfigure would drop the \
                 settings given at init and can switch the root to other state)",
                crate::settings::program()
            ),
        };
        out.push(Warning {
            code: "plaintext-keys",
            message,
        });
    }
    let secret_attrs: Vec<&str> = secrets::other_secret_attrs(&b.kind)
        .filter(|a| b.string(a).is_some())
        .collect();
    let pg_password = b.kind == "pg" && b.string("conn_str").is_some_and(conn_str_has_password);
    if !secret_attrs.is_empty() || pg_password {
        let mut names = secret_attrs.join(", ");
        if pg_password {
            names = "conn_str (with a password)".into();
        }
        out.push(Warning {
            code: "secret-in-backend",
            message: format!(
                "the {} backend's {names} is saved in plain text in {file}; prefer the backend's \
                 environment variables to `-backend-config` for secrets",
                b.kind
            ),
        });
    }
    out
}

/// Whether a PostgreSQL connection string carries a password (`user:pw@` or `password=`).
fn conn_str_has_password(conn: &str) -> bool {
    let lower = conn.to_ascii_lowercase();
    if lower.contains("password=") {
        return true;
    }
    secrets::url_has_password(conn)
}

/// Git's view of the saved file: tracked (committed, secrets included) or not ignored. Runs `git`
/// in `work_dir`; no git, no repository: no warning.
///
/// Read-only on purpose (#12): `git status` refreshes the index, so it takes `.git/index.lock` (a
/// concurrent `git commit` in the same repository then fails) and runs the repository's
/// `core.fsmonitor` hook, i.e. code from the repository, on every terraform command. `ls-files` is
/// plumbing that never writes the index; `core.fsmonitor=false` keeps it from running the hook too
/// (it does otherwise: measured with git 2.47), `--no-optional-locks` and an empty `core.hooksPath`
/// are belts and braces for other git versions.
///
/// Bounded: git gets [`GIT_TIMEOUT`]; a git that hangs (a repository on a stuck network file
/// system, a lock) must not hold up the user's terraform command for the sake of a warning.
pub fn git_warnings(work_dir: &Path, saved_file: &Path) -> Vec<Warning> {
    git_warnings_with(Path::new("git"), GIT_TIMEOUT, work_dir, saved_file)
}

/// How long the git check may take. It takes ≈ 2 ms in a repository on a local disk.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(2);

fn git_warnings_with(
    git: &Path,
    timeout: Duration,
    work_dir: &Path,
    saved_file: &Path,
) -> Vec<Warning> {
    // One process: `ls-files -t --cached --others --exclude-standard -- FILE` tags a tracked file
    // (`H`, or `S`/`M` for skip-worktree/unmerged), an untracked one that is not ignored (`?`), and
    // prints nothing for an ignored one; outside a repository git fails.
    let mut cmd = Command::new(git);
    cmd.arg("--no-optional-locks")
        .args([
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .arg("-C")
        .arg(work_dir)
        .args([
            "ls-files",
            "-t",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
        ])
        .arg(saved_file.strip_prefix(work_dir).unwrap_or(saved_file))
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let Some(stdout) = run_bounded(cmd, timeout) else {
        return Vec::new();
    };
    let file = saved_file.display();
    match git_status_of(&stdout) {
        GitStatus::Tracked => vec![Warning {
            code: "state-tracked-by-git",
            message: format!(
                "{file} is tracked by git, so the secrets in it are in your history: `git rm --cached` \
                 it, add the data dir to .gitignore, and rotate the key"
            ),
        }],
        GitStatus::NotIgnored => vec![Warning {
            code: "data-dir-not-ignored",
            message: format!(
                "{file} holds secrets and is not ignored by git: add the data dir (e.g. `.terraform/`) \
                 to .gitignore"
            ),
        }],
        GitStatus::Ignored => Vec::new(),
    }
}

/// Runs `cmd` and returns its standard output if it succeeds within `timeout`. On timeout the child
/// is killed and left unreaped rather than waited for: a process stuck in uninterruptible I/O dies
/// only when that I/O ends, and waiting would be the hang this avoids.
fn run_bounded(mut cmd: Command, timeout: Duration) -> Option<String> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().ok()?;
    let deadline = Instant::now() + timeout;
    // Polling, because std has no wait with a deadline: every 0.25 ms for the first 50 ms (git
    // normally takes ≈ 2 ms, so it is seen done at most 0.25 ms late), then every 10 ms.
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                let early = started.elapsed() < Duration::from_millis(50);
                std::thread::sleep(Duration::from_micros(if early { 250 } else { 10_000 }));
            }
            Ok(None) => {
                let _ = child.kill();
                crate::log::say(&format!(
                    "git did not answer within {} s; skipped checking whether git tracks the saved \
                     backend file",
                    timeout.as_secs_f32()
                ));
                return None;
            }
            Err(e) => {
                let _ = child.kill();
                crate::log::debug(|| format!("could not wait for git: {e}"));
                return None;
            }
        }
    };
    // One file's listing is far below a pipe's capacity, so git could exit without it being read.
    // Lossy: a path git prints unquoted in another encoding must not lose the warning.
    let mut out = Vec::new();
    child.stdout.take()?.read_to_end(&mut out).ok()?;
    status
        .success()
        .then(|| String::from_utf8_lossy(&out).into_owned())
}

#[derive(Debug, PartialEq, Eq)]
enum GitStatus {
    Tracked,
    NotIgnored,
    Ignored,
}

/// Reads `git ls-files -t --cached --others --exclude-standard -- FILE`. Pure.
fn git_status_of(listing: &str) -> GitStatus {
    match listing.lines().next() {
        // Only `--others` files, i.e. untracked ones that no exclude rule matches, are tagged `?`.
        Some(l) if l.starts_with('?') => GitStatus::NotIgnored,
        Some(_) => GitStatus::Tracked,
        // An ignored untracked file is listed by neither `--cached` nor `--others`.
        None => GitStatus::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(kind: &str, config: &str) -> SavedBackend {
        crate::backends::saved::testing::saved(kind, config, 1)
    }

    /// A stand-in `git`: a shell script with `body`.
    #[cfg(unix)]
    fn fake_git(dir: &Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("git");
        let script = format!("#!/bin/sh\n[ \"$1\" = probe ] && exit 0\n{body}\n");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread forking while the file was open for writing makes exec fail with
        // ETXTBSY for a moment: wait until the script runs.
        for _ in 0..100 {
            match Command::new(&path).arg("probe").status() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break,
            }
        }
        path
    }

    #[cfg(unix)]
    #[test]
    fn a_hung_git_costs_the_timeout_and_no_warning() {
        let dir = tempfile::tempdir().unwrap();
        let git = fake_git(dir.path(), "exec sleep 30");
        let started = Instant::now();
        let saved = dir.path().join(".terraform/terraform.tfstate");
        let got = git_warnings_with(&git, Duration::from_millis(200), dir.path(), &saved);
        assert_eq!(got, []);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_prompt_git_is_read_and_a_failing_one_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join(".terraform/terraform.tfstate");
        let git = fake_git(dir.path(), "echo 'H .terraform/terraform.tfstate'");
        let got = git_warnings_with(&git, GIT_TIMEOUT, dir.path(), &saved);
        assert_eq!(
            got.iter().map(|w| w.code).collect::<Vec<_>>(),
            ["state-tracked-by-git"]
        );
        let git = fake_git(
            dir.path(),
            "echo '? .terraform/terraform.tfstate'; exit 128",
        );
        assert_eq!(git_warnings_with(&git, GIT_TIMEOUT, dir.path(), &saved), []);
    }

    #[test]
    fn git_porcelain() {
        assert_eq!(git_status_of(""), GitStatus::Ignored);
        for tracked in ["H", "S", "M"] {
            assert_eq!(
                git_status_of(&format!("{tracked} .terraform/terraform.tfstate\n")),
                GitStatus::Tracked
            );
        }
        assert_eq!(
            git_status_of("? .terraform/terraform.tfstate\n"),
            GitStatus::NotIgnored
        );
    }

    #[test]
    fn s3_static_keys() {
        let w = backend_warnings(
            &backend(
                "s3",
                r#"{"access_key":"AKIAIOSFODNN7EXAMPLE","secret_key":"wJalrXUtnFEMI"}"#,
            ),
            None,
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].code, "plaintext-keys");
        assert!(w[0].message.contains("AKIA…MPLE"));
        // The advice is the safe command, not a bare reconfigure.
        assert!(w[0].message.contains("`tfshim shim forget-keys`"), "{w:?}");
        assert!(!w[0].message.contains("wJalr") && !w[0].message.contains("IOSFODNN"));
        // A run says the first sentence and where the rest is, in well under 120 characters.
        let line = run_line(&w[0], "terraform shim doctor");
        assert_eq!(
            line,
            "the S3 key AKIA…MPLE and its secret are in plain text in \
             .terraform/terraform.tfstate; see `terraform shim doctor`"
        );
        assert!(line.chars().count() < 120, "{}", line.chars().count());
        assert!(backend_warnings(&backend("s3", r#"{"access_key":null}"#), None).is_empty());
        // Written in the .tf block: said so, with the file, and no -backend-config story.
        let w = backend_warnings(
            &backend(
                "s3",
                r#"{"access_key":"AKIAIOSFODNN7EXAMPLE","secret_key":"x"}"#,
            ),
            Some(Path::new("main.tf")),
        );
        assert!(w[0].message.contains("backend block in main.tf"), "{w:?}");
        assert!(!w[0].message.contains("came from"), "{w:?}");
    }

    #[test]
    fn other_backends() {
        for (kind, config) in [
            ("azurerm", r#"{"sas_token":"sv=x"}"#),
            ("gcs", r#"{"credentials":"{...}"}"#),
            ("http", r#"{"password":"pw"}"#),
            ("consul", r#"{"access_token":"t"}"#),
            ("remote", r#"{"token":"t"}"#),
            ("pg", r#"{"conn_str":"postgres://u:pw@db/x"}"#),
            ("pg", r#"{"conn_str":"host=db password=pw"}"#),
        ] {
            let w = backend_warnings(&backend(kind, config), None);
            assert_eq!(w.len(), 1, "{kind} {config}");
            assert_eq!(w[0].code, "secret-in-backend");
            assert!(!w[0].message.contains("pw") && !w[0].message.contains("sv=x"));
        }
        assert!(
            backend_warnings(&backend("pg", r#"{"conn_str":"postgres://u@db/x"}"#), None)
                .is_empty()
        );
        assert!(backend_warnings(&backend("azurerm", r#"{"access_key":null}"#), None).is_empty());
        assert!(backend_warnings(&backend("local", r#"{"path":"x"}"#), None).is_empty());
    }
}
