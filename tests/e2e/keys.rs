//! Keys that no repair of a stale key should touch the way it does (#11 items 5 and 6): a key written
//! in the `.tf` backend block, and the safe removal of saved keys before a rotation
//! (`tfshim shim forget-keys`).

use std::fs;

use serde_json::Value;

use crate::support::{Layout, Sandbox};

/// `main.tf` with the sandbox's current key written in its backend block.
fn key_in_tf_block(sb: &Sandbox) {
    let tf = sb.main_tf(Layout::default()).replace(
        "    region = ",
        &format!(
            "    access_key = \"{}\"\n    secret_key = \"{}\"\n    region = ",
            sb.key.id, sb.key.secret
        ),
    );
    fs::write(sb.work.join("main.tf"), tf).unwrap();
}

/// #11 item 5: a key written in the `.tf` backend block is not a saved `-backend-config` key: no
/// reconfigure can remove it. tfshim says where it is and what to do, attempts no repair, and leaves
/// terraform's outcome as it is; doctor says `cannot-repair` with that reason.
#[test]
fn key_written_in_the_tf_block_is_named_not_repaired() {
    let mut sb = Sandbox::new(Layout::default());
    key_in_tf_block(&sb);
    sb.terraform(&["init", "-input=false"]).success();
    assert!(sb.saved_text().contains(&sb.key.id));
    // Before the rotation the warning already tells the truth about where the key is.
    let doctor = sb.tfshim(&["shim", "doctor", "--json"]);
    doctor.code_is(0);
    let j: Value = serde_json::from_str(&doctor.stdout()).unwrap();
    let warning = j["warnings"][0]["message"].as_str().unwrap().to_owned();
    assert!(
        warning.contains("written in the backend block in") && warning.contains("main.tf"),
        "{warning}"
    );
    assert!(!warning.contains("-backend-config=access_key"), "{warning}");

    sb.rotate();
    let before = sb.saved_bytes();
    let doctor = sb.tfshim(&["shim", "doctor", "--json"]);
    doctor.code_is(4);
    let j: Value = serde_json::from_str(&doctor.stdout()).unwrap();
    assert_eq!(j["action"], "cannot-repair", "{j}");
    let reason = j["action_reason"].as_str().unwrap();
    assert!(reason.contains("main.tf"), "{reason}");

    sb.record_terraform_calls();
    let plain = sb.terraform(&["plan", "-input=false", "-no-color"]);
    let run = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    run.code_is(plain.code().unwrap())
        .stderr_has("it is written in the backend block in")
        .stderr_has("main.tf")
        .stderr_lacks("re-initialising the backend without it");
    assert_eq!(
        sb.reconfigures(),
        0,
        "no doomed repair: {:?}",
        sb.terraform_calls()
    );
    assert_eq!(sb.saved_bytes(), before);
}

/// A root whose `key` was overridden at `init` (the state lives elsewhere than `main.tf` says), with
/// the seed's keys saved and one resource applied there.
fn overridden_root(sb: &Sandbox) -> String {
    let other = format!("{}/overridden.tfstate", sb.user);
    sb.init_with_saved_key(&[format!("-backend-config=key={other}")]);
    sb.terraform(&["apply", "-input=false", "-auto-approve"])
        .success();
    other
}

