//! The http backend (GitLab-managed Terraform state, issue #13): the real terraform against a
//! GitLab-like state server on loopback (`support::state_server`), its token saved by
//! `-backend-config=password=…`, then revoked. Every output is scanned for every token.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::state_server::StateServer;
use crate::support::tls::TlsFront;
use crate::support::{real_terraform, tfshim_bin, Layout, Run, Sandbox};

const USER: &str = "alice";

/// A root whose http backend points at its own state server, with an isolated environment.
struct HttpRoot {
    root: tempfile::TempDir,
    work: PathBuf,
    server: StateServer,
    /// Every token this test made; no output may contain one.
    secrets: Vec<String>,
    env: Vec<(OsString, OsString)>,
}

/// The `.tf` backend block: everything GitLab's documentation sets, or nothing (partial config).
fn backend_block(server: &StateServer, name: &str, partial: bool) -> String {
    if partial {
        return "terraform {\n  backend \"http\" {}\n}\n".into();
    }
    format!(
        "terraform {{\n  backend \"http\" {{\n    address        = \"{0}\"\n    lock_address   = \"{1}\"\n    \
         unlock_address = \"{1}\"\n    lock_method    = \"POST\"\n    unlock_method  = \"DELETE\"\n    \
         retry_max      = 1\n    retry_wait_min = 1\n    retry_wait_max = 2\n  }}\n}}\n",
        server.address(name),
        server.lock_address(name)
    )
}

/// The same settings as `-backend-config` flags (the partial-configuration case).
fn backend_flags(server: &StateServer, name: &str) -> Vec<String> {
    [
        ("address", server.address(name)),
        ("lock_address", server.lock_address(name)),
        ("unlock_address", server.lock_address(name)),
        ("lock_method", "POST".into()),
        ("unlock_method", "DELETE".into()),
        ("retry_max", "1".into()),
        ("retry_wait_min", "1".into()),
        ("retry_wait_max", "2".into()),
    ]
    .iter()
    .map(|(k, v)| format!("-backend-config={k}={v}"))
    .collect()
}

