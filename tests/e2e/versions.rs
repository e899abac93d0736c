//! The seed user's terraform (#21): the differential rows on 0.12.29, 0.13.4, 0.14.6 and 0.15.0-rc2
//! (CloudRail's builds, `support/terraforms.rs`), beside 1.0.3 and 1.11.4 (`differential.rs` runs
//! every row there); a few rows of its own on all six; `shim reinit` after an upgrade; and the seed
//! user's own root end to end.
//!
//! These builds print terraform's messages on stdout (prefixed `o:`/`e:`), so the reactive fallback,
//! which reads terraform's stderr, cannot be driven by them: 0.12–0.15's error shapes are covered
//! from terraform's own source by unit tests (`src/proxy/reactive.rs`). 0.12–0.14 have no `-chdir`:
//! everything here runs in the root's directory.
//!
//! The rows on one version run in the one shared moto pair, like every other e2e test.

use std::fs;

use serde_json::Value;

use crate::differential::{self, check_row, Expect, Row, Tf};
use crate::support::terraforms::{self, Release};
use crate::support::Sandbox;

/// The six versions, as a row sees them: the old S3 backend schema (flat endpoints) up to 1.0.3.
#[derive(Clone, Copy, Debug)]
pub enum Version {
    Old(Release),
    V1_11,
}

impl Version {
    fn row(self, partial: bool) -> Row {
        match self {
            Version::Old(r) => {
                let mut row = Row::with_binary(Tf::V1_0, partial, Some(terraforms::binary(r)));
                row.sb.terraform_logs_secrets = r.wheel;
                row
            }
            Version::V1_11 => Row::new(Tf::V1_11, partial),
        }
    }

    /// What `terraform version` says (first line, without an `o:`).
    fn says(self) -> String {
        match self {
            Version::Old(r) => format!("Terraform v{}", r.version),
            Version::V1_11 => terraforms::version_line(&Tf::V1_11.binary()).unwrap(),
        }
    }
}

/// The differential rows run on 0.12–0.15 (1.0.3 and 1.11.4 run them in `differential.rs`).
macro_rules! old_rows {
    ($($name:ident: partial = $partial:expr;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn tf_0_12() {
                check_row(Version::Old(terraforms::V0_12).row($partial), differential::$name);
            }
            #[test]
            fn tf_0_13() {
                check_row(Version::Old(terraforms::V0_13).row($partial), differential::$name);
            }
            #[test]
            fn tf_0_14() {
                check_row(Version::Old(terraforms::V0_14).row($partial), differential::$name);
            }
            #[test]
            fn tf_0_15() {
                check_row(Version::Old(terraforms::V0_15).row($partial), differential::$name);
            }
        }
    )*};
}

/// Rows of this file, on all six versions.
macro_rules! all_rows {
    ($($name:ident;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn tf_0_12() {
                super::$name(Version::Old(terraforms::V0_12));
            }
            #[test]
            fn tf_0_13() {
                super::$name(Version::Old(terraforms::V0_13));
            }
            #[test]
            fn tf_0_14() {
                super::$name(Version::Old(terraforms::V0_14));
            }
            #[test]
            fn tf_0_15() {
                super::$name(Version::Old(terraforms::V0_15));
            }
            #[test]
            fn tf_1_0_3() {
                super::$name(Version::Old(terraforms::V1_0_3));
            }
            #[test]
            fn tf_1_11() {
                super::$name(Version::V1_11);
            }
        }
    )*};
}

old_rows! {
    seed_via_flags: partial = false;
    seed_healed_by_init: partial = true;
    partial_config: partial = true;
    valid_saved_key: partial = false;
    stale_without_fallback: partial = false;
    settings_file_and_new_key_flags: partial = true;
}

all_rows! {
    expired_session_token;
    valid_key_one_request_and_doctor;
}

/// Random upper-case letters and digits.
fn random(n: usize) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..n)
        .map(|_| {
            let mut h = RandomState::new().build_hasher();
            h.write_usize(n);
            ALPHABET[(h.finish() % 32) as usize] as char
        })
        .collect()
}

/// A saved session whose token has expired: the saved file holds a session key STS no longer
/// knows (moto's sessions never expire, so one it never issued stands in), and the user's working
/// key is in the shared credentials file. Plain terraform fails; the manual fix and tfshim heal.
fn expired_session(row: &mut Row) -> Expect {
    row.init(&[]);
    row.sb.set_ambient(Some(&row.sb.key));
    let (id, secret, token) = (
        format!("ASIA{}", random(16)),
        random(40),
        format!("FwoGZXIvYXdzE{}", random(120)),
    );
    let path = row.sb.data_dir().join("terraform.tfstate");
    let mut saved: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let config = &mut saved["backend"]["config"];
    config["access_key"] = id.clone().into();
    config["secret_key"] = secret.clone().into();
    config["token"] = token.clone().into();
    fs::write(&path, serde_json::to_vec_pretty(&saved).unwrap()).unwrap();
    row.sb.secrets.extend([id, secret, token]);
    Expect::plan(true)
}

