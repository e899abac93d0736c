//! The gcs backend (issue #23): the real terraform against a fake of Cloud Storage and Google's
//! token endpoint on loopback (`support::gcs_server`, reached through `storage_custom_endpoint`),
//! its access token saved by `-backend-config=access_token=…`, then expired. Each fallback kind
//! terraform reads is tried in a differential check (plain terraform, the careful manual fix,
//! tfshim), and every output is scanned for every token and key.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

use crate::support::gcs_server::GcsServer;
use crate::support::{real_terraform, tfshim_bin, Run};

const BUCKET: &str = "tfstate-team";
const PREFIX: &str = "team/app";
const SA_EMAIL: &str = "terraform@proj.iam.gserviceaccount.com";
const PLAN: &[&str] = &["plan", "-input=false", "-no-color"];

/// A root whose gcs backend points at its own fake, with an isolated environment.
struct GcsRoot {
    root: tempfile::TempDir,
    work: PathBuf,
    server: GcsServer,
    /// Every token and key this test made; no output may contain one.
    secrets: Vec<String>,
    env: Vec<(OsString, OsString)>,
    /// The terraform that runs, directly and behind tfshim.
    tf: PathBuf,
}

impl GcsRoot {
    fn new() -> GcsRoot {
        GcsRoot::with_terraform(real_terraform(), true)
    }