fn token(n: &str) -> String {
    // GitLab personal access tokens look like this; unique per test run.
    format!("glpat-{n}{}x{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

impl HttpRoot {
    fn new(partial: bool) -> HttpRoot {
        let server = StateServer::start();
        let root = tempfile::Builder::new()
            .prefix("tfshim-http-")
            .tempdir()
            .unwrap();
        let work = root.path().join("work dir");
        fs::create_dir_all(&work).unwrap();
        fs::create_dir_all(root.path().join("home")).unwrap();
        fs::create_dir_all(root.path().join("tmp")).unwrap();
        fs::write(root.path().join("terraformrc"), "").unwrap();
        fs::write(
            work.join("main.tf"),
            format!(
                "{}\nresource \"terraform_data\" \"x\" {{\n  input = \"hello\"\n}}\n",
                backend_block(&server, "prod", partial)
            ),
        )
        .unwrap();
        HttpRoot {
            root,
            work,
            server,
            secrets: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A token the server accepts for `USER`.
    fn grant(&mut self, name: &str) -> String {
        let t = token(name);
        self.server.grant(USER, &t);
        self.secrets.push(t.clone());
        t
    }

    fn env(&mut self, k: &str, v: impl Into<OsString>) {
        self.env.push((k.into(), v.into()));
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.path().join("home"))
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_CLI_CONFIG_FILE", self.root.path().join("terraformrc"))
            .env("TFSHIM_STS_TIMEOUT", "5")
            .env("TFSHIM_QUIET", "1")
            .env("TMPDIR", self.root.path().join("tmp"))
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    #[track_caller]
    fn run<S: AsRef<OsStr>>(&self, program: &Path, args: &[S]) -> Run {
        let mut cmd = self.command(program);
        cmd.args(args);
        let output = cmd.output().expect("could not start the command");
        let run = Run {
            label: format!("{:?} {:?}", program, cmd.get_args().collect::<Vec<_>>()),
            output,
        };
        run.assert_no_secret(&self.secrets);
        if std::env::var_os("TFSHIM_TEST_SHOW").is_some() {
            eprintln!(
                "{}\n--- stdout\n{}\n--- stderr\n{}",
                run.label,
                run.stdout(),
                run.stderr()
            );
        }
        run
    }

    #[track_caller]
    fn terraform<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.run(&real_terraform(), args)
    }

    #[track_caller]
    fn tfshim<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.run(Path::new(tfshim_bin()), args)
    }

    /// `init` the GitLab way: the username and the token by `-backend-config`.
    #[track_caller]
    fn init_with_token(&self, token: &str, extra: &[String]) {
        let mut args = vec![
            "init".to_owned(),
            "-input=false".to_owned(),
            "-no-color".to_owned(),
            format!("-backend-config=username={USER}"),
            format!("-backend-config=password={token}"),
        ];
        args.extend(extra.iter().cloned());
        self.terraform(&args).success();
        assert!(
            self.saved_text().contains(token),
            "init did not save the token"
        );
    }

    /// tfshim runs terraform through a wrapper that logs each call's arguments.
    fn record_terraform_calls(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let wrapper = self.root.path().join("terraform-wrapper");
        let log = self.root.path().join("calls.log");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real_terraform().display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        self.env("TFSHIM_TERRAFORM", wrapper);
    }

    fn reconfigures(&self) -> usize {
        fs::read_to_string(self.root.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter(|c| c.contains("init -reconfigure"))
            .count()
    }

    fn saved_bytes(&self) -> Vec<u8> {
        fs::read(self.work.join(".terraform/terraform.tfstate")).unwrap()
    }

    fn saved_text(&self) -> String {
        String::from_utf8(self.saved_bytes()).unwrap()
    }

    fn saved_backend(&self) -> Value {
        serde_json::from_slice::<Value>(&self.saved_bytes()).unwrap()["backend"].clone()
    }
}

const PLAN: &[&str] = &["plan", "-input=false", "-no-color"];

/// The saved backend after a repair is the one before, without the password (unset) and with the
/// same hash: every other setting survived.
#[track_caller]
fn only_the_password_left(before: &Value, after: &Value) {
    assert_eq!(before["hash"], after["hash"]);
    assert_eq!(before["type"], after["type"]);
    let (b, a) = (
        before["config"].as_object().unwrap(),
        after["config"].as_object().unwrap(),
    );
    for (k, v) in b {
        if k == "password" {
            assert!(a[k].is_null(), "password still saved");
        } else {
            assert_eq!(&a[k], v, "{k} changed");
        }
    }
    assert_eq!(a.len(), b.len());
}

#[test]
fn seed_story_heals_with_one_reconfigure() {
    let mut r = HttpRoot::new(false);
    let t1 = r.grant("one");
    r.init_with_token(&t1, &[]);
    r.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .success();
    let state = r.server.state_of("prod").expect("apply wrote the state");
    let before = r.saved_backend();
    assert_eq!(before["config"]["lock_method"], "POST");

    // The token expires; a fresh one is in TF_HTTP_PASSWORD, as GitLab's docs suggest.
    r.server.revoke(&t1);
    let t2 = r.grant("two");
    r.env("TF_HTTP_PASSWORD", &t2);
    r.terraform(PLAN)
        .code_is(1)
        .stderr_has("HTTP remote state endpoint requires auth");

    r.record_terraform_calls();
    r.server.clear_log();
    let run = r.tfshim(PLAN);
    run.success()
        .stderr_has("the saved http backend password (user alice) was rejected by the state server (HTTP 401)")
        .stderr_has("re-initialising the backend without it");
    assert!(run.stdout().contains("No changes."), "{}", run.stdout());
    assert_eq!(r.reconfigures(), 1);
    // The saved token: HEAD, its rejection confirmed by GET; TF_HTTP_PASSWORD's: HEAD. No state
    // was sent (a rejected GET gets none).
    let checks = r.server.tfshim_requests();
    assert_eq!(
        checks.iter().map(|c| c.method.as_str()).collect::<Vec<_>>(),
        ["HEAD", "GET", "HEAD"],
        "{checks:?}"
    );
    assert!(checks.iter().all(|c| c.bytes_sent < 200), "{checks:?}");
    assert_eq!(
        checks.iter().map(|c| c.authorized).collect::<Vec<_>>(),
        [false, false, true]
    );
    only_the_password_left(&before, &r.saved_backend());
    assert!(!r.saved_text().contains(&t1));
    assert_eq!(r.server.state_of("prod").as_deref(), Some(&state[..]));

    // The lock works after the repair: terraform locks with POST and unlocks with DELETE, as saved.
    r.server.clear_log();
    r.tfshim(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .success();
    let log = r.server.log();
    let lock_calls: Vec<&str> = log
        .iter()
        .filter(|l| l.path.ends_with("/lock"))
        .map(|l| l.method.as_str())
        .collect();
    assert_eq!(lock_calls, ["POST", "DELETE"], "{log:?}");
    assert!(log.iter().all(|l| l.authorized), "{log:?}");
    assert!(!r.server.locked("prod"));
    // Nothing saved to check any more: no request from tfshim.
    assert!(r.server.tfshim_requests().is_empty());
    assert_eq!(r.reconfigures(), 1);
}

#[test]
fn partial_configuration_from_flags_with_chdir() {
    let mut r = HttpRoot::new(true);
    let t1 = r.grant("one");
    let flags = backend_flags(&r.server, "prod");
    r.init_with_token(&t1, &flags);
    let before = r.saved_backend();
    assert_eq!(before["config"]["unlock_method"], "DELETE");
    r.server.revoke(&t1);
    let t2 = r.grant("two");
    r.env("TF_HTTP_PASSWORD", &t2);
    let dir = r.work.clone();
    let mut cmd = r.command(Path::new(tfshim_bin()));
    cmd.current_dir(r.root.path());
    let chdir = format!("-chdir={}", dir.display());
    let out = cmd
        .args([chdir.as_str(), "plan", "-input=false", "-no-color"])
        .output()
        .unwrap();
    let run = Run {
        label: "tfshim -chdir plan".into(),
        output: out,
    };
    run.assert_no_secret(&r.secrets);
    run.success();
    // A bare `init -reconfigure` would have lost the address and the lock settings.
    only_the_password_left(&before, &r.saved_backend());
    r.terraform(PLAN).success();
}

#[test]
fn no_working_token_changes_nothing() {
    let mut r = HttpRoot::new(false);
    let t1 = r.grant("one");
    r.init_with_token(&t1, &[]);
    r.server.revoke(&t1);
    let before = r.saved_bytes();
    r.record_terraform_calls();
    // No fallback at all: say what to set.
    let run = r.tfshim(PLAN);
    run.code_is(1)
        .stderr_has("no working credentials were found to replace it")
        .stderr_has("Set TF_HTTP_PASSWORD");
    assert_eq!(run.tfshim_lines().len(), 1, "{}", run.stderr());
    // A fallback token the server rejects too.
    let bad = token("bad");
    r.secrets.push(bad.clone());
    r.env("TF_HTTP_PASSWORD", &bad);
    r.tfshim(PLAN)
        .code_is(1)
        .stderr_has("they were rejected too (HTTP 401)");
    assert_eq!(r.saved_bytes(), before);
    assert_eq!(r.reconfigures(), 0);
}

#[test]
fn server_down_or_failing_fails_open() {
    let mut r = HttpRoot::new(false);
    let t1 = r.grant("one");
    r.init_with_token(&t1, &[]);
    let t2 = r.grant("two");
    r.env("TF_HTTP_PASSWORD", &t2);
    let before = r.saved_bytes();
    r.record_terraform_calls();
    // A 503: no verdict; terraform runs unchanged (and fails on its own, after its retries).
    r.server.fail_with(Some(503));
    let run = r.tfshim(PLAN);
    run.stderr_has("could not check the saved backend password (user alice) (HTTP 503); running terraform unchanged");
    assert_eq!(run.tfshim_lines().len(), 1, "{}", run.stderr());
    assert_eq!(r.saved_bytes(), before);
    // Down: nothing listens on the port any more.
    r.server.stop();
    let started = std::time::Instant::now();
    let run = r.tfshim(PLAN);
    run.code_is(1)
        .stderr_has("(connection refused); running terraform unchanged");
    assert!(started.elapsed().as_secs() < 60);
    assert_eq!(r.saved_bytes(), before);
    assert_eq!(r.reconfigures(), 0);
}

#[test]
fn a_valid_token_costs_one_head_request() {
    let mut r = HttpRoot::new(false);
    let t1 = r.grant("one");
    r.init_with_token(&t1, &[]);
    r.server.clear_log();
    r.tfshim(PLAN).success();
    let checks = r.server.tfshim_requests();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].method, "HEAD");
    // A server without HEAD: one GET, whose body tfshim does not read.
    let methods = |r: &HttpRoot| -> Vec<String> {
        r.server
            .tfshim_requests()
            .into_iter()
            .map(|c| c.method)
            .collect()
    };
    r.server.set_head_answer(Some(405));
    r.server.clear_log();
    r.tfshim(PLAN).success();
    assert_eq!(methods(&r), ["HEAD", "GET"]);
    // A front end that refuses HEAD with 403: a rejection is confirmed with GET, which succeeds, so
    // the working token is left alone (a refusal or a repair here would be worse than terraform).
    r.server.set_head_answer(Some(403));
    r.server.clear_log();
    r.record_terraform_calls();
    let before = r.saved_bytes();
    r.tfshim(PLAN).success().stderr_lacks("rejected");
    assert_eq!(methods(&r), ["HEAD", "GET"]);
    assert_eq!(r.reconfigures(), 0);
    assert_eq!(r.saved_bytes(), before);
}

#[test]
fn a_plan_made_with_a_revoked_token_gets_one_clear_line() {
    let mut r = HttpRoot::new(false);
    let t1 = r.grant("one");
    r.init_with_token(&t1, &[]);
    r.terraform(&["plan", "-input=false", "-no-color", "-out=ci.tfplan"])
        .success();
    r.server.revoke(&t1);
    let t2 = r.grant("two");
    r.env("TF_HTTP_PASSWORD", &t2);
    let before = r.saved_bytes();
    let run = r.tfshim(&["apply", "-input=false", "-no-color", "ci.tfplan"]);
    assert_ne!(run.code(), Some(0));
    let lines = run.tfshim_lines();
    assert_eq!(lines.len(), 1, "{}", run.stderr());
    assert!(
        lines[0].contains("embeds the http backend password (user alice), which the state server now rejects (HTTP 401)")
            && lines[0].contains("make a new plan"),
        "{}",
        lines[0]
    );
    assert_eq!(r.saved_bytes(), before);
}

#[test]
fn sweep_over_s3_and_http_roots() {
    // One stale S3 root (moto) and three http roots sharing one revoked token; two of them address
    // the same state, so one check answers for both.
    let mut sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let s3_before = sb.saved_bytes();
    sb.rotate();
    let server = StateServer::start();
    let t1 = token("one");
    let t2 = token("two");
    server.grant(USER, &t1);
    sb.secrets.extend([t1.clone(), t2.clone()]);
    let mut http_dirs = Vec::new();
    for (name, state) in [("http/a", "a"), ("http/b", "b"), ("http/a-copy", "a")] {
        let dir = sb.work.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("main.tf"), backend_block(&server, state, false)).unwrap();
        let mut cmd = sb.terraform_cmd();
        cmd.current_dir(&dir);
        sb.run(
            cmd,
            &[
                "init",
                "-input=false",
                &format!("-backend-config=username={USER}"),
                &format!("-backend-config=password={t1}"),
            ],
        )
        .success();
        http_dirs.push(dir);
    }
    server.revoke(&t1);
    server.grant(USER, &t2);
    sb.env("TF_HTTP_PASSWORD", &t2);
    server.clear_log();

    let run = sb.tfshim(&["shim", "sweep", "--json"]);
    run.code_is(3);
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap();
    let rows = doc["roots"].as_array().unwrap();
    let by_backend = |kind: &str| rows.iter().filter(|r| r["backend"] == kind).count();
    assert_eq!((by_backend("s3"), by_backend("http")), (1, 3), "{doc}");
    for r in rows {
        assert_eq!(r["verdict"], "rejected", "{r}");
        assert_eq!(r["action"], "reconfigure", "{r}");
        // The saved credential, named as doctor names it: a key id for S3, words for http.
        if r["backend"] == "http" {
            assert_eq!(r["access_key"], Value::Null, "{r}");
            assert_eq!(r["credential"], format!("password (user {USER})"), "{r}");
        } else {
            assert!(r["access_key"].as_str().unwrap().contains('…'), "{r}");
            assert!(r.get("credential").is_none(), "{r}");
        }
    }
    // Two distinct http addresses: two checks of the saved token (HEAD, confirmed by GET), two of
    // TF_HTTP_PASSWORD (HEAD).
    assert_eq!(server.tfshim_requests().len(), 6, "{:?}", server.log());
    assert_eq!(doc["keys_checked"], 3);

    let run = sb.tfshim(&["shim", "sweep", "--fix", "--json"]);
    run.success();
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap();
    for r in doc["roots"].as_array().unwrap() {
        assert_eq!(r["result"], "repaired", "{r}");
    }
    assert_ne!(sb.saved_bytes(), s3_before);
    for dir in &http_dirs {
        let text = fs::read_to_string(dir.join(".terraform/terraform.tfstate")).unwrap();
        assert!(!text.contains(&t1));
        let mut cmd = sb.terraform_cmd();
        cmd.current_dir(dir);
        sb.run(cmd, &["plan", "-input=false", "-no-color"])
            .success();
    }
    sb.tfshim(&["plan", "-input=false", "-no-color"]).success();
}

#[test]
fn an_init_with_only_a_new_password_gets_reconfigure() {
    let mut r = HttpRoot::new(false);
    let t1 = r.grant("one");
    r.init_with_token(&t1, &[]);
    let before = r.saved_backend();
    let t2 = r.grant("two");
    let new_password = format!("-backend-config=password={t2}");
    // Plain terraform stops: the backend configuration changed.
    r.terraform(&["init", "-input=false", "-no-color", new_password.as_str()])
        .code_is(1)
        .stderr_has("Backend configuration changed");
    r.tfshim(&["init", "-input=false", "-no-color", new_password.as_str()])
        .success()
        .stderr_has("this init changes only the backend credentials; adding -reconfigure");
    let after = r.saved_backend();
    assert_eq!(after["config"]["password"], t2.as_str());
    // Every other setting, the username included, as before.
    for (k, v) in before["config"].as_object().unwrap() {
        if k != "password" {
            assert_eq!(&after["config"][k], v, "{k}");
        }
    }
    assert_eq!(before["hash"], after["hash"]);
    r.tfshim(PLAN).success();
}

#[test]
fn doctor_reports_an_http_root() {
    let mut r = HttpRoot::new(false);
    let t1 = r.grant("one");
    r.init_with_token(&t1, &[]);
    r.server.revoke(&t1);
    let t2 = r.grant("two");
    r.env("TF_HTTP_PASSWORD", &t2);
    let run = r.tfshim(&["shim", "doctor", "--json"]);
    run.code_is(3);
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(doc["backend"]["type"], "http");
    assert_eq!(doc["backend"]["address"], r.server.address("prod").as_str());
    let saved = &doc["saved_credentials"];
    assert_eq!(saved["present"], true);
    assert_eq!(saved["access_key"], Value::Null);
    assert_eq!(saved["credential"], "password (user alice)");
    assert_eq!(saved["verdict"], "rejected");
    assert_eq!(saved["code"], "HTTP 401");
    assert_eq!(doc["ambient_credentials"]["verdict"], "valid");
    assert_eq!(doc["action"], "reconfigure");
    let codes: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"secret-in-backend"), "{codes:?}");
    // The text form says the same, the token nowhere (every run is scanned).
    r.tfshim(&["shim", "doctor"]).code_is(3);
}