/// #11 item 6: the `plaintext-keys` warning points at `tfshim shim forget-keys`, which removes the
/// saved keys before any rotation, with the repair's preserved settings: the root whose `key` was
/// overridden at `init` keeps addressing the same state (a bare `init -reconfigure`, the old advice,
/// would move it to `main.tf`'s key).
#[test]
fn forget_keys_keeps_an_overridden_root_on_its_state() {
    let sb = Sandbox::new(Layout::default());
    let other = overridden_root(&sb);
    let doctor = sb.tfshim(&["shim", "doctor", "--json"]);
    let j: Value = serde_json::from_str(&doctor.stdout()).unwrap();
    let warning = j["warnings"][0]["message"].as_str().unwrap();
    assert!(warning.contains("`tfshim shim forget-keys`"), "{warning}");

    // The credential chain in place (the same key in the shared file), nothing rotated yet.
    sb.set_ambient(Some(&sb.key));
    let before = sb.saved_backend();
    let run = sb.tfshim(&["shim", "forget-keys"]);
    run.success();
    assert!(
        run.stdout()
            .contains("removed the saved key; terraform now uses profile default"),
        "{}",
        run.stdout()
    );
    let after = sb.saved_backend();
    assert!(!sb.saved_text().contains(&sb.key.id), "the key is gone");
    assert_eq!(after["hash"], before["hash"]);
    assert_eq!(after["config"]["key"], Value::from(other));
    for (k, v) in before["config"].as_object().unwrap() {
        if !["access_key", "secret_key", "token"].contains(&k.as_str()) {
            assert_eq!(&after["config"][k], v, "{k} changed");
        }
    }
    // Same state: the applied resource is there, nothing to change.
    sb.terraform(&["plan", "-input=false", "-detailed-exitcode"])
        .code_is(0);
    // Nothing left to forget.
    sb.tfshim(&["shim", "forget-keys"])
        .success()
        .stdout_has("no static S3 key is saved");
    // The old advice, a bare `init -reconfigure`, moves the root to main.tf's key: other state,
    // where the applied resource is not (plan wants to create it).
    sb.terraform(&["init", "-reconfigure", "-input=false"])
        .success();
    assert_eq!(
        sb.saved_backend()["config"]["key"],
        Value::from(sb.state_key.clone())
    );
    sb.terraform(&["plan", "-input=false", "-detailed-exitcode"])
        .code_is(2);
}

/// Without working fallback credentials the key is what keeps terraform working: it is kept, exit 4.
#[test]
fn forget_keys_keeps_the_key_without_working_fallback_credentials() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let before = sb.saved_bytes();
    sb.record_terraform_calls();
    let run = sb.tfshim(&["shim", "forget-keys"]);
    run.code_is(4)
        .stdout_has("kept the saved key: terraform would have no working credentials");
    assert_eq!(sb.saved_bytes(), before);
    assert!(sb.terraform_calls().is_empty(), "no reconfigure was tried");
}

/// `--all`: every root under a directory, each with its own settings; a root without a saved key is
/// left alone.
#[test]
fn forget_keys_all_roots_under_a_directory() {
    let mut sb = Sandbox::new(Layout::default());
    let other = overridden_root(&sb);
    sb.set_ambient(Some(&sb.key));
    // A second root beside it, initialised with the credential chain: no key saved there.
    let keyless = sb.root.path().join("keyless");
    fs::create_dir_all(&keyless).unwrap();
    let tf = sb
        .main_tf(Layout::default())
        .replace(&sb.state_key, "keyless/terraform.tfstate");
    fs::write(keyless.join("main.tf"), tf).unwrap();
    let mut cmd = sb.terraform_cmd();
    cmd.current_dir(&keyless);
    sb.run(cmd, &["init", "-input=false"]).success();
    let keyless_before = fs::read(keyless.join(".terraform/terraform.tfstate")).unwrap();
    // TF_DATA_DIR is per invocation: --all reads `.terraform`, whatever the shell exports.
    sb.env("TF_DATA_DIR", "elsewhere");
    let mut cmd = sb.tfshim_cmd();
    cmd.current_dir(sb.root.path());
    let run = sb.run(cmd, &["shim", "forget-keys", ".", "--all"]);
    run.success()
        .stdout_has("removed the saved key")
        .stdout_has("2 roots, 1 with a saved key, 1 removed");
    assert!(!sb.saved_text().contains(&sb.key.id));
    assert_eq!(sb.saved_backend()["config"]["key"], Value::from(other));
    assert_eq!(
        fs::read(keyless.join(".terraform/terraform.tfstate")).unwrap(),
        keyless_before
    );
}