    /// A root for terraform `tf`; without `storage_custom_endpoint` (terraform 1.0.3 has none) the
    /// fake is reached as `storage.googleapis.com` through [`GcsServer::google_front`].
    fn with_terraform(tf: PathBuf, custom_endpoint: bool) -> GcsRoot {
        let server = GcsServer::start(BUCKET);
        let root = tempfile::Builder::new()
            .prefix("tfshim-gcs-")
            .tempdir()
            .unwrap();
        let work = root.path().join("work");
        for d in [&work, &root.path().join("home"), &root.path().join("tmp")] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(root.path().join("terraformrc"), "").unwrap();
        let (endpoint, resource) = if custom_endpoint {
            (
                format!("    storage_custom_endpoint = \"{}\"\n", server.endpoint()),
                "resource \"terraform_data\" \"x\" {\n  input = \"hello\"\n}\n",
            )
        } else {
            // 1.0.3 has no terraform_data: an output is state enough.
            (String::new(), "output \"x\" {\n  value = \"hello\"\n}\n")
        };
        fs::write(
            work.join("main.tf"),
            format!(
                "terraform {{\n  backend \"gcs\" {{\n    bucket = \"{BUCKET}\"\n    prefix = \"{PREFIX}\"\n{endpoint}  }}\n}}\n\n{resource}"
            ),
        )
        .unwrap();
        GcsRoot {
            root,
            work,
            server,
            // Every token the fake issues starts so, those got by tfshim's exchanges included.
            secrets: vec!["ya29.fake".into()],
            env: vec![("TFSHIM_TERRAFORM".into(), tf.clone().into())],
            tf,
        }
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// A token the fake accepts.
    fn grant(&mut self, label: &str) -> String {
        let t = self.server.grant(label);
        self.secrets.push(t.clone());
        t
    }

    fn env(&mut self, k: &str, v: impl Into<OsString>) {
        self.env.push((k.into(), v.into()));
    }

    /// A service-account key file (a fresh RSA key from `openssl genpkey`) whose public half the
    /// fake's token endpoint knows; its path.
    fn service_account_key(&mut self, name: &str) -> PathBuf {
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl is needed to make a test key");
        assert!(out.status.success());
        let pem = String::from_utf8(out.stdout).unwrap();
        let public = {
            use ring::signature::KeyPair;
            use rustls::pki_types::pem::PemObject;
            let der =
                rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
            let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
            key.public_key().as_ref().to_vec()
        };
        self.server.add_service_account(SA_EMAIL, public);
        // The key's body, as it would appear in an output.
        self.secrets.push(pem.lines().nth(5).unwrap().to_owned());
        let key = json!({
            "type": "service_account",
            "project_id": "proj",
            "private_key_id": "0123456789abcdef",
            "private_key": pem,
            "client_email": SA_EMAIL,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.server.token_uri(),
        });
        let path = self.root.path().join(name);
        fs::write(&path, serde_json::to_vec_pretty(&key).unwrap()).unwrap();
        path
    }

    fn command(&self, program: &Path, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
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
    fn run_in<S: AsRef<OsStr>>(&self, program: &Path, dir: &Path, args: &[S]) -> Run {
        let mut cmd = self.command(program, dir);
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
        self.run_in(&self.tf, &self.work, args)
    }

    #[track_caller]
    fn tfshim<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.run_in(Path::new(tfshim_bin()), &self.work, args)
    }

    /// `init -backend-config=access_token=$(gcloud auth print-access-token)`.
    #[track_caller]
    fn init_with_token(&self, token: &str) {
        let flag = format!("-backend-config=access_token={token}");
        self.terraform(&["init", "-input=false", "-no-color", flag.as_str()])
            .success();
        assert!(self.saved_text().contains(token), "init did not save it");
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
                self.tf.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        self.env("TFSHIM_TERRAFORM", wrapper);
    }

    fn terraform_calls(&self) -> Vec<String> {
        fs::read_to_string(self.root.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn reconfigures(&self) -> usize {
        self.terraform_calls()
            .iter()
            .filter(|c| c.contains("init -reconfigure"))
            .count()
    }

    fn saved_text(&self) -> String {
        fs::read_to_string(self.work.join(".terraform/terraform.tfstate")).unwrap()
    }

    fn saved_backend(&self) -> Value {
        saved_backend(&self.work).unwrap()
    }

    /// A root with state: init with a token, apply; then the token expires.
    fn with_expired_token() -> (GcsRoot, String) {
        GcsRoot::expired_on(GcsRoot::new())
    }

    fn expired_on(mut r: GcsRoot) -> (GcsRoot, String) {
        let t1 = r.grant("gcloud");
        r.init_with_token(&t1);
        r.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
            .success();
        assert!(r
            .server
            .object(BUCKET, &format!("{PREFIX}/default.tfstate"))
            .is_some());
        r.server.expire(&t1);
        (r, t1)
    }
}

fn saved_backend(dir: &Path) -> Option<Value> {
    let raw = fs::read(dir.join(".terraform/terraform.tfstate")).ok()?;
    Some(serde_json::from_slice::<Value>(&raw).unwrap()["backend"].clone())
}

fn saved_bytes(dir: &Path) -> Option<Vec<u8>> {
    fs::read(dir.join(".terraform/terraform.tfstate")).ok()
}

/// The saved settings that say which state is addressed: everything but the credentials.
fn addressed(dir: &Path) -> Value {
    let Some(b) = saved_backend(dir) else {
        return Value::Null;
    };
    let config: Map<String, Value> = b["config"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "access_token" | "credentials") && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({"type": b["type"], "config": config})
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What a differential row expects.
struct Expect {
    /// The careful manual fix (reconfigure without the token) heals.
    manual_heals: bool,
    /// tfshim attempts a repair (and then heals wherever the manual fix does).
    repairs: bool,
}

/// The differential check (as `differential.rs` does for S3): the command run by plain terraform,
/// after the careful manual fix, and through tfshim, each on its own copy of the root.
#[track_caller]
fn differential(r: &GcsRoot, cmd: &[&str], expect: Expect) {
    let base = r.root.path();
    let (plain_dir, manual_dir, shim_dir) =
        (base.join("plain"), base.join("manual"), base.join("shim"));
    for d in [&plain_dir, &manual_dir, &shim_dir] {
        copy_dir(&r.work, d);
    }
    let before = addressed(&r.work);
    let plain = r.run_in(&r.tf, &plain_dir, cmd);

    // The manual fix: every saved setting that is set and is no credential, in a file.
    let settings = manual_dir.join("manual-settings.json");
    fs::write(
        &settings,
        serde_json::to_vec_pretty(&addressed(&manual_dir)["config"]).unwrap(),
    )
    .unwrap();
    let file_flag = format!("-backend-config={}", settings.display());
    let reconfigure = r.run_in(
        &r.tf,
        &manual_dir,
        &[
            "init",
            "-reconfigure",
            "-input=false",
            "-no-color",
            file_flag.as_str(),
        ],
    );
    let manual = reconfigure
        .output
        .status
        .success()
        .then(|| r.run_in(&r.tf, &manual_dir, cmd));
    let manual_healed = manual.as_ref().is_some_and(|m| m.code() == Some(0));

    let shim = r.run_in(Path::new(tfshim_bin()), &shim_dir, cmd);
    let show = |run: &Run| format!("{:?}\n{}", run.code(), run.stderr().trim_end());
    let story = format!(
        "== plain: {}\n== manual reconfigure: {}\n== manual: {}\n== tfshim: {}",
        show(&plain),
        show(&reconfigure),
        manual
            .as_ref()
            .map(show)
            .unwrap_or_else(|| "not run".into()),
        show(&shim)
    );
    assert_eq!(
        manual_healed, expect.manual_heals,
        "the manual fix:\n{story}"
    );
    if plain.code() == Some(0) {
        assert_eq!(shim.code(), Some(0), "worse than terraform alone\n{story}");
    }
    assert_eq!(
        shim.stderr()
            .contains("re-initialising the backend without it"),
        expect.repairs,
        "the repair\n{story}"
    );
    // Where tfshim is not to repair (a 403: the token is not stale, only another identity would
    // work), it is held to terraform alone; elsewhere to the manual fix.
    if manual_healed && expect.repairs {
        assert_eq!(
            shim.code(),
            Some(0),
            "the manual fix heals, tfshim not\n{story}"
        );
        assert_eq!(addressed(&shim_dir), addressed(&manual_dir), "{story}");
        let saved = saved_backend(&shim_dir).unwrap();
        assert!(saved["config"]["access_token"].is_null(), "{story}");
    }
    assert_eq!(
        addressed(&shim_dir),
        before,
        "the addressed state changed\n{story}"
    );
    if shim.code() != Some(0) {
        assert_eq!(
            saved_bytes(&shim_dir),
            saved_bytes(&plain_dir),
            "tfshim failed and left the saved backend other than terraform\n{story}"
        );
    }
}

#[test]
fn an_expired_token_fails_plain_terraform() {
    let (r, _) = GcsRoot::with_expired_token();
    // init and apply went through the fake's JSON listing, the lock's conditional create and
    // delete, uploads and the XML read of the state.
    let names = r.server.object_names();
    assert_eq!(
        names,
        [format!("{PREFIX}/default.tfstate")],
        "the lock was released"
    );
    r.server.clear_log();
    r.terraform(PLAN)
        .code_is(1)
        .stderr_has("401")
        .stderr_has("Invalid Credentials");
    let log = r.server.log();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|l| l.status == 401 && l.token.as_deref() == Some("unknown or expired")),
        "{log:?}"
    );
}

#[test]
fn heals_with_a_token_from_the_environment() {
    let (mut r, t1) = GcsRoot::with_expired_token();
    let t2 = r.grant("fresh");
    r.env("GOOGLE_OAUTH_ACCESS_TOKEN", &t2);
    differential(
        &r,
        PLAN,
        Expect {
            manual_heals: true,
            repairs: true,
        },
    );
    // Alone, with the calls counted: one listing with the saved token, one with the variable's.
    r.record_terraform_calls();
    r.server.clear_log();
    let run = r.tfshim(PLAN);
    run.success()
        .stderr_has("was rejected by Cloud Storage (HTTP 401)")
        .stderr_has("re-initialising the backend without it");
    assert!(run.stdout().contains("No changes."), "{}", run.stdout());
    assert_eq!(r.reconfigures(), 1);
    let checks = r.server.tfshim_requests();
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(checks
        .iter()
        .all(|c| c.method == "GET" && c.path == format!("/storage/v1/b/{BUCKET}/o")));
    assert!(
        checks[0].query.contains("prefix=team%2Fapp%2F")
            && checks[0].query.contains("maxResults=1")
    );
    assert_eq!(checks[0].status, 401);
    assert_eq!(checks[1].status, 200);
    let saved = r.saved_backend();
    assert!(saved["config"]["access_token"].is_null());
    assert_eq!(saved["config"]["bucket"], BUCKET);
    assert_eq!(saved["config"]["prefix"], PREFIX);
    assert_eq!(
        saved["config"]["storage_custom_endpoint"],
        r.server.endpoint().as_str()
    );
    assert!(!r.saved_text().contains(&t1));
    // Healed: nothing saved to check any more, and the lock is taken and released.
    r.server.clear_log();
    r.tfshim(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .success();
    assert!(r.server.tfshim_requests().is_empty());
    assert!(r
        .server
        .object_names()
        .iter()
        .all(|n| !n.ends_with(".tflock")));
    let log = r.server.log();
    assert!(
        log.iter()
            .any(|l| l.method == "POST" && l.query.contains("ifGenerationMatch=0")),
        "{log:?}"
    );
}

#[test]
fn heals_with_a_key_file_in_google_credentials() {
    let (mut r, _) = GcsRoot::with_expired_token();
    let key = r.service_account_key("key.json");
    r.env("GOOGLE_CREDENTIALS", &key);
    // The debug log too names no token and no key (every output is scanned).
    r.env("TFSHIM_LOG", "debug");
    differential(
        &r,
        PLAN,
        Expect {
            manual_heals: true,
            repairs: true,
        },
    );
    // The key's JWT was exchanged at its token_uri, and the token so got listed the bucket.
    let checks = r.server.tfshim_requests();
    let calls: Vec<(&str, &str, u16)> = checks
        .iter()
        .map(|c| (c.method.as_str(), c.path.as_str(), c.status))
        .collect();
    let list = format!("/storage/v1/b/{BUCKET}/o");
    assert_eq!(
        calls,
        [
            ("GET", list.as_str(), 401),
            ("POST", "/token", 200),
            ("GET", list.as_str(), 200)
        ]
    );
}

#[test]
fn heals_with_the_json_itself_in_google_credentials() {
    let (mut r, _) = GcsRoot::with_expired_token();
    let key = r.service_account_key("key.json");
    r.env("GOOGLE_CREDENTIALS", fs::read_to_string(key).unwrap());
    r.record_terraform_calls();
    r.tfshim(PLAN)
        .success()
        .stderr_has("re-initialising the backend without it");
    assert_eq!(r.reconfigures(), 1);
}

#[test]
fn heals_with_gclouds_default_credentials_file() {
    let (mut r, _) = GcsRoot::with_expired_token();
    let key = r.service_account_key("key.json");
    let gcloud = r.home().join(".config/gcloud");
    fs::create_dir_all(&gcloud).unwrap();
    fs::copy(key, gcloud.join("application_default_credentials.json")).unwrap();
    differential(
        &r,
        PLAN,
        Expect {
            manual_heals: true,
            repairs: true,
        },
    );
}

#[test]
fn a_stale_token_in_the_environment_beats_a_valid_key_file() {
    let (mut r, _) = GcsRoot::with_expired_token();
    let stale = r.grant("stale");
    r.server.expire(&stale);
    r.env("GOOGLE_OAUTH_ACCESS_TOKEN", &stale);
    let key = r.service_account_key("key.json");
    r.env("GOOGLE_CREDENTIALS", &key);
    differential(
        &r,
        PLAN,
        Expect {
            manual_heals: false,
            repairs: false,
        },
    );
    // The key file was never asked: terraform would not use it.
    assert!(r
        .server
        .tfshim_requests()
        .iter()
        .all(|c| c.path != "/token"));
    r.tfshim(PLAN)
        .code_is(1)
        .stderr_has("they were rejected too (HTTP 401)");
}

#[test]
fn no_fallback_changes_nothing() {
    // No variable, no gcloud file, not on GCE. (Plain terraform is not run here: it would probe
    // the metadata server's link-local address.)
    let (mut r, _) = GcsRoot::with_expired_token();
    let before = fs::read(r.work.join(".terraform/terraform.tfstate")).unwrap();
    r.record_terraform_calls();
    let run = r.tfshim(PLAN);
    run.code_is(1)
        .stderr_has("no working credentials were found to replace it")
        .stderr_has("GOOGLE_OAUTH_ACCESS_TOKEN");
    assert_eq!(run.tfshim_lines().len(), 1, "{}", run.stderr());
    assert_eq!(
        fs::read(r.work.join(".terraform/terraform.tfstate")).unwrap(),
        before
    );
    assert!(r.terraform_calls().is_empty(), "{:?}", r.terraform_calls());
}

#[test]
fn a_metadata_server_without_a_token_is_no_working_fallback() {
    // A VM without a service account: the metadata server has no token (404).
    let (mut r, _) = GcsRoot::with_expired_token();
    r.env("GCE_METADATA_HOST", r.server.metadata_host());
    differential(
        &r,
        PLAN,
        Expect {
            manual_heals: false,
            repairs: false,
        },
    );
    // tfshim asked the metadata server, as terraform does, and got no token.
    let calls: Vec<(String, u16)> = r
        .server
        .tfshim_requests()
        .into_iter()
        .map(|c| (c.path, c.status))
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].1, 401);
    assert!(
        calls[1].0.starts_with("/computeMetadata/") && calls[1].1 == 404,
        "{calls:?}"
    );
}

#[test]
fn heals_with_the_metadata_server() {
    let (mut r, _) = GcsRoot::with_expired_token();
    r.server.attach_metadata_account(true);
    r.env("GCE_METADATA_HOST", r.server.metadata_host());
    differential(
        &r,
        PLAN,
        Expect {
            manual_heals: true,
            repairs: true,
        },
    );
}

#[test]
fn a_forbidden_token_is_not_repaired() {
    let (mut r, t1) = GcsRoot::with_expired_token();
    // The saved token works but may not list the bucket: not stale.
    let t0 = r.grant("forbidden");
    let flag = format!("-backend-config=access_token={t0}");
    let args = [
        "init",
        "-reconfigure",
        "-input=false",
        "-no-color",
        flag.as_str(),
    ];
    r.terraform(&args).success();
    assert!(!r.saved_text().contains(&t1));
    r.server.forbid(&t0);
    let t2 = r.grant("fresh");
    r.env("GOOGLE_OAUTH_ACCESS_TOKEN", &t2);
    differential(
        &r,
        PLAN,
        Expect {
            manual_heals: true,
            repairs: false,
        },
    );
    // tfshim asked, and took the 403 for a working token: no second request.
    let statuses: Vec<u16> = r
        .server
        .tfshim_requests()
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [403]);
}

