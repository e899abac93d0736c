//! No path in tfshim aborts the process (#12 item 1).
//!
//! CA bundles: `AWS_CA_BUNDLE` or the backend's `custom_ca_bundle`, read the way terraform reads them. A bundle with a bad block among good ones still serves (terraform skips the
//! block); one with no usable certificate, or a path that cannot be read, gives no verdict: one line,
//! and terraform runs unchanged. Whatever the bundle holds, tfshim (`plan` and `shim doctor`) never
//! aborts. moto speaks plain HTTP, but the HTTPS client, trust store included, is built for every
//! check, which is where the abort was.
//!
//! The panic boundary: a panic in the preflight runs terraform unchanged, one in an STS check is no
//! verdict; neither shows the panic's message (which here holds the saved secret).

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{Layout, Run, Sandbox};

/// The system's bundle (the usual reason to set `AWS_CA_BUNDLE`: it plus a corporate root).
fn system_bundle() -> Vec<u8> {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .find_map(|p| fs::read(p).ok())
    .expect("no system CA bundle found (install ca-certificates)")
}

/// Blocks that look like certificates and are not: bad base64, and good base64 that is no
/// certificate.
const BAD_BLOCKS: &str =
    "-----BEGIN CERTIFICATE-----\nMIIB!!not*base64\n-----END CERTIFICATE-----\n\
                          -----BEGIN CERTIFICATE-----\naGVsbG8sIEkgYW0gbm90IGEgY2VydGlmaWNhdGU=\n\
                          -----END CERTIFICATE-----\n";

#[derive(Clone, Copy, Debug)]
enum Bundle {
    /// The system bundle with the bad blocks in the middle of it.
    BadBlock,
    /// Only the bad blocks.
    NoUsableCertificate,
    /// A path that does not exist.
    Unreadable,
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Environment,
    BackendAttribute,
}

/// A root whose saved backend holds a valid key, with the bundle in place (the backend attribute is
/// saved while the file still holds the system bundle: terraform's own init needs a usable one).
fn root_with(bundle: Bundle, via: Via) -> (Sandbox, PathBuf) {
    let mut sb = Sandbox::new(Layout::default());
    sb.set_ambient(None);
    let path = sb.root.path().join("ca bundle.pem");
    fs::write(&path, system_bundle()).unwrap();
    match via {
        Via::Environment => {
            sb.init_with_saved_key(&[]);
            sb.env("AWS_CA_BUNDLE", &path);
        }
        Via::BackendAttribute => {
            sb.init_with_saved_key(&[format!(
                "-backend-config=custom_ca_bundle={}",
                path.display()
            )]);
            assert_eq!(
                sb.saved_backend()["config"]["custom_ca_bundle"],
                path.to_str().unwrap()
            );
        }
    }
    write_bundle(&path, bundle);
    (sb, path)
}

fn write_bundle(path: &Path, bundle: Bundle) {
    match bundle {
        Bundle::BadBlock => {
            let system = system_bundle();
            let half = system.len() / 2;
            let cut = half
                + system[half..]
                    .windows(6)
                    .position(|w| w == b"-----B")
                    .unwrap();
            let mut bytes = system[..cut].to_vec();
            bytes.extend_from_slice(BAD_BLOCKS.as_bytes());
            bytes.extend_from_slice(&system[cut..]);
            fs::write(path, bytes).unwrap();
        }
        Bundle::NoUsableCertificate => fs::write(path, BAD_BLOCKS).unwrap(),
        Bundle::Unreadable => fs::remove_file(path).unwrap(),
    }
}

