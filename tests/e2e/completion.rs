//! Completion through the shell integrations (issue #22): `terraform shim d<Tab>` completes
//! tfshim's own commands and flags, every other word terraform's own, run for real in bash (the
//! function `complete -p` registers, called as bash calls it) and fish (`complete -C`); zsh's script
//! is loaded and checked for what it registers. `shim completions` covers the names tfshim,
//! terraform and tofu.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::tfshim_bin;

/// A PATH with `tfshim` (a link to the binary under test) first, then this one (the real
/// terraform).
fn path_with_tfshim(dir: &Path) -> std::ffi::OsString {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(tfshim_bin(), bin.join("tfshim")).unwrap();
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("shell")
        .join(name)
}

fn shell(program: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PATH", path_with_tfshim(dir))
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("CHECKPOINT_DISABLE", "1")
        .env_remove("TFSHIM_TERRAFORM")
        .env_remove("TFSHIM_BIN")
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed for this test (apt-get install {program}): {e}")
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Lines of `LINE => candidates` for each line, completed as bash's programmable completion does
/// (COMP_WORDS, COMP_CWORD, COMP_LINE, COMP_POINT set; the registered function called).
const BASH: &str = r#"
source "$1"
shift
spec=$(complete -p terraform)
echo "spec: $spec"
fn=${spec#*-F }; fn=${fn%% *}
for line in "$@"; do
    COMP_LINE=$line COMP_POINT=${#line}
    read -ra COMP_WORDS <<<"$line"
    [[ $line == *' ' ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    "$fn" terraform "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "$line => $(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ')"
done
"#;

fn completed<'a>(said: &'a str, line: &str) -> Vec<&'a str> {
    let prefix = format!("{line} => ");
    said.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no completion for {line:?} in {said}"))
        .split_whitespace()
        .collect()
}

#[test]
fn bash_completes_shim_and_terraform() {
    let tmp = tempfile::tempdir().unwrap();
    let bash_script = script("tfshim.bash");
    let said = shell(
        "bash",
        tmp.path(),
        &[
            "--norc",
            "-c",
            BASH,
            "bash",
            bash_script.to_str().unwrap(),
            "terraform shim d",
            "terraform d",
            "terraform shim ",
            "terraform shim doctor -",
            "terraform -chdir=x shim sweep --f",
            "terraform pla",
            "terraform shim completions b",
        ],
    );
    assert!(said.contains("spec: complete -F "), "{said}");
    assert_eq!(completed(&said, "terraform shim d"), ["doctor"]);
    // terraform's own, from the real binary.
    assert_eq!(completed(&said, "terraform d"), ["destroy"]);
    assert_eq!(completed(&said, "terraform pla"), ["plan"]);
    let commands = completed(&said, "terraform shim ");
    for c in [
        "doctor",
        "sweep",
        "forget-keys",
        "reinit",
        "which",
        "version",
        "completions",
    ] {
        assert!(commands.contains(&c), "{c} not offered: {said}");
    }
    assert!(!commands.contains(&"destroy"), "{said}");
    assert!(!commands.iter().any(|c| c.starts_with("__")), "{said}");
    assert!(
        completed(&said, "terraform shim doctor -").contains(&"--json"),
        "{said}"
    );
    assert_eq!(
        completed(&said, "terraform -chdir=x shim sweep --f"),
        ["--fix"]
    );
    assert_eq!(completed(&said, "terraform shim completions b"), ["bash"]);
}

#[test]
fn fish_completes_shim_and_terraform() {
    let tmp = tempfile::tempdir().unwrap();
    let fish_script = script("tfshim.fish");
    let said = shell(
        "fish",
        tmp.path(),
        &[
            "-c",
            &format!(
                "source '{}'; for l in 'terraform shim d' 'terraform d' 'terraform shim doctor --j' 'terraform pl' 'terraform -chdir=x shim sw'; \
                 set -l c (complete -C $l | string replace -r '\\t.*' ''); echo \"$l => $c\"; end",
                fish_script.display()
            ),
        ],
    );
    assert_eq!(completed(&said, "terraform shim d"), ["doctor"]);
    assert_eq!(completed(&said, "terraform d"), ["destroy"]);
    assert_eq!(completed(&said, "terraform shim doctor --j"), ["--json"]);
    assert_eq!(completed(&said, "terraform pl"), ["plan"]);
    assert_eq!(completed(&said, "terraform -chdir=x shim sw"), ["sweep"]);
}

#[test]
fn zsh_registers_the_dispatcher() {
    let tmp = tempfile::tempdir().unwrap();
    let zsh_script = script("tfshim.zsh");
    let said = shell(
        "zsh",
        tmp.path(),
        &[
            "-f",
            "-c",
            &format!(
                "autoload -Uz compinit && compinit -u -d {dump}; source '{}'; \
                 print -r -- \"comp: $_comps[terraform]\"; \
                 (( $+functions[_tfshim_clap_terraform] )) && print clap-loaded; \
                 (( $+functions[_terraform] )) || print no-clap-terraform",
                zsh_script.display(),
                dump = tmp.path().join("zcompdump").display()
            ),
        ],
    );
    assert!(said.contains("comp: _tfshim_complete"), "{said}");
    assert!(said.contains("clap-loaded"), "{said}");
    // clap's function is renamed: it never takes over terraform's completion.
    assert!(said.contains("no-clap-terraform"), "{said}");
}

#[test]
fn completions_cover_every_name() {
    let out = Command::new(tfshim_bin())
        .args(["shim", "completions", "bash"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["tfshim", "terraform", "tofu"] {
        assert!(text.contains(&format!("{name}__subcmd__shim)")), "{name}");
        assert!(
            text.contains(&format!(
                "complete -F _{name} -o nosort -o bashdefault -o default {name}"
            )),
            "{name}"
        );
    }
}
