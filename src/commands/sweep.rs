//! `tfshim shim sweep [DIR] [--fix] [--json] [--jobs N]`: the proxy's check and repair, for every
//! Terraform root under a directory at once (issue #7).
//!
//! A rotation usually kills one key that dozens or hundreds of roots saved. Running `plan` in each
//! (or `shim doctor` in each) would ask STS about the same key again and again, so the sweep reads
//! every saved backend first (no network), groups the roots by what a check depends on — the saved
//! credentials and where terraform would send the STS call ([`Target`]) — and asks STS once per
//! group, a few groups at a time. The fallback credentials are checked once per distinct
//! (target, profile settings) among the rejected groups. The cost grows with the distinct keys, not
//! with the roots.
//!
//! Everything after the checks is the proxy's own code: [`decide::next`] chooses each root's action
//! from the same facts, [`report`] renders verdicts the way `shim doctor` does, and `--fix` repairs
//! with [`KeyRemoval`] (same lock, same preserved settings, same invariants, same rollback), one root
//! at a time: each repair is a `terraform init`, and the lock already serialises a root with any
//! proxied run in it.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::aws::chain::ProfileSettings;
use crate::aws::sts::{Ambient, Session, Target};
use crate::aws::verdict::Verdict;
use crate::backends::saved::{StaticCredentials, SAVED_FILE};
use crate::heal::decide::Saved;
use crate::heal::facts::Findings;
use crate::heal::outcome;
use crate::heal::repair::{KeyRemoval, Removal};
use crate::log;
use crate::proxy::exec::signal_exit_code;
use crate::proxy::locate::{self, Located};
use crate::report::sweep::{RepairResult, RootText, Summary, Tally};
use crate::report::{self, Action, Shown};

/// The data dir name a sweep looks for. `TF_DATA_DIR` is per invocation, not per tree, so it is not
/// honoured here: a root is a directory holding `.terraform/terraform.tfstate`.
const DATA_DIR: &str = ".terraform";
/// Directories never descended into: version control internals, JavaScript dependencies (huge, and
/// never a root), and data dirs themselves (their `modules/` holds downloaded copies of modules —
/// possibly with their authors' `.terraform` — and `providers/` holds large binaries).
const SKIPPED_DIRS: &[&str] = &[".git", "node_modules", DATA_DIR];

#[cfg(test)]
use crate::report::exit::{CANNOT_REPAIR, REPAIR_DUE, REPAIR_FAILED};

/// Default of `--jobs`: STS checks in flight at once. Small, to stay far below STS's request rate
/// limits and not to look like a burst to whoever watches the account.
pub const DEFAULT_JOBS: usize = 4;

pub struct Options {
    pub dir: PathBuf,
    pub fix: bool,
    pub json: bool,
    pub jobs: usize,
}

/// What became of one stale root under `--fix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Repaired(String),
    Failed(String),
    Skipped(String),
}

impl Outcome {
    fn result(&self) -> RepairResult {
        match self {
            Outcome::Repaired(_) => RepairResult::Repaired,
            Outcome::Failed(_) => RepairResult::Failed,
            Outcome::Skipped(_) => RepairResult::Skipped,
        }
    }
    fn reason(&self) -> &str {
        match self {
            Outcome::Repaired(r) | Outcome::Failed(r) | Outcome::Skipped(r) => r,
        }
    }
}

/// One root and everything learnt about it.
pub(crate) struct Root {
    pub(crate) path: PathBuf,
    pub(crate) findings: Findings,
    /// Index into the saved-key groups, when its key is checked.
    pub(crate) group: Option<usize>,
    pub(crate) action: Action,
    pub(crate) action_reason: String,
    pub(crate) outcome: Option<Outcome>,
}