#[test]
fn no_verdict_runs_terraform_unchanged() {
    let (mut r, _) = GcsRoot::with_expired_token();
    let t2 = r.grant("fresh");
    r.env("GOOGLE_OAUTH_ACCESS_TOKEN", &t2);
    let before = fs::read(r.work.join(".terraform/terraform.tfstate")).unwrap();
    r.record_terraform_calls();
    // A 404 (no such bucket behind a wrong endpoint) or 5xx: no verdict.
    r.server.fail_with(Some(404));
    let run = r.tfshim(PLAN);
    run.code_is(1)
        .stderr_has("(HTTP 404); running terraform unchanged");
    assert_eq!(run.tfshim_lines().len(), 1, "{}", run.stderr());
    assert_eq!(
        fs::read(r.work.join(".terraform/terraform.tfstate")).unwrap(),
        before
    );
    assert_eq!(r.reconfigures(), 0);
    assert_eq!(r.terraform_calls().len(), 1);
}

#[test]
fn a_valid_token_costs_one_request() {
    let mut r = GcsRoot::new();
    let t1 = r.grant("gcloud");
    r.init_with_token(&t1);
    r.server.clear_log();
    r.tfshim(PLAN).success();
    let checks = r.server.tfshim_requests();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].status, 200);
}

#[test]
fn an_init_with_only_a_new_token_gets_reconfigure() {
    let (mut r, _) = GcsRoot::with_expired_token();
    let before = r.saved_backend();
    let t2 = r.grant("fresh");
    let flag = format!("-backend-config=access_token={t2}");
    let args = ["init", "-input=false", "-no-color", flag.as_str()];
    r.terraform(&args)
        .code_is(1)
        .stderr_has("Backend configuration changed");
    r.tfshim(&args)
        .success()
        .stderr_has("this init changes only the backend credentials; adding -reconfigure");
    let after = r.saved_backend();
    assert_eq!(after["config"]["access_token"], t2.as_str());
    for (k, v) in before["config"].as_object().unwrap() {
        if k != "access_token" {
            assert_eq!(&after["config"][k], v, "{k}");
        }
    }
    r.tfshim(PLAN).success();
}

