//! The reactive fallback: what the preflight cannot see (an STS slower than tfshim's timeout),
//! terraform's own failure reveals; tfshim then repairs and retries `init`/`plan` once.

use std::time::Duration;

use crate::support::{Layout, Sandbox};

/// A stale saved key behind an STS that answers in 3 s, while tfshim's preflight waits 1 s.
fn slow_stale() -> Sandbox {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    sb.sts.delay(Duration::from_secs(3));
    sb.env("TFSHIM_STS_TIMEOUT", "1");
    sb.record_terraform_calls();
    sb
}

#[test]
fn reactive_fallback_heals_what_the_preflight_could_not_see() {
    let sb = slow_stale();
    let before = sb.saved_backend();
    let run = sb.tfshim(&["plan", "-input=false"]);
    run.success()
        .stderr_has("(timeout); running terraform unchanged")
        .stderr_has("re-initialising the backend without it and running the command again")
        // terraform's own error was shown live before the retry.
        .stderr_has("GetCallerIdentity");
    assert_eq!(sb.reconfigures(), 1, "{:?}", sb.terraform_calls());
    let plans = sb
        .terraform_calls()
        .iter()
        .filter(|c| c.starts_with("plan"))
        .count();
    assert_eq!(plans, 2, "the plan ran twice: failed, then retried");
    let after = sb.saved_backend();
    assert!(after["config"]["access_key"].is_null());
    assert_eq!(before["hash"], after["hash"]);
}

#[test]
fn a_failing_apply_is_never_retried() {
    let sb = slow_stale();
    let before = sb.saved_bytes();
    let run = sb.tfshim(&["apply", "-input=false", "-auto-approve"]);
    run.code_is(1).stderr_lacks("running the command again");
    assert_eq!(sb.terraform_calls().len(), 1, "{:?}", sb.terraform_calls());
    assert_eq!(sb.saved_bytes(), before);
}

#[test]
fn retry_can_be_turned_off() {
    let mut sb = slow_stale();
    sb.env("TFSHIM_RETRY", "0");
    let before = sb.saved_bytes();
    sb.tfshim(&["plan", "-input=false"]).code_is(1);
    assert_eq!(sb.reconfigures(), 0);
    assert_eq!(sb.saved_bytes(), before);
}