pub fn run(opts: Options, located: Result<Located>) -> Result<ExitCode> {
    // Fail before any request when a repair is asked for and no terraform can do it (exit 127).
    let terraform = if opts.fix { Some(located?) } else { None };
    if !opts.dir.is_dir() {
        bail!("{} is not a directory", opts.dir.display());
    }
    let progress = Progress::new(io::stderr().is_terminal());

    let paths = find_roots(&opts.dir, &mut |_| progress.update(false, |p| p.roots += 1));
    let mut roots: Vec<Root> = paths
        .into_iter()
        .map(|path| {
            let findings = Findings::gather(&path, path.join(DATA_DIR));
            Root {
                path,
                findings,
                group: None,
                action: Action::None,
                action_reason: String::new(),
                outcome: None,
            }
        })
        .collect();

    // The saved keys: one STS request per distinct (credentials, target).
    let mut keys: Vec<(StaticCredentials, Target)> = Vec::new();
    for root in &mut roots {
        let f = &root.findings;
        if let (Saved::StaticKey, Some(creds), Some(Ok(target))) = (&f.saved, &f.creds, &f.target) {
            root.group = Some(group_of(&mut keys, (creds.clone(), target.clone())));
        }
    }
    progress.update(true, |p| p.keys_total = keys.len());
    let key_verdicts = bounded(&keys, opts.jobs, |(creds, target), sessions| {
        let verdict = match sessions.get(target) {
            Ok(s) => s.check_static(creds),
            Err(why) => Verdict::unknown(why),
        };
        log::debug(|| format!("saved key {}: {verdict}", creds.access_key));
        progress.update(true, |p| p.keys_checked += 1);
        verdict
    });

    // The fallback credentials, only where a saved key was rejected: once per (target, profiles).
    let mut fallbacks: Vec<(Target, ProfileSettings)> = Vec::new();
    let mut fallback_of = vec![None; roots.len()];
    for (i, root) in roots.iter_mut().enumerate() {
        let Some(g) = root.group else { continue };
        root.findings.saved_verdict = Some(key_verdicts[g].clone());
        if matches!(key_verdicts[g], Verdict::Rejected { .. }) {
            let profiles = root.findings.profiles().unwrap_or_default();
            fallback_of[i] = Some(group_of(&mut fallbacks, (keys[g].1.clone(), profiles)));
        }
    }
    let ambients = bounded(
        &fallbacks,
        opts.jobs,
        |(target, profiles), sessions| match sessions.get(target) {
            Ok(s) => s.check_ambient(profiles),
            Err(why) => Ambient {
                verdict: Verdict::unknown(why),
                source: "not checked".into(),
            },
        },
    );
    for (root, fallback) in roots.iter_mut().zip(&fallback_of) {
        if let Some(a) = fallback {
            root.findings.ambient = Some(ambients[*a].clone());
        }
        let plan = outcome::next_plan(&root.findings);
        root.action = plan.action;
        root.action_reason = plan.reason;
    }

    let mut interrupted = None;
    if let Some(located) = &terraform {
        interrupted = repair_all(&mut roots, &located.path, &progress)?;
    }
    progress.clear();

    let summary = Summary::of(&roots, keys.len(), fallbacks.len(), opts.fix);
    let code = summary.exit_code();
    let doc = document(&opts.dir, &roots, summary);
    if opts.json {
        report::out(&report::to_json(&doc)?);
    } else {
        report::out(&doc.to_human(report::color_on(&io::stdout())));
    }
    if let Some(sig) = interrupted {
        return Ok(ExitCode::from(signal_exit_code(sig)));
    }
    Ok(ExitCode::from(code))
}

/// The index of `item` in `groups`, appending it when new. A linear search: neither the credentials
/// nor the target are hashable, and the number of distinct keys in a tree is small.
fn group_of<T: PartialEq>(groups: &mut Vec<T>, item: T) -> usize {
    match groups.iter().position(|g| *g == item) {
        Some(i) => i,
        None => {
            groups.push(item);
            groups.len() - 1
        }
    }
}

