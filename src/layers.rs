//! Every import points down: a test that reads the sources and fails when a module uses one that sits
//! above it in the layout (README, "Layout"). `main.rs` and the crate-level test modules sit on top.

use std::fs;
use std::path::Path;

/// The folders (and top-level modules), top first.
const LAYERS: &[&str] = &[
    "commands",
    "heal",
    "report",
    "proxy",
    "credentials",
    "aws",
    "net",
    "backends",
    // Every setting, read once: used by every layer above, using only `log`.
    "settings",
    // The panic boundary: used by `aws`, `heal` and `main`, using only `log`.
    "boundary",
    "log",
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == module)
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source names as `crate::NAME`.
fn uses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let name: String = text[i + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[test]
fn every_import_points_down() {
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let rel = file.strip_prefix("src").unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy();
        let module = top.trim_end_matches(".rs");
        // main.rs and the crate-level test modules are above every layer.
        let Some(own) = layer_of(module) else {
            continue;
        };
        let text = fs::read_to_string(file).unwrap();
        for used in uses(&text) {
            if let Some(layer) = layer_of(&used) {
                if layer < own {
                    upward.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up:\n{}",
        upward.join("\n")
    );
    // Every folder and module of src/ is a layer (or the top: `main.rs` and the crate-level test
    // modules), so none is left unchecked.
    const TOP: &[&str] = &["main", "golden", "layers", "properties"];
    for entry in fs::read_dir("src").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() || !TOP.contains(&name.as_str()) {
            assert!(layer_of(&name).is_some(), "src/{name} is in no layer");
        }
    }
}

#[test]
fn the_check_sees_an_upward_import() {
    assert_eq!(
        uses("use crate::heal::facts::Findings;\nlet x = crate::report::out;"),
        ["heal", "report"]
    );
}

/// Inside `heal`: the repair uses the data dir, never the other way round (issue #20 item 2); the
/// checks both need are `heal::invariants`, which uses neither.
#[test]
fn the_data_dir_never_imports_the_repair() {
    let mut files = Vec::new();
    sources(Path::new("src/heal/datadir"), &mut files);
    files.push("src/heal/invariants.rs".into());
    assert!(files.len() > 3, "{files:?}");
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        for used in ["heal::repair", "heal::preflight", "heal::datadir"] {
            let own = file.starts_with("src/heal/datadir") && used == "heal::datadir";
            assert!(
                own || !text.contains(used),
                "{} uses {used}",
                file.display()
            );
        }
    }
}