fn expired_session_token(v: Version) {
    check_row(v.row(false), expired_session);
}

/// A valid saved key costs one STS request (tfshim's own), and `shim doctor` names the terraform
/// version as terraform says it, without CloudRail's `o:`.
fn valid_key_one_request_and_doctor(v: Version) {
    let row = v.row(false);
    row.init(&[]);
    row.sb.set_ambient(Some(&row.sb.key));
    // Which versions record what (measured here on all six): ≤ 1.0 write `modules` and no
    // `terraform_version`, 1.1+ the reverse — what the repair's upgrade rule relies on.
    let saved: Value = serde_json::from_str(&row.sb.saved_text()).unwrap();
    match v {
        Version::Old(_) => {
            assert!(saved["modules"].is_array(), "{saved}");
            assert_eq!(saved["terraform_version"], Value::Null);
        }
        Version::V1_11 => {
            assert_eq!(saved["modules"], Value::Null);
            assert!(saved["terraform_version"].is_string(), "{saved}");
        }
    }
    let before = row.sb.sts.tfshim_calls();
    let mut cmd = row.sb.tfshim_cmd();
    cmd.current_dir(&row.sb.work);
    row.sb
        .run(cmd, &["plan", "-input=false", "-no-color"])
        .success();
    assert_eq!(
        row.sb.sts.tfshim_calls() - before,
        1,
        "tfshim asked STS other than once about a valid key"
    );
    let doctor = row.sb.tfshim(&["shim", "doctor"]);
    doctor.code_is(0).stdout_has(&v.says());
    assert!(
        !doctor.stdout().contains("o:Terraform"),
        "doctor shows CloudRail's prefix:\n{}",
        doctor.stdout()
    );
}

// ---- upgrades: `shim reinit` (#21 item 2) ------------------------------------------------------------

