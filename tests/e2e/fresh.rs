//! #11 item 7: fresh keys look stale for a few seconds (IAM is eventually consistent). When the
//! fallback credentials are rejected, tfshim asks again with backoff for `TFSHIM_FRESH_KEY_WAIT`
//! before concluding that none work; a network failure is never asked again. The STS proxy answers
//! 403 `InvalidClientTokenId` to the new key for a while (to tfshim and terraform alike), in front of
//! the real moto.

use std::time::{Duration, Instant};

use crate::support::{Fault, Key, Layout, Sandbox};

/// Real STS's answer to a key it does not (yet) know.
fn rejected() -> Fault {
    Fault::Status(
        403,
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>InvalidClientTokenId</Code><Message>The security token included in the request is \
         invalid.</Message></Error><RequestId>fresh</RequestId></ErrorResponse>"
            .into(),
    )
}

/// A root whose saved key was just rotated away; the new key is in the credentials file.
fn rotated() -> (Sandbox, Key) {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    let new = sb.key.clone();
    (sb, new)
}

#[test]
fn a_fresh_fallback_key_is_asked_again_until_it_works() {
    let (sb, new) = rotated();
    // The new key is rejected for 3 s from its first use.
    sb.sts
        .fault_for_key(&new.id, Some(Duration::from_secs(3)), rejected());
    let start = Instant::now();
    let run = sb.tfshim(&["plan", "-input=false"]);
    run.success()
        .stderr_has("asking again for up to 10s (TFSHIM_FRESH_KEY_WAIT)")
        .stderr_has("re-initialising the backend without it");
    assert!(
        start.elapsed() >= Duration::from_millis(2500),
        "healed before the key could work: {:?}",
        start.elapsed()
    );
    assert!(
        sb.sts.requests_signed_by(&new.id) >= 3,
        "asked again, with backoff"
    );
    let saved = sb.saved_backend();
    assert!(saved["config"]["access_key"].is_null(), "repaired");
}

#[test]
fn a_key_that_stays_rejected_is_given_up_after_the_window() {
    let (mut sb, new) = rotated();
    sb.sts.fault_for_key(&new.id, None, rejected());
    sb.env("TFSHIM_FRESH_KEY_WAIT", "1.5");
    let before = sb.saved_bytes();
    let start = Instant::now();
    let run = sb.tfshim(&["plan", "-input=false"]);
    let took = start.elapsed();
    run.code_is(1)
        .stderr_has("asking again for up to 1.5s")
        .stderr_has("no working credentials");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "took {took:?}"
    );
    // The first check, then one after 0.5 s and one after 1 s more: the window is 1.5 s.
    assert_eq!(sb.sts.requests_signed_by(&new.id), 3);
    assert_eq!(sb.saved_bytes(), before);
}

#[test]
fn the_wait_can_be_turned_off() {
    let (mut sb, new) = rotated();
    sb.sts.fault_for_key(&new.id, None, rejected());
    sb.env("TFSHIM_FRESH_KEY_WAIT", "0");
    sb.tfshim(&["plan", "-input=false"])
        .code_is(1)
        .stderr_lacks("asking again")
        .stderr_has("no working credentials");
    assert_eq!(sb.sts.requests_signed_by(&new.id), 1);
}

#[test]
fn a_network_failure_is_never_asked_again() {
    let (sb, new) = rotated();
    // The fallback check's connection is dropped: no verdict, so nothing to wait for.
    sb.sts.fault_for_key(&new.id, None, Fault::Close);
    let before = sb.saved_bytes();
    let start = Instant::now();
    let run = sb.tfshim(&["plan", "-input=false"]);
    run.stderr_lacks("asking again")
        .stderr_has("could not be checked");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(sb.sts.requests_signed_by(&new.id), 1);
    assert_eq!(sb.saved_bytes(), before);
}
