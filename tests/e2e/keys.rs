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
