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