#[test]
fn doctor_and_report_on_a_gcs_root() {
    let (mut r, _) = GcsRoot::with_expired_token();
    let t2 = r.grant("fresh");
    r.env("GOOGLE_OAUTH_ACCESS_TOKEN", &t2);
    let run = r.tfshim(&["shim", "doctor", "--json"]);
    run.code_is(3);
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(doc["backend"]["type"], "gcs");
    assert_eq!(doc["backend"]["bucket"], BUCKET);
    let saved = &doc["saved_credentials"];
    assert_eq!(saved["present"], true);
    assert_eq!(saved["verdict"], "rejected");
    assert_eq!(saved["code"], "HTTP 401");
    assert_eq!(doc["ambient_credentials"]["verdict"], "valid");
    assert_eq!(
        doc["ambient_credentials"]["source"],
        "GOOGLE_OAUTH_ACCESS_TOKEN"
    );
    assert_eq!(doc["action"], "reconfigure");
    let codes: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"secret-in-backend"), "{codes:?}");
    r.tfshim(&["shim", "doctor"]).code_is(3);

    // TFSHIM_REPORT: the repair in the JSON report, without the token.
    let report = r.root.path().join("report.json");
    r.env("TFSHIM_REPORT", &report);
    r.tfshim(PLAN).success();
    let text = fs::read_to_string(&report).unwrap();
    for s in &r.secrets {
        assert!(!text.contains(s.as_str()), "a secret in the report");
    }
    let rep: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rep["backend"]["type"], "gcs", "{rep}");
}