/// terraform's stderr, and tfshim's without its own lines.
fn without_tfshim_lines(run: &Run) -> String {
    run.stderr()
        .lines()
        .filter(|l| !l.starts_with("tfshim:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn runs_as_terraform_alone(bundle: Bundle, via: Via) {
    let (sb, path) = root_with(bundle, via);
    let before = sb.saved_bytes();
    let alone = sb.terraform(&["plan", "-input=false", "-no-color"]);
    let shim = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    let case = format!("{bundle:?} via {via:?}");
    assert_eq!(
        shim.code(),
        alone.code(),
        "{case}: exit codes differ\n{}",
        shim.stderr()
    );
    assert_eq!(shim.stdout(), alone.stdout(), "{case}: stdout differs");
    assert_eq!(
        without_tfshim_lines(&shim),
        without_tfshim_lines(&alone),
        "{case}: terraform's stderr differs"
    );
    let lines = shim.tfshim_lines();
    match bundle {
        // The bundle serves: the key is checked (valid), nothing to say.
        Bundle::BadBlock => assert!(lines.is_empty(), "{case}: {lines:?}"),
        // No verdict: one line naming the bundle.
        Bundle::NoUsableCertificate | Bundle::Unreadable => {
            assert_eq!(lines.len(), 1, "{case}: {lines:?}");
            assert!(
                lines[0].contains(&path.display().to_string())
                    && lines[0].contains("running terraform unchanged"),
                "{case}: {}",
                lines[0]
            );
        }
    }
    assert_eq!(sb.saved_bytes(), before, "{case}: the saved file changed");
    // doctor reports instead of aborting: a verdict when the bundle serves, else none.
    let doctor = sb.tfshim(&["shim", "doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&doctor.stdout()).unwrap_or_else(|e| {
        panic!(
            "{case}: doctor printed no report ({e}):\n{}",
            doctor.stderr()
        )
    });
    let verdict = &report["saved_credentials"]["verdict"];
    match bundle {
        Bundle::BadBlock => {
            doctor.code_is(0);
            assert_eq!(verdict, "valid", "{case}");
        }
        _ => assert_eq!(verdict, "unverified", "{case}: {report}"),
    }
}

#[test]
fn bad_block_in_aws_ca_bundle() {
    runs_as_terraform_alone(Bundle::BadBlock, Via::Environment);
}

#[test]
fn bad_block_in_custom_ca_bundle() {
    runs_as_terraform_alone(Bundle::BadBlock, Via::BackendAttribute);
}

#[test]
fn aws_ca_bundle_without_a_usable_certificate() {
    runs_as_terraform_alone(Bundle::NoUsableCertificate, Via::Environment);
}

#[test]
fn custom_ca_bundle_without_a_usable_certificate() {
    runs_as_terraform_alone(Bundle::NoUsableCertificate, Via::BackendAttribute);
}

#[test]
fn unreadable_aws_ca_bundle() {
    runs_as_terraform_alone(Bundle::Unreadable, Via::Environment);
}

#[test]
fn unreadable_custom_ca_bundle() {
    runs_as_terraform_alone(Bundle::Unreadable, Via::BackendAttribute);
}

/// Skipping a bad block is not giving up: with the rest of the bundle tfshim still heals.
#[test]
fn a_bundle_with_a_bad_block_still_heals() {
    let (mut sb, _) = root_with(Bundle::BadBlock, Via::Environment);
    let before = sb.saved_backend();
    sb.rotate();
    sb.terraform(&["plan", "-input=false"]).code_is(1);
    sb.tfshim(&["plan", "-input=false"])
        .success()
        .stderr_has("re-initialising the backend without it");
    let after = sb.saved_backend();
    assert!(after["config"]["access_key"].is_null());
    assert_eq!(before["hash"], after["hash"]);
}

#[test]
fn a_panic_in_the_preflight_runs_terraform_unchanged() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.set_ambient(None);
    let before = sb.saved_bytes();
    let alone = sb.terraform(&["plan", "-input=false", "-no-color"]);
    sb.env("TFSHIM_TEST_PANIC", "preflight");
    // The injected panic's message holds the saved secret: `Sandbox::run` fails if it is shown.
    let shim = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    assert_eq!(shim.code(), alone.code(), "{}", shim.stderr());
    assert_eq!(shim.stdout(), alone.stdout());
    let lines = shim.tfshim_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("internal error at src/heal/preflight")
            && lines[0].ends_with("running terraform unchanged"),
        "{}",
        lines[0]
    );
    assert_eq!(sb.saved_bytes(), before);
}

#[test]
fn a_panic_inside_a_repair_leaves_a_checked_file_and_no_backup() {
    // The panic comes after the repair's `init -reconfigure` rewrote the saved file and before its
    // invariants were checked: recovery must check them (and remove the backup) before terraform
    // runs on that file.
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_backend();
    sb.rotate();
    sb.env("TFSHIM_TEST_PANIC", "repair");
    let shim = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    shim.success()
        .stderr_has("internal error at src/heal/repair.rs")
        .stderr_has("running terraform unchanged");
    assert!(
        sb.tfshim_leftovers().is_empty(),
        "{:?}",
        sb.tfshim_leftovers()
    );
    let after = sb.saved_backend();
    assert!(after["config"]["access_key"].is_null(), "{after}");
    assert_eq!(after["hash"], before["hash"]);
    assert_eq!(after["config"]["key"], before["config"]["key"]);
}

#[test]
fn a_panic_in_an_sts_check_is_no_verdict() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.set_ambient(None);
    sb.env("TFSHIM_TEST_PANIC", "sts");
    let shim = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    shim.success();
    let lines = shim.tfshim_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("could not check the saved backend key")
            && lines[0].contains("internal error at src/aws/sts.rs:")
            && lines[0].ends_with("running terraform unchanged"),
        "{}",
        lines[0]
    );
    // doctor and sweep still report, with no verdict on the key.
    let doctor = sb.tfshim(&["shim", "doctor", "--json"]);
    doctor.code_is(0);
    let report: serde_json::Value = serde_json::from_str(&doctor.stdout()).unwrap();
    assert_eq!(
        report["saved_credentials"]["verdict"], "unverified",
        "{report}"
    );
    let sweep = sb.tfshim(&["shim", "sweep", "--json"]);
    sweep.code_is(0);
    let report: serde_json::Value = serde_json::from_str(&sweep.stdout()).unwrap();
    assert_eq!(report["roots"][0]["verdict"], "unverified", "{report}");
}

/// The boundary catches only if panics unwind: the release build must keep them so.
#[test]
fn the_release_profile_unwinds() {
    let manifest = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .expect("a release profile")
        .split("\n[")
        .next()
        .unwrap();
    let panic: Vec<&str> = release
        .lines()
        .filter(|l| l.trim_start().starts_with("panic"))
        .collect();
    assert_eq!(panic, ["panic = \"unwind\""], "{release}");
}
