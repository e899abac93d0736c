//! The fault matrix (issue 5): whatever goes wrong around it, tfshim ends in bounded time, terraform's
//! outcome is what it would have been without tfshim (or better, when tfshim repaired), the saved
//! backend is byte-identical or correctly repaired, and no secret reaches any output (every run
//! through `Sandbox::run` is scanned).

use std::fs;
use std::time::{Duration, Instant};

use crate::support::{Fault, Layout, Run, Sandbox};

const BOUND: Duration = Duration::from_secs(30);

/// Runs `tfshim plan` and checks the bound.
#[track_caller]
fn timed_plan(sb: &Sandbox) -> Run {
    let start = Instant::now();
    let run = sb.tfshim(&["plan", "-input=false", "-no-color"]);
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
    run
}

// ---- STS misbehaving (for tfshim's requests only: terraform's reach moto and succeed) ----

#[track_caller]
fn sts_fault(fault: Fault, reason: &str) {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.env("TFSHIM_STS_TIMEOUT", "1");
    sb.sts.fault_for_tfshim(fault);
    let before = sb.saved_bytes();
    let run = timed_plan(&sb);
    run.success();
    let lines = run.tfshim_lines();
    assert_eq!(lines.len(), 1, "{}", run.stderr());
    assert!(
        lines[0].contains("could not check the saved backend key")
            && lines[0].contains(reason)
            && lines[0].contains("running terraform unchanged"),
        "{}",
        lines[0]
    );
    assert_eq!(sb.saved_bytes(), before);
}

#[test]
fn sts_closes_the_connection() {
    sts_fault(Fault::Close, "network error");
}

#[test]
fn sts_black_hole() {
    sts_fault(Fault::Hang, "timeout");
}

#[test]
fn sts_500() {
    sts_fault(Fault::Status(500, String::new()), "HTTP 500");
}

#[test]
fn sts_503() {
    sts_fault(
        Fault::Status(503, "<html>Service Unavailable</html>".into()),
        "HTTP 503",
    );
}

#[test]
fn sts_throttling() {
    let body = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                <Message>Rate exceeded</Message></Error></ErrorResponse>";
    sts_fault(Fault::Status(400, body.into()), "Throttling");
}

#[test]
fn sts_malformed_body() {
    sts_fault(Fault::Status(403, "{{{ not xml <Code".into()), "HTTP 403");
}

#[test]
fn sts_403_without_a_code() {
    sts_fault(
        Fault::Status(403, String::new()),
        "HTTP 403 without an error code",
    );
}

#[test]
fn sts_clock_skew_is_not_a_verdict() {
    let body = "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>Signature \
                expired: 20200501T143723Z is now earlier than 20200501T150000Z</Message></Error>\
                </ErrorResponse>";
    sts_fault(Fault::Status(403, body.into()), "clock skew");
}

// ---- the saved file, damaged in every way ----

/// Puts `content` in place of the saved file, runs plain terraform and tfshim from the same
/// starting point, and checks that tfshim changed nothing: same exit code, same stdout, same file.
#[track_caller]
fn damaged(write: impl Fn(&std::path::Path)) -> Run {
    let sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let saved = sb.data_dir().join("terraform.tfstate");
    let reset = || {
        if saved.is_dir() {
            fs::remove_dir_all(&saved).unwrap();
        } else if saved.exists() || saved.is_symlink() {
            fs::remove_file(&saved).unwrap();
        }
        write(&saved);
    };
    reset();
    let plain = sb.terraform(&["plan", "-input=false", "-no-color"]);
    let after_plain = fs::read(&saved).ok();
    reset();
    let run = timed_plan(&sb);
    assert_eq!(
        run.code(),
        plain.code(),
        "{}\n---\n{}",
        run.stderr(),
        plain.stderr()
    );
    assert_eq!(run.stdout(), plain.stdout());
    assert_eq!(
        fs::read(&saved).ok(),
        after_plain,
        "tfshim changed the file"
    );
    assert!(run.tfshim_lines().len() <= 1, "{}", run.stderr());
    run
}

#[test]
fn saved_file_missing() {
    let run = damaged(|_| {});
    assert!(run.tfshim_lines().is_empty());
}

