//! `shim sweep`: a tree of roots sharing a few saved keys, two of them rotated away. Each distinct key
//! is checked once, each root is reported right, and `--fix` heals exactly the stale roots.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{moto, Key, Layout, Run, Sandbox, BUCKET};

const STALE_A: &[&str] = &["apps/web", "apps/web/edge", "team b/api"];
const STALE_B: &[&str] = &["data/etl", "data/lake", "data/lake/archive"];
const HEALTHY: &[&str] = &["ops/dns", "ops/mail"];
const NO_KEY: &[&str] = &["sandbox/one", "sandbox/two", "legacy"];
const BROKEN: &str = "broken";
/// Copies of a stale saved file where no root is: they must be neither reported nor touched.
const DECOYS: &[&str] = &[
    ".git/x",
    "node_modules/pkg",
    "ops/dns/.terraform/modules/vpc",
];

/// A root under the sandbox's work dir, its backend on the sandbox's STS proxy, its own state key.
fn make_root(sb: &Sandbox, name: &str, layout: Layout) -> PathBuf {
    let dir = sb.work.join(name);
    fs::create_dir_all(&dir).unwrap();
    let state_key = format!("{}/{name}/terraform.tfstate", sb.user);
    let tf = sb.main_tf(layout).replace(&sb.state_key, &state_key);
    fs::write(dir.join("main.tf"), tf).unwrap();
    dir
}

#[track_caller]
fn init(sb: &Sandbox, dir: &Path, extra: &[String]) {
    let mut args = vec!["init".to_owned(), "-input=false".to_owned()];
    args.extend(extra.iter().cloned());
    let mut cmd = sb.terraform_cmd();
    cmd.current_dir(dir);
    sb.run(cmd, &args).success();
}

fn saved(dir: &Path) -> Vec<u8> {
    fs::read(dir.join(".terraform/terraform.tfstate")).unwrap()
}

fn redacted(k: &Key) -> String {
    format!("{}…{}", &k.id[..4], &k.id[k.id.len() - 4..])
}

/// Runs the sweep with `--json`; the document and the roots by path (relative to the work dir).
fn sweep_json(sb: &Sandbox, args: &[&str]) -> (Run, Value, BTreeMap<String, Value>) {
    let mut all = vec!["shim", "sweep", "--json"];
    all.extend(args);
    let run = sb.tfshim(&all);
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| {
        panic!(
            "sweep --json is not one JSON document ({e}):\n{}",
            run.stdout()
        )
    });
    let roots = doc["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let path = r["path"].as_str().unwrap();
            let rel = path.strip_prefix("./").unwrap_or(path).to_owned();
            for key in [
                "backend",
                "access_key",
                "verdict",
                "code",
                "action",
                "result",
            ] {
                assert!(r.get(key).is_some(), "{key} missing: {r}");
            }
            (rel, r.clone())
        })
        .collect();
    (run, doc, roots)
}

#[track_caller]
fn assert_root(roots: &BTreeMap<String, Value>, name: &str, want: &[(&str, Value)]) {
    let r = roots
        .get(name)
        .unwrap_or_else(|| panic!("{name} not reported: {roots:?}"));
    for (k, v) in want {
        assert_eq!(&r[*k], v, "{name}.{k} in {r}");
    }
}