/// Every root under `dir` (`dir` included), sorted. Symbolic links are not followed (a link back up
/// the tree would loop, and a linked root is swept where it really is); unreadable directories are
/// passed over. `found` hears of each root as it is found (for the progress line).
pub fn find_roots(dir: &Path, found: &mut dyn FnMut(&Path)) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        if current.join(DATA_DIR).join(SAVED_FILE).is_file() {
            found(&current);
            roots.push(current.clone());
        }
        let entries = match fs::read_dir(&current) {
            Ok(e) => e,
            Err(e) => {
                log::debug(|| format!("sweep: cannot read {}: {e}", current.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let name = entry.file_name();
            if is_dir && !SKIPPED_DIRS.iter().any(|s| name == *s) {
                pending.push(entry.path());
            }
        }
    }
    roots.sort();
    roots
}

/// One [`Session`] per target for one worker thread (a session owns a current-thread runtime and the
/// HTTPS client, the expensive part to build).
#[derive(Default)]
struct Sessions(Vec<(Target, Result<Session, String>)>);

impl Sessions {
    fn get(&mut self, target: &Target) -> Result<&Session, String> {
        let i = match self.0.iter().position(|(t, _)| t == target) {
            Some(i) => i,
            None => {
                self.0.push((target.clone(), Session::new(target.clone())));
                self.0.len() - 1
            }
        };
        self.0[i].1.as_ref().map_err(Clone::clone)
    }
}

/// `check(item)` for every item, on at most `jobs` scoped threads, results in the items' order.
fn bounded<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    check: impl Fn(&T, &mut Sessions) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let workers = jobs.clamp(1, items.len().max(1));
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut sessions = Sessions::default();
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, check(item, &mut sessions)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("an STS check panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The environment of the terraform a repair runs: as the proxy's (`TFSHIM_MODE=off`, so that a
/// tfshim found as `terraform` passes through; the recursion counter, so that a loop stops).
fn repair_env() -> Result<Vec<(OsString, OsString)>> {
    let count =
        locate::next_recursion_count(env::var_os(locate::RECURSION_VAR).as_deref())?.to_string();
    Ok(vec![
        (OsString::from(locate::RECURSION_VAR), OsString::from(count)),
        (OsString::from("TFSHIM_MODE"), OsString::from("off")),
    ])
}

/// Repairs every root whose action is `reconfigure`, one at a time. Returns the signal that
/// interrupted a repair, if one did (the rest are then skipped).
fn repair_all(roots: &mut [Root], terraform: &Path, progress: &Progress) -> Result<Option<i32>> {
    let env = repair_env()?;
    // Successful inits would bury the report; a failed one's output is shown anyway.
    let show_output = log::debug_enabled();
    let no_color = !report::color_on(&io::stderr());
    let due = roots
        .iter()
        .filter(|r| r.action == Action::Reconfigure)
        .count();
    progress.update(true, |p| p.repairs_due = due);
    let mut interrupted = None;
    for root in roots.iter_mut() {
        if root.action != Action::Reconfigure {
            continue;
        }
        if interrupted.is_some() {
            root.outcome = Some(Outcome::Skipped("the sweep was interrupted".into()));
            continue;
        }
        let Some(creds) = root.findings.creds.clone() else {
            continue;
        };
        let mut chdir = OsString::from("-chdir=");
        chdir.push(&root.path);
        // The sweep read `<root>/.terraform` and that root's selected workspace: the repair's init
        // must use the same, whatever TF_DATA_DIR or TF_WORKSPACE this shell exports for its own use.
        let workspace = fs::read_to_string(root.findings.data_dir.join("environment"))
            .ok()
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "default".into());
        let mut root_env = env.clone();
        root_env.push(("TF_DATA_DIR".into(), DATA_DIR.into()));
        root_env.push(("TF_WORKSPACE".into(), workspace.into()));
        let job = KeyRemoval {
            terraform,
            global_args: vec![chdir],
            data_dir: &root.findings.data_dir,
            env: &root_env,
            no_color,
            show_output,
        };
        // A failed init prints its output and the restore says so: not across the live line.
        progress.clear();
        let result = job.run(&creds);
        log::debug(|| format!("repair of {}: {result:?}", root.path.display()));
        let outcome = match result {
            Ok(Removal::Done) => Outcome::Repaired("re-initialised without the saved key".into()),
            Ok(Removal::AlreadyDone) => {
                Outcome::Repaired("another run had already removed the saved key".into())
            }
            Ok(Removal::Skipped(why)) => Outcome::Skipped(why),
            Ok(Removal::Failed(code)) => Outcome::Failed(format!(
                "terraform init -reconfigure failed (exit {code}); the saved backend was left as it was"
            )),
            Ok(Removal::Interrupted(sig)) => {
                interrupted = Some(sig);
                Outcome::Failed(format!(
                    "interrupted by signal {sig}; the saved backend is as before or fully repaired"
                ))
            }
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
        let repaired = matches!(outcome, Outcome::Repaired(_));
        progress.update(true, |p| p.repaired += usize::from(repaired));
        root.outcome = Some(outcome);
    }
    Ok(interrupted)
}

/// The saved key's verdict, code and reason, as a sweep row shows them.
fn verdict_of(f: &Findings) -> (Shown, Option<String>, Option<String>) {
    outcome::saved_verdict(f)
}

impl Tally for Root {
    fn verdict(&self) -> Shown {
        verdict_of(&self.findings).0
    }
    fn action(&self) -> Action {
        self.action
    }
    fn result(&self) -> Option<RepairResult> {
        self.outcome.as_ref().map(Outcome::result)
    }
}

/// The sweep's document.
pub(crate) fn document(dir: &Path, roots: &[Root], summary: Summary) -> report::sweep::Sweep {
    let rows = roots
        .iter()
        .map(|r| {
            let f = &r.findings;
            let (verdict, code, reason) = verdict_of(f);
            report::sweep::Root {
                path: r.path.display().to_string(),
                backend: f.backend.as_ref().map(|b| b.kind.clone()),
                access_key: f.creds.as_ref().map(|c| c.access_key.redacted()),
                verdict,
                code,
                reason,
                action: r.action,
                action_reason: r.action_reason.clone(),
                result: r.outcome.as_ref().map(Outcome::result),
                result_reason: r.outcome.as_ref().map(|o| o.reason().to_owned()),
                text: RootText {
                    path: relative(&r.path, dir),
                    saved_file: (
                        f.data_dir.join(SAVED_FILE).display().to_string(),
                        format!("{DATA_DIR}/{SAVED_FILE}"),
                    ),
                    looked_in: if r.action == Action::CannotRepair {
                        f.profiles()
                            .map(|p| p.describe(crate::heal::facts::env_var))
                            .unwrap_or_default()
                    } else {
                        String::new()
                    },
                },
            }
        })
        .collect();
    report::sweep::Sweep::new(dir.display().to_string(), rows, summary)
}

/// `path` as found under `dir`, for the table: `apps/web`, or `.` for `dir` itself.
fn relative(path: &Path, dir: &Path) -> String {
    match path.strip_prefix(dir) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// The live line on stderr (a terminal only; nothing otherwise): roots found, keys checked, repairs.
struct Progress {
    state: Option<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    roots: usize,
    keys_total: usize,
    keys_checked: usize,
    repairs_due: usize,
    repaired: usize,
    drawn_at: Option<Instant>,
    /// Characters on the line now (0: nothing drawn).
    width: usize,
}

impl Counts {
    fn line(&self) -> String {
        let mut line = format!(
            "tfshim: sweep: {} roots found, {}/{} keys checked",
            self.roots, self.keys_checked, self.keys_total
        );
        if self.repairs_due > 0 {
            line.push_str(&format!(
                ", {}/{} repaired",
                self.repaired, self.repairs_due
            ));
        }
        line
    }
}

/// Redraws at most this often while walking a big tree.
const REDRAW: Duration = Duration::from_millis(50);

impl Progress {
    fn new(on: bool) -> Progress {
        Progress {
            state: on.then(|| Mutex::new(Counts::default())),
        }
    }

    /// Applies `change` and redraws: at once when `now` (a finished phase, a checked key, a repair),
    /// otherwise at most every [`REDRAW`].
    fn update(&self, now: bool, change: impl FnOnce(&mut Counts)) {
        let Some(state) = &self.state else { return };
        let Ok(mut c) = state.lock() else { return };
        change(&mut c);
        if !now && c.drawn_at.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        let line = c.line();
        // Spaces rather than an erase sequence, which not every terminal understands.
        let pad = " ".repeat(c.width.saturating_sub(line.chars().count()));
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{line}{pad}");
        let _ = err.flush();
        c.drawn_at = Some(Instant::now());
        c.width = line.chars().count();
    }

    fn clear(&self) {
        let Some(state) = &self.state else { return };
        let Ok(mut c) = state.lock() else { return };
        if c.width > 0 {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r{}\r", " ".repeat(c.width));
            let _ = err.flush();
            c.width = 0;
            c.drawn_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::{AccessKeyId, Secret};

    fn saved_file(dir: &Path, text: &str) {
        fs::create_dir_all(dir.join(DATA_DIR)).unwrap();
        fs::write(dir.join(DATA_DIR).join(SAVED_FILE), text).unwrap();
    }

    #[test]
    fn walking_finds_roots_and_skips_caches() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for root in ["", "a", "a/nested", "b/c d", "x/broken"] {
            saved_file(&d.join(root), "{}");
        }
        // Not roots: no saved file, or inside skipped directories.
        fs::create_dir_all(d.join("empty/.terraform")).unwrap();
        for skipped in [
            ".git/modules/m",
            "node_modules/pkg",
            "a/.terraform/modules/m",
            "a/.terraform/providers/p",
        ] {
            saved_file(&d.join(skipped), "{}");
        }
        let mut seen = 0;
        let roots = find_roots(d, &mut |_| seen += 1);
        let rel: Vec<String> = roots
            .iter()
            .map(|r| r.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, ["", "a", "a/nested", "b/c d", "x/broken"]);
        assert_eq!(seen, 5);
    }

    #[cfg(unix)]
    #[test]
    fn walking_does_not_follow_links() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        saved_file(&d.join("real"), "{}");
        std::os::unix::fs::symlink(d, d.join("real/loop")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("alias")).unwrap();
        let roots = find_roots(d, &mut |_| {});
        assert_eq!(roots, vec![d.join("real")]);
    }

    fn creds(id: &str, secret: &str) -> StaticCredentials {
        StaticCredentials {
            access_key: AccessKeyId::new(id),
            secret_key: Secret::new(secret),
            token: None,
        }
    }

    fn target(endpoint: &str) -> Target {
        Target {
            endpoint: Some(endpoint.into()),
            region: "us-east-1".into(),
            ca_bundle: None,
            proxy: crate::aws::sts::Proxy::FromEnv,
            use_fips: false,
            use_dual_stack: false,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn grouping_by_credentials_and_target() {
        let mut groups = Vec::new();
        let a = (creds("AKIAAAAAAAAAAAAAAAAA", "s1"), target("http://sts"));
        let items = [
            a.clone(),
            a.clone(),
            // Same id, another secret: another check (either may be the one STS rejects).
            (creds("AKIAAAAAAAAAAAAAAAAA", "s2"), target("http://sts")),
            // Same key, another endpoint: another check (another STS may answer differently).
            (creds("AKIAAAAAAAAAAAAAAAAA", "s1"), target("http://other")),
            a.clone(),
        ];
        let ids: Vec<usize> = items
            .into_iter()
            .map(|i| group_of(&mut groups, i))
            .collect();
        assert_eq!(ids, [0, 0, 1, 2, 0]);
        assert_eq!(groups.len(), 3);
    }

    #[test]
    fn relative_paths_are_the_roots() {
        let mut t = target("http://sts");
        t.ca_bundle = Some(PathBuf::from("ca.pem"));
        let t = t.anchored(Path::new("/tree/root"));
        assert_eq!(t.ca_bundle, Some(PathBuf::from("/tree/root/ca.pem")));
        let p = ProfileSettings {
            profile: None,
            credentials_files: vec!["creds".into(), "/abs/creds".into()],
            config_files: vec!["conf".into()],
        };
        let p = p.anchored(Path::new("/r"));
        assert_eq!(
            p.credentials_files,
            [PathBuf::from("/r/creds"), PathBuf::from("/abs/creds")]
        );
        assert_eq!(p.config_files, [PathBuf::from("/r/conf")]);
    }

    #[test]
    fn bounded_keeps_order_and_limits_threads() {
        let items: Vec<usize> = (0..23).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = bounded(&items, 3, |i, _| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(bounded(&[] as &[usize], 4, |i, _| *i).is_empty());
    }

    fn root_with(saved: &str, action: Action, outcome: Option<Outcome>) -> Root {
        let t = tempfile::tempdir().unwrap();
        saved_file(t.path(), saved);
        Root {
            path: t.path().to_path_buf(),
            findings: Findings::gather(t.path(), t.path().join(DATA_DIR)),
            group: None,
            action,
            action_reason: String::new(),
            outcome,
        }
    }

    const NO_KEY: &str =
        r#"{"version":3,"backend":{"type":"s3","config":{"bucket":"b"},"hash":1}}"#;

    #[test]
    fn verdicts_and_exit_codes() {
        let broken = root_with("{not json", Action::None, None);
        assert_eq!(verdict_of(&broken.findings).0, "unverified");
        assert!(verdict_of(&broken.findings)
            .2
            .as_deref()
            .unwrap()
            .contains("not valid JSON"));
        let plain = root_with(NO_KEY, Action::None, None);
        assert_eq!(verdict_of(&plain.findings).0, "none");
        let code = |roots: &[Root], fix| Summary::of(roots, 0, 0, fix).exit_code();
        assert_eq!(code(&[], false), 0);
        let due = || root_with(NO_KEY, Action::Reconfigure, None);
        let stuck = || root_with(NO_KEY, Action::CannotRepair, None);
        assert_eq!(code(&[due()], false), REPAIR_DUE);
        assert_eq!(code(&[due(), stuck()], false), CANNOT_REPAIR);
        let fixed = || {
            root_with(
                NO_KEY,
                Action::Reconfigure,
                Some(Outcome::Repaired(String::new())),
            )
        };
        let failed = || {
            root_with(
                NO_KEY,
                Action::Reconfigure,
                Some(Outcome::Failed(String::new())),
            )
        };
        assert_eq!(code(&[fixed()], true), 0);
        assert_eq!(code(&[fixed(), stuck()], true), CANNOT_REPAIR);
        assert_eq!(code(&[fixed(), failed(), stuck()], true), REPAIR_FAILED);
    }

    #[test]
    fn progress_line() {
        let mut c = Counts {
            roots: 200,
            keys_total: 3,
            keys_checked: 1,
            ..Counts::default()
        };
        assert_eq!(c.line(), "tfshim: sweep: 200 roots found, 1/3 keys checked");
        c.repairs_due = 4;
        c.repaired = 2;
        assert!(c.line().ends_with(", 2/4 repaired"));
        // Off a terminal nothing is kept, so nothing can be drawn.
        assert!(Progress::new(false).state.is_none());
    }
}