/// Makes `row` run `bin` from now on (first on PATH for tfshim too): the user upgraded terraform.
fn upgrade(row: &mut Row, bin: std::path::PathBuf) {
    let mut path = vec![bin.parent().unwrap().to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    row.sb.env("PATH", std::env::join_paths(path).unwrap());
    row.bin = Some(bin);
}

/// A partial root saved by 0.12.29 with the key and the location given by `-backend-config` flags
/// only (the seed user's way), then terraform upgraded to 0.13.4.
fn saved_by_0_12_then_upgraded() -> Row {
    let mut row = Version::Old(terraforms::V0_12).row(true);
    row.init(&row.location_args());
    let saved: Value = serde_json::from_str(&row.sb.saved_text()).unwrap();
    // ≤ 1.0 write `modules` and no `terraform_version` (1.1+ the reverse): nothing tells 0.12's
    // file from 0.13's.
    assert_eq!(saved["terraform_version"], Value::Null);
    assert!(saved["modules"].is_array(), "0.12 writes `modules`");
    upgrade(&mut row, terraforms::binary(terraforms::V0_13));
    row
}

/// `terraform plan` (or tfshim's) in the root, on the row's terraform.
fn plan(row: &Row, shim: bool) -> crate::support::Run {
    let args = ["plan", "-input=false", "-no-color"].map(String::from);
    if shim {
        let mut cmd = row.sb.tfshim_cmd();
        cmd.current_dir(&row.sb.work);
        row.sb.run(cmd, &args)
    } else {
        row.terraform_in(&row.sb.work, &args)
    }
}

/// The saved settings that say which state is addressed, and the credentials.
fn saved_config(row: &Row) -> Value {
    row.sb.saved_backend()["config"].clone()
}

#[track_caller]
fn assert_same_location(before: &Value, after: &Value) {
    for k in [
        "bucket",
        "key",
        "region",
        "endpoint",
        "sts_endpoint",
        "iam_endpoint",
    ] {
        assert_eq!(before[k], after[k], "`{k}` changed");
    }
}

/// 0.12 → 0.13 with a rotation at the same time: tfshim's repair sees a new hash (0.13 records no
/// version either), puts the file back and names `tfshim shim reinit`, which heals.
#[test]
fn reinit_after_upgrade_with_rotation() {
    let mut row = saved_by_0_12_then_upgraded();
    row.sb.rotate();
    let before = row.sb.saved_bytes();
    let config = saved_config(&row);
    let refused = plan(&row, true);
    refused.code_is(1).stderr_has("tfshim shim reinit");
    assert!(
        !refused
            .tfshim_lines()
            .iter()
            .any(|l| l.contains("Run `terraform init -reconfigure`")),
        "a bare init -reconfigure is advised:\n{}",
        refused.tfshim_lines().join("\n")
    );
    assert_eq!(
        row.sb.saved_bytes(),
        before,
        "the refused repair changed the file"
    );
    // Invoked as `terraform` (the seed user's link), it names the command as they would type it.
    #[cfg(unix)]
    {
        let link = row.sb.root.path().join("bin/terraform");
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(crate::support::tfshim_bin(), &link).unwrap();
        let mut cmd = row.sb.command(&link);
        cmd.env("TFSHIM_TERRAFORM", row.binary());
        row.sb
            .run(cmd, &["plan", "-input=false", "-no-color"])
            .code_is(1)
            .stderr_has("run `terraform shim reinit`");
        assert_eq!(row.sb.saved_bytes(), before);
    }
    let hash = row.sb.saved_backend()["hash"].clone();
    let reinit = row.sb.tfshim(&["shim", "reinit"]);
    reinit.code_is(0).stdout_has("re-initialised");
    let after = saved_config(&row);
    assert_same_location(&config, &after);
    assert_eq!(after["access_key"], Value::Null, "the stale key is gone");
    assert_ne!(
        row.sb.saved_backend()["hash"],
        hash,
        "0.13 hashes the block anew"
    );
    plan(&row, false).success();
    plan(&row, true).success();
    assert!(row.sb.tfshim_leftovers().is_empty());
}

/// 0.12 → 0.13 with a valid key: plain 0.13 asks for an init (which, without the first init's
/// flags, fails); tfshim is no worse, and `shim reinit` heals with the key's fallback checked first.
#[test]
fn reinit_after_upgrade_without_rotation() {
    let mut row = saved_by_0_12_then_upgraded();
    let config = saved_config(&row);
    let plain = plan(&row, false);
    assert_ne!(plain.code(), Some(0), "0.13 needs a reinit after 0.12");
    plan(&row, true).code_is(plain.code().unwrap());
    // A plain `init` without the first init's flags fails, as the issue measured.
    let bare = row.terraform_in(&row.sb.work, &["init".into(), "-input=false".into()]);
    assert_ne!(bare.code(), Some(0));
    // No working credentials to fall back to: the key is kept, nothing changed.
    let before = row.sb.saved_bytes();
    row.sb
        .tfshim(&["shim", "reinit"])
        .code_is(4)
        .stdout_has("not re-initialised");
    assert_eq!(row.sb.saved_bytes(), before);
    // The key passed after `--` is saved instead.
    let key = row.sb.key.clone();
    let mut args: Vec<String> = ["shim", "reinit", ".", "--"].map(String::from).to_vec();
    args.extend(Sandbox::key_args(&key));
    row.sb.tfshim(&args).code_is(0);
    let after = saved_config(&row);
    assert_same_location(&config, &after);
    assert_eq!(after["access_key"], Value::from(key.id.clone()));
    plan(&row, false).success();
    // Again, with the key in the shared file this time: removed, terraform uses the file.
    row.sb.set_ambient(Some(&key));
    row.sb.tfshim(&["shim", "reinit"]).code_is(0);
    assert_eq!(saved_config(&row)["access_key"], Value::Null);
    assert_same_location(&config, &saved_config(&row));
    plan(&row, true).success();
    // Only the hash may change: a setting given after `--` that moves the root to other state is
    // rolled back, byte for byte.
    let before = row.sb.saved_bytes();
    row.sb
        .tfshim(&[
            "shim",
            "reinit",
            "--",
            "-backend-config=key=elsewhere/terraform.tfstate",
        ])
        .code_is(1)
        .stdout_has("came out different: key");
    assert_eq!(row.sb.saved_bytes(), before, "reinit moved the root");
    let _ = &mut row;
}

// ---- the seed user, end to end (#21 item 3) -------------------------------------------------------

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Saved by 0.12.29 with the keys given by `-backend-config` and the bucket and key only from flags,
/// `.terraform` committed to git (as the seed's user did), then the key rotated: `tfshim plan`
/// heals, says that the saved file is tracked by git, and changes nothing else in the repository.
#[test]
fn seed_user_on_0_12_with_data_dir_in_git() {
    let mut row = Version::Old(terraforms::V0_12).row(true);
    row.init(&row.location_args());
    let work = row.sb.work.clone();
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A", "-f", "."]);
    git(&work, &["commit", "-qm", "the seed user's root"]);
    let config = saved_config(&row);
    row.sb.rotate();
    let mut cmd = row.sb.tfshim_cmd();
    cmd.current_dir(&work).env("TFSHIM_QUIET", "0");
    let healed = row.sb.run(cmd, &["plan", "-input=false", "-no-color"]);
    healed
        .success()
        .stderr_has("re-initialising the backend without it")
        .stderr_has("is tracked by git");
    let after = saved_config(&row);
    assert_same_location(&config, &after);
    assert_eq!(after["access_key"], Value::Null);
    // The saved file is what the repair rewrote; nothing else is changed. The repair's lock file
    // stays beside it (`heal/datadir.rs`: permanent, so that no two repairs can hold locks on
    // different files) and shows as untracked here — the one other trace, reported on #21.
    let status = git(&work, &["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(
        status.lines().collect::<Vec<_>>(),
        [
            " M .terraform/terraform.tfstate",
            "?? .terraform/tfshim.lock"
        ],
        "the repository changed beyond the saved file:\n{status}"
    );
}

/// Doctor names `shim reinit` where it can tell that another terraform version wrote the saved
/// file: saved by 1.0.3 (no `terraform_version`), run by 1.11; not where it cannot (0.12 → 0.13).
#[test]
fn doctor_names_reinit_after_an_upgrade() {
    let mut row = Version::Old(terraforms::V1_0_3).row(true);
    row.init(&row.location_args());
    row.sb.set_ambient(Some(&row.sb.key));
    let doctor = row.sb.tfshim(&["shim", "doctor"]);
    doctor.code_is(0);
    assert!(
        !doctor.stdout().contains("shim reinit"),
        "{}",
        doctor.stdout()
    );
    upgrade(&mut row, Tf::V1_11.binary());
    let doctor = row.sb.tfshim(&["shim", "doctor", "--json"]);
    doctor.code_is(0);
    let j: Value = serde_json::from_str(&doctor.stdout()).unwrap();
    let named = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "saved-by-other-version")
        .unwrap_or_else(|| panic!("no saved-by-other-version warning: {j}"));
    assert!(
        named["message"]
            .as_str()
            .unwrap()
            .contains("`tfshim shim reinit`"),
        "{named}"
    );
    let row = saved_by_0_12_then_upgraded();
    let doctor = row.sb.tfshim(&["shim", "doctor"]);
    assert!(
        !doctor.stdout().contains("shim reinit"),
        "{}",
        doctor.stdout()
    );
}

/// Saved by 0.12.29 (no `terraform_version`), then terraform 1.11 and a rotation at once: the file
/// that comes back records a version, so the new hash is known to be the upgrade's and tfshim heals
/// on its own, every saved setting kept.
#[test]
fn upgrade_from_0_12_to_1_11_with_rotation_heals() {
    let mut row = Version::Old(terraforms::V0_12).row(true);
    row.init(&row.location_args());
    let config = saved_config(&row);
    upgrade(&mut row, Tf::V1_11.binary());
    row.sb.rotate();
    plan(&row, true)
        .success()
        .stderr_has("re-initialising the backend without it");
    let after = saved_config(&row);
    assert_same_location(&config, &after);
    assert_eq!(after["access_key"], Value::Null);
    plan(&row, false).success();
}

/// `shim reinit` is in `--help` and in every completion script.
#[test]
fn reinit_is_in_help_and_completions() {
    let sb = Sandbox::new(crate::support::Layout::default());
    sb.tfshim(&["shim", "--help"])
        .success()
        .stdout_has("reinit")
        .stdout_has("After a terraform upgrade");
    sb.tfshim(&["shim", "reinit", "--help"])
        .success()
        .stdout_has("INIT_ARGS");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        sb.tfshim(&["shim", "completions", shell])
            .success()
            .stdout_has("reinit");
    }
}