#[test]
fn sweep_checks_each_key_once_and_heals_every_stale_root() {
    let mut sb = Sandbox::new(Layout::default());
    let m = moto();
    // Two users whose keys get rotated; the sandbox's own key (C) stays valid.
    let (user_a, user_b) = (format!("{}-a", sb.user), format!("{}-b", sb.user));
    let a1 = m.new_user(&user_a);
    let b1 = m.new_user(&user_b);
    let c = sb.key.clone();
    sb.secrets.extend(
        [&a1, &b1]
            .iter()
            .flat_map(|k| [k.id.clone(), k.secret.clone()]),
    );
    sb.set_ambient(Some(&c));

    for (names, key) in [(STALE_A, &a1), (STALE_B, &b1), (HEALTHY, &c)] {
        for name in names {
            let partial = name.contains(' ');
            let dir = make_root(
                &sb,
                name,
                Layout {
                    partial,
                    ..Layout::default()
                },
            );
            let mut extra = Sandbox::key_args(key).to_vec();
            if partial {
                // bucket and key only from -backend-config: a bare reconfigure would lose them.
                extra.push(format!("-backend-config=bucket={BUCKET}"));
                extra.push(format!(
                    "-backend-config=key={}/{name}/terraform.tfstate",
                    sb.user
                ));
            }
            init(&sb, &dir, &extra);
        }
    }
    for name in NO_KEY {
        init(&sb, &make_root(&sb, name, Layout::default()), &[]);
    }
    let broken = make_root(&sb, BROKEN, Layout::default());
    fs::create_dir_all(broken.join(".terraform")).unwrap();
    fs::write(
        broken.join(".terraform/terraform.tfstate"),
        "{\"version\": 3, \"backend\": ",
    )
    .unwrap();
    let stale_file = saved(&sb.work.join(STALE_A[0]));
    for d in DECOYS {
        let dir = sb.work.join(d).join(".terraform");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("terraform.tfstate"), &stale_file).unwrap();
    }

    // The rotation: new keys for A and B, the old ones deleted; A's new key is the default profile.
    let a2 = m.rotate(&user_a, &a1);
    let b2 = m.rotate(&user_b, &b1);
    sb.secrets.extend(
        [&a2, &b2]
            .iter()
            .flat_map(|k| [k.id.clone(), k.secret.clone()]),
    );
    sb.set_ambient(Some(&a2));
    let mut plain_plan = sb.terraform_cmd();
    plain_plan.current_dir(sb.work.join(STALE_A[0]));
    let run = sb.run(plain_plan, &["plan", "-input=false", "-no-color"]);
    assert_ne!(run.code(), Some(0), "the seed's failure before any sweep");
    run.stderr_has("GetCallerIdentity").stderr_has("403");

    let everything: Vec<PathBuf> = [STALE_A, STALE_B, HEALTHY, NO_KEY, &[BROKEN], DECOYS]
        .concat()
        .iter()
        .map(|n| sb.work.join(n))
        .collect();
    let snapshot = || -> Vec<Vec<u8>> { everything.iter().map(|d| saved(d)).collect() };
    let before = snapshot();

    // 1. Report only. One STS request per distinct saved key (A1, B1, C) and one for the fallback
    // credentials shared by every rejected root.
    let calls = sb.sts.tfshim_calls();
    let (run, doc, roots) = sweep_json(&sb, &[]);
    run.code_is(3);
    assert_eq!(run.stderr(), "", "no progress line off a terminal");
    assert_eq!(sb.sts.tfshim_calls() - calls, 3 + 1);
    assert_eq!(doc["keys_checked"], 3);
    assert_eq!(doc["fallbacks_checked"], 1);
    assert_eq!(roots.len(), 12, "{:?}", roots.keys());
    for (names, key) in [(STALE_A, &a1), (STALE_B, &b1)] {
        for name in names {
            assert_root(
                &roots,
                name,
                &[
                    ("backend", "s3".into()),
                    ("access_key", redacted(key).into()),
                    ("verdict", "rejected".into()),
                    ("code", "InvalidClientTokenId".into()),
                    ("action", "reconfigure".into()),
                    ("result", Value::Null),
                ],
            );
        }
    }
    for name in HEALTHY {
        assert_root(
            &roots,
            name,
            &[
                ("access_key", redacted(&c).into()),
                ("verdict", "valid".into()),
                ("action", "none".into()),
            ],
        );
    }
    for name in NO_KEY {
        assert_root(
            &roots,
            name,
            &[
                ("backend", "s3".into()),
                ("access_key", Value::Null),
                ("verdict", "none".into()),
                ("action", "none".into()),
            ],
        );
    }
    assert_root(
        &roots,
        BROKEN,
        &[
            ("backend", Value::Null),
            ("verdict", "unverified".into()),
            ("action", "none".into()),
        ],
    );
    assert!(roots[BROKEN]["reason"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    let s = &doc["summary"];
    assert_eq!(
        (&s["rejected"], &s["valid"], &s["none"], &s["unverified"]),
        (&6.into(), &2.into(), &3.into(), &1.into())
    );
    assert_eq!(snapshot(), before, "a sweep without --fix changes nothing");

    // 2. No working fallback credentials: nothing can be repaired (exit 4). Human output, a DIR
    // argument, one check at a time.
    sb.set_ambient(None);
    let calls = sb.sts.tfshim_calls();
    let dir = sb.work.display().to_string();
    let run = sb.tfshim(&["shim", "sweep", &dir, "--jobs", "1"]);
    run.code_is(4);
    // The fallback chain finds no credentials at all, so it sends no request.
    assert_eq!(sb.sts.tfshim_calls() - calls, 3);
    let out = run.stdout();
    assert_eq!(out.matches("cannot-repair").count(), 6, "{out}");
    assert!(
        out.contains(&redacted(&a1)) && out.contains(&redacted(&b1)),
        "{out}"
    );
    assert!(
        out.contains("12 roots, 3 distinct keys checked, 1 fallback check: 2 valid, 6 rejected"),
        "{out}"
    );
    assert_eq!(snapshot(), before);
    sb.set_ambient(Some(&a2));

    // 3. --fix: the six stale roots are repaired, one `init -reconfigure` each; the rest untouched.
    sb.record_terraform_calls();
    let calls = sb.sts.tfshim_calls();
    let (run, doc, roots) = sweep_json(&sb, &["--fix"]);
    run.code_is(0);
    assert_eq!(sb.sts.tfshim_calls() - calls, 3 + 1);
    assert_eq!(sb.reconfigures(), 6, "{:?}", sb.terraform_calls());
    assert_eq!(doc["summary"]["repaired"], 6);
    for name in STALE_A.iter().chain(STALE_B) {
        assert_root(&roots, name, &[("result", "repaired".into())]);
    }
    for name in HEALTHY.iter().chain(NO_KEY).chain(&[BROKEN]) {
        assert_root(&roots, name, &[("result", Value::Null)]);
    }
    let after = snapshot();
    for (i, dir) in everything.iter().enumerate() {
        let stale = i < STALE_A.len() + STALE_B.len();
        if !stale {
            assert_eq!(after[i], before[i], "{} changed", dir.display());
            continue;
        }
        let text = String::from_utf8(after[i].clone()).unwrap();
        assert!(!text.contains(&a1.id) && !text.contains(&b1.id));
        let (old, new): (Value, Value) = (
            serde_json::from_slice(&before[i]).unwrap(),
            serde_json::from_slice(&after[i]).unwrap(),
        );
        assert_eq!(old["backend"]["hash"], new["backend"]["hash"]);
        for attr in ["bucket", "key", "region", "endpoints"] {
            assert_eq!(
                old["backend"]["config"][attr],
                new["backend"]["config"][attr],
                "{attr} of {}",
                dir.display()
            );
        }
        // Healed for good: a plain terraform plan works there.
        let mut plan = sb.terraform_cmd();
        plan.current_dir(dir);
        sb.run(plan, &["plan", "-input=false", "-no-color"])
            .success();
    }

    // 4. Nothing left to do; only the valid key C is still saved, so one request.
    let calls = sb.sts.tfshim_calls();
    let (run, doc, _) = sweep_json(&sb, &[]);
    run.code_is(0);
    assert_eq!(sb.sts.tfshim_calls() - calls, 1);
    assert_eq!(doc["summary"]["reconfigure"], 0);
    assert_eq!(snapshot(), after);
}

/// The live line: on a terminal only (`script` gives the sweep one), and cleared at the end.
#[cfg(target_os = "linux")]
#[test]
fn progress_on_a_terminal() {
    let sb = Sandbox::new(Layout::default());
    sb.set_ambient(Some(&sb.key));
    for name in ["one", "two"] {
        let dir = make_root(&sb, name, Layout::default());
        init(&sb, &dir, &Sandbox::key_args(&sb.key));
    }
    let mut cmd = sb.command(Path::new("script"));
    cmd.env("TERM", "dumb");
    let line = format!("{} shim sweep", crate::support::tfshim_bin());
    let run = sb.run(cmd, &["-qec", &line, "/dev/null"]);
    run.success();
    let out = run.stdout();
    assert!(
        out.contains("\rtfshim: sweep: 2 roots found, 1/1 keys checked"),
        "{out:?}"
    );
    // Cleared (overwritten with spaces) before the report.
    let report = out.find("PATH").expect("the report");
    assert!(out[..report].ends_with(" \r"), "{out:?}");
    assert!(
        out[report..].contains("2 roots, 1 distinct key checked, 0 fallback checks"),
        "{out:?}"
    );
}

/// A repair that fails is rolled back byte for byte and reported; the other roots are still healed.
#[test]
fn a_failed_repair_is_restored_and_reported() {
    let mut sb = Sandbox::new(Layout::default());
    let m = moto();
    let bucket = format!("gone-{}", sb.user.to_lowercase());
    let (status, body) =
        crate::support::moto::http(m.open_port, "PUT", &format!("/{bucket}"), &[], b"").unwrap();
    assert!(status < 300, "{status} {body}");
    let partial = Layout {
        partial: true,
        ..Layout::default()
    };
    for (name, bucket) in [("ok", BUCKET), ("doomed", bucket.as_str())] {
        let dir = make_root(&sb, name, partial);
        let mut extra = Sandbox::key_args(&sb.key).to_vec();
        extra.push(format!("-backend-config=bucket={bucket}"));
        extra.push(format!("-backend-config=key={}/{name}", sb.user));
        init(&sb, &dir, &extra);
    }
    sb.rotate();
    // The doomed root's bucket disappears: its repair's init fails.
    crate::support::moto::http(m.open_port, "DELETE", &format!("/{bucket}"), &[], b"").unwrap();
    let doomed = saved(&sb.work.join("doomed"));
    let calls = sb.sts.tfshim_calls();
    let (run, doc, roots) = sweep_json(&sb, &["--fix"]);
    run.code_is(1);
    assert_eq!(
        sb.sts.tfshim_calls() - calls,
        1 + 1,
        "one key, one fallback"
    );
    assert_root(&roots, "ok", &[("result", "repaired".into())]);
    assert_root(&roots, "doomed", &[("result", "failed".into())]);
    assert!(roots["doomed"]["result_reason"]
        .as_str()
        .unwrap()
        .contains("left as it was"));
    assert_eq!(doc["summary"]["failed"], 1);
    assert_eq!(
        saved(&sb.work.join("doomed")),
        doomed,
        "restored byte for byte"
    );
    // terraform's own explanation reaches stderr; stdout stays one JSON document.
    run.stderr_has("Error:");
}