#[test]
fn saved_file_empty() {
    let run = damaged(|p| fs::write(p, "").unwrap());
    assert!(run
        .stderr()
        .contains("tfshim: could not check the saved backend"));
}

#[test]
fn saved_file_truncated() {
    damaged(|p| {
        fs::write(
            p,
            r#"{"version":3,"backend":{"type":"s3","config":{"access_k"#,
        )
        .unwrap()
    });
}

#[test]
fn saved_file_not_json() {
    damaged(|p| fs::write(p, "this is not json\n").unwrap());
}

#[test]
fn saved_file_wrong_shape() {
    damaged(|p| fs::write(p, r#"[{"backend":1}]"#).unwrap());
    damaged(|p| fs::write(p, r#"{"version":3,"backend":{"type":7,"config":[]}}"#).unwrap());
}

#[test]
fn saved_file_huge() {
    let run = damaged(|p| {
        let f = fs::File::create(p).unwrap();
        f.set_len(100 * 1024 * 1024).unwrap();
    });
    assert!(run.stderr().contains("too large"), "{}", run.stderr());
}

#[test]
fn saved_file_unreadable() {
    // Tests run as root, which reads any file whatever its mode: a directory in its place is what
    // "cannot be read" means here.
    let run = damaged(|p| fs::create_dir(p).unwrap());
    assert!(run.stderr().contains("cannot read it"), "{}", run.stderr());
}

#[test]
fn saved_file_unknown_backend_type() {
    let run = damaged(|p| {
        fs::write(
            p,
            r#"{"version":3,"backend":{"type":"martian","config":{"access_key":"x","secret_key":"y"},"hash":1}}"#,
        )
        .unwrap()
    });
    assert!(run.tfshim_lines().is_empty(), "{}", run.stderr());
}

#[test]
fn saved_file_other_version() {
    let run = damaged(|p| {
        fs::write(
            p,
            r#"{"version":4,"backend":{"type":"s3","config":{},"hash":1}}"#,
        )
        .unwrap()
    });
    assert!(
        run.stderr().contains("state version other than 3"),
        "{}",
        run.stderr()
    );
}

#[test]
fn saved_file_from_a_newer_terraform() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    // Extra attributes and a `state_store` block (1.15 may add one): still read, still checked.
    let mut doc: serde_json::Value = serde_json::from_slice(&sb.saved_bytes()).unwrap();
    doc["backend"]["config"]["attribute_from_the_future"] = serde_json::Value::Null;
    doc["state_store"] = serde_json::json!({"type": "future"});
    fs::write(
        sb.data_dir().join("terraform.tfstate"),
        serde_json::to_vec(&doc).unwrap(),
    )
    .unwrap();
    sb.rotate();
    let run = timed_plan(&sb);
    // The key is judged; a null unknown attribute is not handed back, so the repair goes through.
    run.stderr_has("was rejected by STS");
    assert!(!sb.saved_text().contains(&sb.secrets[0]));
}

#[cfg(unix)]
#[test]
fn saved_file_is_a_symlink() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let saved = sb.data_dir().join("terraform.tfstate");
    let elsewhere = sb.root.path().join("real-saved-backend.json");
    fs::rename(&saved, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &saved).unwrap();
    sb.rotate();
    timed_plan(&sb).success().stderr_has("re-initialising");
    let text = fs::read_to_string(&saved).unwrap();
    assert!(text.contains("\"access_key\": null"), "{text}");
    assert!(saved.is_symlink(), "the link is still a link");
}

// ---- the environment of the repair ----

#[test]
fn unwritable_data_dir_fails_open() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    // Root writes anywhere, so the lock file is made impossible instead: a directory in its place.
    fs::create_dir(sb.data_dir().join("tfshim.lock")).unwrap();
    let before = sb.saved_bytes();
    let run = timed_plan(&sb);
    run.code_is(1)
        .stderr_has("cannot create the lock file")
        .stderr_has("running terraform unchanged");
    assert_eq!(sb.saved_bytes(), before);
}

#[test]
fn temp_dir_unusable_does_not_matter() {
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    sb.rotate();
    // The settings file goes to the data dir (issue #12), never to TMPDIR.
    sb.env("TMPDIR", sb.root.path().join("no-such-dir"));
    timed_plan(&sb).success().stderr_has("re-initialising");
    let leftovers = sb.tfshim_leftovers();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
