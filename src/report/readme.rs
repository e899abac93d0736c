//! The README documents the JSON schemas as tables (`| key | value |`, nested keys as `{a, b}`); this
//! test holds them to the types: every documented key exists, in the documented order, and every key
//! the types write is documented.

use serde::Serialize;
use serde_json::Value;

use super::sweep::{RepairResult, Root, RootText, Summary, Sweep};
use super::*;

/// The rows of the first `| key | value |` table after `heading`: the keys of the first column, and
/// the `{…}` key lists of the second.
fn documented(heading: &str) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let readme = std::fs::read_to_string("README.md").expect("README.md in the package root");
    let section = &readme[readme.find(heading).expect("the section")..];
    let table = section
        .lines()
        .skip_while(|l| !l.starts_with("| key | value |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    table
        .map(|row| {
            let cells: Vec<&str> = row.split('|').collect();
            let keys = ticked(cells[1]);
            let groups = ticked(cells[2])
                .into_iter()
                .filter_map(|t| {
                    let inner = t.strip_prefix('{')?.strip_suffix('}')?;
                    Some(inner.split(',').map(|k| k.trim().to_owned()).collect())
                })
                .collect();
            (keys, groups)
        })
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// The objects found under `key` in these documents (a list's elements count as its objects).
fn objects_under(docs: &[Value], key: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for doc in docs {
        let found = match &doc[key] {
            Value::Object(_) => vec![keys(&doc[key])],
            Value::Array(items) => items.iter().filter(|i| i.is_object()).map(keys).collect(),
            _ => Vec::new(),
        };
        for k in found {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

/// Holds the README table under `heading` to these example documents (which between them show
/// every shape: every object present, every variant).
#[track_caller]
fn check<T: Serialize>(heading: &str, examples: &[T]) {
    let docs: Vec<Value> = examples
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let rows = documented(heading);
    let top: Vec<String> = rows.iter().flat_map(|(k, _)| k.clone()).collect();
    assert_eq!(top, keys(&docs[0]), "{heading}: the README's keys");
    for (row_keys, groups) in &rows {
        let [key] = row_keys.as_slice() else {
            assert!(
                groups.is_empty(),
                "{row_keys:?}: nested keys of several keys"
            );
            continue;
        };
        let mut shapes = objects_under(&docs, key);
        let mut documented_shapes = groups.clone();
        shapes.sort();
        documented_shapes.sort();
        assert_eq!(documented_shapes, shapes, "{heading}: the keys of `{key}`");
    }
}

fn doctor(backend: BackendInfo, credential: Option<String>) -> Doctor {
    let s = || Some("x".to_owned());
    Doctor {
        tfshim_version: TFSHIM_VERSION,
        terraform: Some(TerraformInfo {
            path: "/t".into(),
            found: "on PATH".into(),
            version: s(),
        }),
        data_dir: ".terraform".into(),
        backend: Some(backend),
        saved_credentials: SavedCredentials {
            present: true,
            access_key: credential.is_none().then(|| "x".to_owned()),
            credential,
            verdict: Shown::Rejected,
            code: s(),
            arn: None,
            reason: None,
        },
        ambient_credentials: AmbientCredentials {
            verdict: Shown::Valid,
            source: s(),
            arn: s(),
            code: None,
            reason: None,
        },
        action: Action::Reconfigure,
        action_reason: "why".into(),
        warnings: vec![Warning {
            code: "plaintext-keys",
            message: "m".into(),
        }],
        mode: "fix",
        fix_action: Action::Reconfigure,
        fix_action_reason: "why".into(),
    }
}

#[test]
fn readme_documents_the_doctor_schema() {
    let saved = BackendInfo::Saved {
        kind: "s3".into(),
        path: "p".into(),
        bucket: None,
        key: None,
        region: None,
        address: None,
    };
    let unreadable = BackendInfo::Unreadable { error: "e".into() };
    check(
        "## Diagnosing: `tfshim shim doctor`",
        &[
            doctor(saved.clone(), None),
            doctor(unreadable, None),
            doctor(saved, Some("password (user ci)".into())),
        ],
    );
}

#[test]
fn readme_documents_the_sweep_schema() {
    let root = Root {
        path: "r".into(),
        backend: None,
        access_key: None,
        credential: None,
        verdict: Shown::None,
        code: None,
        reason: None,
        action: Action::None,
        action_reason: String::new(),
        result: Some(RepairResult::Repaired),
        result_reason: None,
        text: RootText::default(),
    };
    let http = Root {
        backend: Some("http".into()),
        credential: Some("password (user ci)".into()),
        ..root.clone()
    };
    let roots = vec![root, http];
    let summary = Summary::of(&roots, 1, 0, true);
    check(
        "## Sweeping a tree: `tfshim shim sweep`",
        &[Sweep::new("d".into(), roots, summary)],
    );
}

/// The words the README lists are the enums' words.
#[test]
fn readme_lists_the_enum_words() {
    let json = |v: &dyn erased::Ser| v.json();
    assert_eq!(
        [Action::None, Action::Reconfigure, Action::CannotRepair].map(|a| json(&a)),
        ["\"none\"", "\"reconfigure\"", "\"cannot-repair\""]
    );
    assert_eq!(
        [
            Shown::Valid,
            Shown::Rejected,
            Shown::Unverified,
            Shown::None,
            Shown::Unreadable
        ]
        .map(|v| json(&v)),
        [
            "\"valid\"",
            "\"rejected\"",
            "\"unverified\"",
            "\"none\"",
            "\"unreadable\""
        ]
    );
    assert_eq!(
        [
            RepairResult::Repaired,
            RepairResult::Failed,
            RepairResult::Skipped
        ]
        .map(|r| json(&r)),
        ["\"repaired\"", "\"failed\"", "\"skipped\""]
    );
    // Display says what JSON says.
    assert_eq!(Action::CannotRepair.to_string(), "cannot-repair");
    assert_eq!(Shown::Unverified.to_string(), "unverified");
    assert_eq!(RepairResult::Skipped.to_string(), "skipped");
    let readme = std::fs::read_to_string("README.md").unwrap();
    assert!(readme.contains(
        "`verdict` is `valid`, `rejected`, `unverified` (no verdict, or not checked; `reason` says why), `none`\n(nothing to check) or, for `saved_credentials`, `unreadable`"
    ));
    assert!(readme.contains("| `action` | `none`, `reconfigure` or `cannot-repair`"));
    assert!(readme
        .contains("`result` is `repaired`, `failed` (the saved file is as it was) or `skipped`"));
}

mod erased {
    pub trait Ser {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}
