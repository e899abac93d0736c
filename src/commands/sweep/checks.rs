//! The checks of a sweep: grouping the roots by what a check depends on (`credentials::Credential`'s
//! `same_check`/`same_fallback`), and running the checks on at most `--jobs` threads.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::aws::sts::Ambient;
use crate::aws::verdict::Verdict;
use crate::heal::decide::Saved;
use crate::heal::outcome;
use crate::log;

use super::progress::Progress;
use super::Root;

/// Asks about every root's saved credential, once per distinct (credential, target), and about the
/// fallback credentials only where a saved credential was rejected, once per distinct fallback (S3:
/// target and profiles; http: address, username and TLS settings); sets the verdicts and each
/// root's next action. Each group is checked through its first root's `credentials::Credential`.
/// Returns the numbers of credential and fallback checks.
pub(super) fn check_all(roots: &mut [Root], jobs: usize, progress: &Progress) -> (usize, usize) {
    let mut keys: Vec<usize> = Vec::new();
    for i in 0..roots.len() {
        let f = &roots[i].findings;
        let Some(cred) = f.cred.as_deref().filter(|_| f.saved == Saved::StaticKey) else {
            continue;
        };
        let g = group_of(&mut keys, i, |&r| {
            roots[r]
                .findings
                .cred
                .as_deref()
                .is_some_and(|o| cred.same_check(o))
        });
        roots[i].group = Some(g);
    }
    progress.update(true, |p| p.keys_total = keys.len());
    let shared: &[Root] = roots;
    let key_verdicts = bounded(&keys, jobs, |&r| {
        let f = &shared[r].findings;
        let verdict = f.cred.as_deref().map_or(Verdict::Missing, |c| c.check());
        log::debug(|| format!("saved key {}: {verdict}", f.key()));
        progress.update(true, |p| p.keys_checked += 1);
        verdict
    });

    // The fallback credentials, only where a saved credential was rejected.
    let mut fallbacks: Vec<usize> = Vec::new();
    let mut fallback_of = vec![None; roots.len()];
    for i in 0..roots.len() {
        let Some(g) = roots[i].group else { continue };
        roots[i].findings.record_saved(key_verdicts[g].clone());
        if !matches!(key_verdicts[g], Verdict::Rejected { .. }) {
            continue;
        }
        let Some(cred) = roots[i].findings.cred.as_deref() else {
            continue;
        };
        fallback_of[i] = Some(group_of(&mut fallbacks, i, |&r| {
            roots[r]
                .findings
                .cred
                .as_deref()
                .is_some_and(|o| cred.same_fallback(o))
        }));
    }
    let shared: &[Root] = roots;
    let ambients = bounded(&fallbacks, jobs, |&r| {
        match shared[r].findings.cred.as_deref() {
            Some(c) => c.check_fallback(),
            None => Ambient {
                verdict: Verdict::unknown("no backend tfshim can check"),
                source: "not checked".into(),
            },
        }
    });
    for (root, fallback) in roots.iter_mut().zip(&fallback_of) {
        if let Some(a) = fallback {
            root.findings.record_ambient(ambients[*a].clone());
        }
        let plan = outcome::next_plan(&root.findings);
        root.action = plan.action;
        root.action_reason = plan.reason;
    }

    (keys.len(), fallbacks.len())
}

/// The index of the group `same` finds `item` in, appending it as a new group when none. A linear
/// search: credentials and targets are not hashable, and the number of distinct keys in a tree is
/// small.
fn group_of<T>(groups: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) -> usize {
    match groups.iter().position(same) {
        Some(i) => i,
        None => {
            groups.push(item);
            groups.len() - 1
        }
    }
}

/// `check(item)` for every item, on at most `jobs` scoped threads, results in the items' order.
fn bounded<T: Sync, R: Send>(items: &[T], jobs: usize, check: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let workers = jobs.clamp(1, items.len().max(1));
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, check(item)));
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
    use crate::aws::chain::ProfileSettings;
    use crate::aws::sts::Target;
    use crate::backends::saved::{AccessKeyId, Secret, StaticCredentials};

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
            .map(|i| {
                let key = i.clone();
                group_of(&mut groups, i, |g| *g == key)
            })
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
        let out = bounded(&items, 3, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(bounded(&[] as &[usize], 4, |i| *i).is_empty());
    }
}