/// `shim forget-keys` and `shim sweep --fix` run terraform in the root, not with `-chdir` (which
/// 0.12–0.14 do not have): both work on the seed user's 0.12.29, for a root named by path.
#[test]
fn forget_keys_and_sweep_fix_on_0_12() {
    let row = Version::Old(terraforms::V0_12).row(true);
    row.init(&row.location_args());
    let config = saved_config(&row);
    row.sb.set_ambient(Some(&row.sb.key));
    let mut cmd = row.sb.tfshim_cmd();
    cmd.current_dir(row.sb.root.path());
    row.sb
        .run(cmd, &["shim", "forget-keys", "work"])
        .code_is(0)
        .stdout_has("removed the saved key");
    assert_eq!(saved_config(&row)["access_key"], Value::Null);
    assert_same_location(&config, &saved_config(&row));
    plan(&row, false).success();

    let mut row = Version::Old(terraforms::V0_12).row(true);
    row.init(&row.location_args());
    let config = saved_config(&row);
    row.sb.rotate();
    let root = row.sb.root.path().display().to_string();
    row.sb.tfshim(&["shim", "sweep", "--fix", &root]).code_is(0);
    assert_eq!(saved_config(&row)["access_key"], Value::Null);
    assert_same_location(&config, &saved_config(&row));
    plan(&row, false).success();
}