/// An http root whose state server sits behind an HTTPS front signed by the test's own CA.
fn https_root(extra_tf: &str) -> (HttpRoot, TlsFront, String) {
    let r = HttpRoot::new(true);
    let front = TlsFront::start(r.server.port, &r.root.path().join("tls"));
    let address = format!("https://127.0.0.1:{}/state/prod", front.port);
    fs::write(
        r.work.join("main.tf"),
        format!(
            "terraform {{\n  backend \"http\" {{\n    address = \"{address}\"\n{extra_tf}  }}\n}}\n\
             resource \"terraform_data\" \"x\" {{\n  input = \"hello\"\n}}\n"
        ),
    )
    .unwrap();
    (r, front, address)
}

#[test]
fn https_with_the_backends_ca_or_without_verification() {
    // The CA given by -backend-config: saved, used by tfshim's check, re-supplied by the repair.
    let (mut r, front, _) = https_root("");
    let ca = fs::read_to_string(&front.ca).unwrap();
    let t1 = r.grant("one");
    r.init_with_token(
        &t1,
        &[format!("-backend-config=client_ca_certificate_pem={ca}")],
    );
    let before = r.saved_backend();
    assert_eq!(before["config"]["client_ca_certificate_pem"], ca.as_str());
    r.server.revoke(&t1);
    let t2 = r.grant("two");
    r.env("TF_HTTP_PASSWORD", &t2);
    r.tfshim(PLAN)
        .success()
        .stderr_has("was rejected by the state server (HTTP 401)");
    only_the_password_left(&before, &r.saved_backend());
    assert_eq!(r.server.tfshim_requests().len(), 3);

    // skip_cert_verification: any certificate, as terraform accepts it.
    let (mut r, _front, _) = https_root("    skip_cert_verification = true\n");
    let t1 = r.grant("one");
    r.init_with_token(&t1, &[]);
    r.server.revoke(&t1);
    let t2 = r.grant("two");
    r.env("TF_HTTP_PASSWORD", &t2);
    r.tfshim(PLAN)
        .success()
        .stderr_has("was rejected by the state server (HTTP 401)");

    // The CA from TF_HTTP_CLIENT_CA_CERTIFICATE_PEM at init, not saved: without the variable later,
    // neither terraform nor tfshim can verify the server; tfshim says why it has no verdict and
    // changes nothing.
    let (mut r, front, _) = https_root("");
    let ca = fs::read_to_string(&front.ca).unwrap();
    let t1 = r.grant("one");
    r.env("TF_HTTP_CLIENT_CA_CERTIFICATE_PEM", &ca);
    r.init_with_token(&t1, &[]);
    r.env
        .retain(|(k, _)| k != "TF_HTTP_CLIENT_CA_CERTIFICATE_PEM");
    let before = r.saved_bytes();
    r.tfshim(PLAN)
        .code_is(1)
        .stderr_has("could not check the saved backend password (user alice) (TLS");
    assert_eq!(r.saved_bytes(), before);
    // With the variable again, the check is made as terraform makes it, and the token works.
    r.env("TF_HTTP_CLIENT_CA_CERTIFICATE_PEM", &ca);
    r.server.clear_log();
    r.tfshim(PLAN).success();
    assert_eq!(r.server.tfshim_requests().len(), 1);
}