#[test]
fn sweep_checks_each_distinct_bucket_and_token_once() {
    let mut r = GcsRoot::new();
    let t1 = r.grant("gcloud");
    r.init_with_token(&t1);
    // Two more roots with the same bucket and token: one check for all three.
    for name in ["two", "three"] {
        copy_dir(&r.work, &r.root.path().join("sweep").join(name));
    }
    copy_dir(&r.work, &r.root.path().join("sweep").join("one"));
    r.server.expire(&t1);
    let t2 = r.grant("fresh");
    r.env("GOOGLE_OAUTH_ACCESS_TOKEN", &t2);
    r.server.clear_log();
    let sweep_dir = r.root.path().join("sweep");
    let run = r.run_in(
        Path::new(tfshim_bin()),
        &r.work,
        &["shim", "sweep", sweep_dir.to_str().unwrap()],
    );
    let checks = r.server.tfshim_requests();
    // The saved token once, the fallback once.
    assert_eq!(checks.len(), 2, "{checks:?}\n{}", run.stderr());
    run.stdout_has("3 roots, 1 distinct key checked, 1 fallback check")
        .stdout_has("3 repairs due");
    assert_eq!(run.stdout().matches("rejected (HTTP 401)").count(), 3);
    // --fix heals all three, checking no more than before.
    r.server.clear_log();
    let sweep = sweep_dir.to_str().unwrap();
    r.run_in(
        Path::new(tfshim_bin()),
        &r.work,
        &["shim", "sweep", sweep, "--fix"],
    )
    .success();
    for name in ["one", "two", "three"] {
        let saved = saved_backend(&sweep_dir.join(name)).unwrap();
        assert!(saved["config"]["access_token"].is_null(), "{name}");
        assert_eq!(saved["config"]["bucket"], BUCKET);
    }
}

