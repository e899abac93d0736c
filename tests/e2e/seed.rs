//! The seed incident, reproduced with plain terraform: this is the failure tfshim exists to prevent.

use crate::support::{Layout, Sandbox};

#[test]
fn plain_terraform_fails_after_rotation() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.terraform(&["plan", "-input=false", "-no-color"])
        .success();
    let old = sb.rotate();
    // The new key works (it is in the shared credentials file), yet terraform keeps using the saved,
    // deleted one.
    assert!(sb.saved_text().contains(&old.id));
    let run = sb.terraform(&["plan", "-input=false", "-no-color"]);
    run.code_is(1)
        .stderr_has("GetCallerIdentity")
        .stderr_has("StatusCode: 403");
    // moto's error body yields `UnknownError` in terraform (docs/terraform-backend.md, "STS error bodies"); real STS says
    // `InvalidClientTokenId`.
    let err = run.stderr();
    assert!(
        err.contains("InvalidClientTokenId") || err.contains("UnknownError"),
        "{err}"
    );
    // The manual fix of the seed, done by hand, loses nothing here only because bucket and key are in
    // the .tf; `init` alone does not help.
    sb.terraform(&["init", "-input=false", "-no-color"])
        .code_is(1)
        .stderr_has("GetCallerIdentity");
}
