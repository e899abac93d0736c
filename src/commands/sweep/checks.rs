//! The STS checks of a sweep: grouping the roots by what a check depends on, and running the checks
//! on at most `--jobs` threads, each with its own sessions.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::aws::chain::ProfileSettings;
use crate::aws::sts::{Ambient, Session, Target};
use crate::aws::verdict::Verdict;
use crate::backends::saved::StaticCredentials;
use crate::heal::decide::Saved;
use crate::heal::outcome;
use crate::log;

use super::progress::Progress;
use super::Root;

/// Asks STS about every root's saved key, once per distinct (credentials, target), and about the
/// fallback credentials only where a saved key was rejected, once per (target, profiles); sets the
/// verdicts and each root's next action. Returns the numbers of key and fallback checks.
pub(super) fn check_all(roots: &mut [Root], jobs: usize, progress: &Progress) -> (usize, usize) {
    // The saved keys: one STS request per distinct (credentials, target).
    let mut keys: Vec<(StaticCredentials, Target)> = Vec::new();
    for root in roots.iter_mut() {
        let f = &root.findings;
        if let (Saved::StaticKey, Some(creds), Some(Ok(target))) = (&f.saved, &f.creds, &f.target) {
            root.group = Some(group_of(&mut keys, (creds.clone(), target.clone())));
        }
    }
    progress.update(true, |p| p.keys_total = keys.len());
    let key_verdicts = bounded(&keys, jobs, |(creds, target), sessions| {
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
        jobs,
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

    (keys.len(), fallbacks.len())
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::*;
    use crate::backends::saved::{AccessKeyId, Secret};

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
            generation: Default::default(),
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
            ..Default::default()
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
}