/// A root on terraform 1.0.3, which has no `storage_custom_endpoint`: the fake answers as
/// `storage.googleapis.com` behind a loopback proxy with a test CA.
fn on_1_0_3() -> GcsRoot {
    let tf = crate::support::terraforms::binary(crate::support::terraforms::V1_0_3);
    let mut r = GcsRoot::with_terraform(tf, false);
    let front = r.server.google_front(&r.root.path().join("ca"));
    r.env("HTTPS_PROXY", &front.proxy);
    r.env("SSL_CERT_FILE", &front.ca);
    r
}

#[test]
fn tf_1_0_3_heals_with_a_token_from_the_environment() {
    let (mut r, _) = GcsRoot::expired_on(on_1_0_3());
    r.terraform(PLAN).code_is(1).stderr_has("401");
    let t2 = r.grant("fresh");
    r.env("GOOGLE_OAUTH_ACCESS_TOKEN", &t2);
    differential(
        &r,
        PLAN,
        Expect {
            manual_heals: true,
            repairs: true,
        },
    );
    // terraform 1.0.3 itself and tfshim's checks reached the fake as storage.googleapis.com.
    let log = r.server.log();
    assert!(
        log.iter().any(|l| l.user_agent.contains("Terraform/1.0.3")),
        "{log:?}"
    );
    let checks = r.server.tfshim_requests();
    assert_eq!(checks.len(), 2, "{checks:?}");
}

#[test]
fn tf_1_0_3_heals_with_a_key_file() {
    let (mut r, _) = GcsRoot::expired_on(on_1_0_3());
    let key = r.service_account_key("key.json");
    r.env("GOOGLE_CREDENTIALS", &key);
    differential(
        &r,
        PLAN,
        Expect {
            manual_heals: true,
            repairs: true,
        },
    );
}
