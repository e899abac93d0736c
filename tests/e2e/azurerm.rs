//! The azurerm backend (#24): the real terraform against Azurite behind an Azure-speaking HTTPS
//! front (`support::azure`), reached through `metadata_host`, a private CA (`SSL_CERT_FILE`) and a
//! loopback CONNECT proxy (`HTTPS_PROXY`). A storage account key saved by
//! `-backend-config=access_key=…` is rotated, or a saved SAS expires; every output is scanned for
//! every key and SAS.
//! The four verdict rows also run the differential check (`differential`): plain terraform, the
//! careful manual fix (`init -reconfigure` with every saved setting but the key and SAS) and
//! tfshim, each on its own copy of the root addressing the same blob.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

use crate::support::azure::{account_sas, new_key, AzureStorage, ACCOUNT, CONTAINER};
use crate::support::{real_terraform, tfshim_bin, ForwardProxy, Run};

const PLAN: &[&str] = &["plan", "-input=false", "-no-color", "-lock-timeout=0s"];
const FUTURE: &str = "2099-01-01T00:00:00Z";

struct AzRoot {
    root: tempfile::TempDir,
    work: PathBuf,
    storage: AzureStorage,
    _proxy: ForwardProxy,
    /// Another terraform than the one on PATH (1.0.3).
    terraform_bin: Option<PathBuf>,
    secrets: Vec<String>,
    env: Vec<(OsString, OsString)>,
}

impl AzRoot {
    /// A root on its own storage, whose account key is `key`, with the container made.
    fn new(key: &str) -> AzRoot {
        AzRoot::with(key, "")
    }

    /// The same, with `extra` in the backend block.
    fn with(key: &str, extra: &str) -> AzRoot {
        let root = tempfile::Builder::new()
            .prefix("tfshim-azurerm-")
            .tempdir()
            .unwrap();
        let work = root.path().join("work");
        for d in ["home", "tmp", "certs"] {
            fs::create_dir_all(root.path().join(d)).unwrap();
        }
        fs::create_dir_all(&work).unwrap();
        fs::write(root.path().join("terraformrc"), "").unwrap();
        let mut storage = AzureStorage::start(&root.path().join("certs"), key);
        storage.create_container(key);
        let proxy = ForwardProxy::start();
        fs::write(
            work.join("main.tf"),
            format!(
                "terraform {{\n  backend \"azurerm\" {{\n    storage_account_name = \"{ACCOUNT}\"\n    \
                 container_name       = \"{CONTAINER}\"\n    key                  = \"prod.tfstate\"\n    \
                 metadata_host        = \"localhost:{}\"\n{extra}  }}\n}}\n\
                 resource \"terraform_data\" \"x\" {{\n  input = \"hello\"\n}}\n",
                storage.port
            ),
        )
        .unwrap();
        let mut r = AzRoot {
            root,
            work,
            storage,
            env: Vec::new(),
            secrets: vec![key.to_owned()],
            _proxy: proxy,
            terraform_bin: None,
        };
        let proxy_url = r._proxy.url();
        r.env("HTTPS_PROXY", proxy_url);
        r.env("NO_PROXY", "localhost,127.0.0.1");
        let ca = r.storage.ca.clone();
        r.env("SSL_CERT_FILE", ca);
        r
    }

    fn env(&mut self, k: &str, v: impl Into<OsString>) {
        self.env.retain(|(n, _)| n != k);
        self.env.push((k.into(), v.into()));
    }

    fn secret(&mut self, s: &str) -> String {
        self.secrets.push(s.to_owned());
        // A SAS's signature alone is a secret too (output may show the token re-encoded).
        if let Some(sig) = s.split('&').find_map(|p| p.strip_prefix("sig=")) {
            self.secrets.push(sig.to_owned());
        }
        s.to_owned()
    }

    fn command(&self, program: &Path, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir)
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

    /// Runs bounded: terraform retries an unreachable blob endpoint for minutes.
    #[track_caller]
    fn run<S: AsRef<OsStr>>(&self, program: &Path, args: &[S]) -> Run {
        self.run_in(program, &self.work, args)
    }

    /// The same in another directory (a copy of the root, for the differential check).
    #[track_caller]
    fn run_in<S: AsRef<OsStr>>(&self, program: &Path, dir: &Path, args: &[S]) -> Run {
        let mut cmd = Command::new("timeout");
        cmd.arg("120").arg(program).args(args);
        let mut real = self.command(Path::new("timeout"), dir);
        real.args(cmd.get_args());
        let output = real.output().expect("could not start the command");
        let run = Run {
            label: format!(
                "{:?} {:?}",
                program,
                args.iter()
                    .map(|a| a.as_ref().to_owned())
                    .collect::<Vec<_>>()
            ),
            output,
        };
        assert_ne!(run.code(), Some(124), "{} timed out", run.label);
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
        let bin = self.terraform_bin.clone().unwrap_or_else(real_terraform);
        self.run(&bin, args)
    }

    #[track_caller]
    fn tfshim<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.run(Path::new(tfshim_bin()), args)
    }

    /// `init -backend-config=NAME=VALUE` (the documented way to give the backend a key or a SAS).
    #[track_caller]
    fn init_with(&self, name: &str, value: &str) {
        self.terraform(&[
            "init".to_owned(),
            "-input=false".to_owned(),
            "-no-color".to_owned(),
            format!("-backend-config={name}={value}"),
        ])
        .success();
        // Go's JSON escapes `&` (a SAS's separator): compare the parsed value.
        assert_eq!(
            self.saved_backend()["config"][name].as_str(),
            Some(value),
            "init did not save {name}"
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
                self.terraform_bin
                    .clone()
                    .unwrap_or_else(real_terraform)
                    .display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        self.env("TFSHIM_TERRAFORM", wrapper);
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.root.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn reconfigures(&self) -> usize {
        self.calls()
            .iter()
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

/// After a repair: the same backend without `access_key`/`sas_token`, every other setting kept.
#[track_caller]
fn only_the_credential_left(before: &Value, after: &Value) {
    assert_eq!(before["hash"], after["hash"]);
    let (b, a) = (
        before["config"].as_object().unwrap(),
        after["config"].as_object().unwrap(),
    );
    for (k, v) in b {
        if k == "access_key" || k == "sas_token" {
            assert!(a[k].is_null(), "{k} still saved");
        } else {
            assert_eq!(&a[k], v, "{k} changed");
        }
    }
}

/// The saved settings that say which state is addressed: every one that is set but the
/// credentials.
fn addressed(dir: &Path) -> Value {
    let Ok(raw) = fs::read(dir.join(".terraform/terraform.tfstate")) else {
        return Value::Null;
    };
    let b = serde_json::from_slice::<Value>(&raw).unwrap()["backend"].clone();
    let config: Map<String, Value> = b["config"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "access_key" | "sas_token") && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({"type": b["type"], "config": config})
}

fn saved_bytes_in(dir: &Path) -> Option<Vec<u8>> {
    fs::read(dir.join(".terraform/terraform.tfstate")).ok()
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

/// What a differential row expects (plain terraform fails in every row).
struct Expect {
    /// The careful manual fix (reconfigure without the key and SAS) heals.
    manual_heals: bool,
    /// tfshim repairs and heals; otherwise it exits 1 and leaves the saved file byte-identical.
    shim_heals: bool,
}

/// The differential check (as `gcs.rs` and `differential.rs` do): `plan` run by plain terraform,
/// after the careful manual fix, and through tfshim, each on its own copy of the root (its own
/// `.terraform`), all three saved backends addressing the same blob, one after another.
#[track_caller]
fn differential(r: &mut AzRoot, expect: Expect) {
    r.env("TFSHIM_QUIET", "0");
    let base = r.root.path().join("differential");
    let (plain_dir, manual_dir, shim_dir) =
        (base.join("plain"), base.join("manual"), base.join("shim"));
    for d in [&plain_dir, &manual_dir, &shim_dir] {
        copy_dir(&r.work, d);
    }
    let before = addressed(&r.work);
    let before_bytes = saved_bytes_in(&r.work);
    assert!(before_bytes.is_some(), "the root is not initialised");
    let tf = r.terraform_bin.clone().unwrap_or_else(real_terraform);
    let plain = r.run_in(&tf, &plain_dir, PLAN);

    // The manual fix: every saved setting that is set and is no credential, in a file; terraform
    // then takes the key or SAS from ARM_ACCESS_KEY / ARM_SAS_TOKEN.
    let settings = manual_dir.join("manual-settings.json");
    fs::write(
        &settings,
        serde_json::to_vec_pretty(&addressed(&manual_dir)["config"]).unwrap(),
    )
    .unwrap();
    let file_flag = format!("-backend-config={}", settings.display());
    let reconfigure = r.run_in(
        &tf,
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
        .then(|| r.run_in(&tf, &manual_dir, PLAN));
    let manual_healed = manual.as_ref().is_some_and(|m| m.code() == Some(0));

    let shim = r.run_in(Path::new(tfshim_bin()), &shim_dir, PLAN);
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
    assert_eq!(plain.code(), Some(1), "plain terraform\n{story}");
    assert_eq!(
        saved_bytes_in(&plain_dir),
        before_bytes,
        "plain terraform changed its saved backend\n{story}"
    );
    assert_eq!(
        manual_healed, expect.manual_heals,
        "the manual fix:\n{story}"
    );
    if let Some(m) = manual.as_ref().filter(|_| manual_healed) {
        // The same state: the applied resource is there, nothing to add.
        assert!(m.stdout().contains("No changes"), "{}\n{story}", m.stdout());
        assert_eq!(addressed(&manual_dir), before, "{story}");
    }
    let repaired = shim
        .stderr()
        .contains("re-initialising the backend without it");
    if expect.shim_heals {
        assert_eq!(shim.code(), Some(0), "tfshim did not heal\n{story}");
        assert!(repaired, "tfshim healed without a repair\n{story}");
        assert!(
            shim.stdout().contains("No changes"),
            "{}\n{story}",
            shim.stdout()
        );
        assert_eq!(addressed(&shim_dir), addressed(&manual_dir), "{story}");
        let saved = &serde_json::from_slice::<Value>(&saved_bytes_in(&shim_dir).unwrap()).unwrap()
            ["backend"]["config"];
        assert!(saved["access_key"].is_null(), "{story}");
        assert!(saved["sas_token"].is_null(), "{story}");
    } else {
        assert_eq!(shim.code(), Some(1), "tfshim\n{story}");
        assert!(!repaired, "tfshim repaired\n{story}");
        assert_eq!(
            saved_bytes_in(&shim_dir),
            before_bytes,
            "tfshim failed and changed the saved backend\n{story}"
        );
    }
    assert_eq!(
        addressed(&shim_dir),
        before,
        "the addressed state changed\n{story}"
    );
}

#[test]
fn rotated_key_is_healed_from_arm_access_key() {
    let k1 = new_key(1);
    let mut r = AzRoot::new(&k1);
    r.init_with("access_key", &k1);
    r.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .success();
    let before = r.saved_backend();

    // The key is rotated; the new one is in ARM_ACCESS_KEY.
    let k2 = r.secret(&new_key(2));
    r.storage.restart_with(&k2);
    r.env("ARM_ACCESS_KEY", &k2);
    r.terraform(PLAN).code_is(1).stderr_has("403");
    differential(
        &mut r,
        Expect {
            manual_heals: true,
            shim_heals: true,
        },
    );

    r.record_terraform_calls();
    r.env("TFSHIM_QUIET", "0");
    r.tfshim(PLAN).success().stdout_has("No changes");
    assert_eq!(r.reconfigures(), 1, "{:?}", r.calls());
    only_the_credential_left(&before, &r.saved_backend());
    // Healed: the next run needs no repair and costs tfshim nothing.
    r.storage.reset_counts();
    r.tfshim(PLAN).success();
    assert_eq!(r.reconfigures(), 1);
    assert_eq!(r.storage.requests().0, 0, "nothing saved is left to check");
}

/// An initialised and applied root whose saved key is then rotated away (ARM_ACCESS_KEY unset).
fn rotated_root() -> (AzRoot, String) {
    let k1 = new_key(1);
    let mut r = AzRoot::new(&k1);
    r.init_with("access_key", &k1);
    r.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .success();
    let k2 = r.secret(&new_key(2));
    r.storage.restart_with(&k2);
    (r, k2)
}

#[test]
fn expired_sas_is_healed_from_arm_sas_token() {
    let key = new_key(3);
    let mut r = AzRoot::new(&key);
    // A SAS valid for a few seconds, saved by init (and used to write the state), then expired.
    let old = r.secret(&account_sas(&key, "+12"));
    let new = r.secret(&account_sas(&key, FUTURE));
    let t0 = std::time::Instant::now();
    r.init_with("sas_token", &old);
    r.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .success();
    let before = r.saved_backend();
    std::thread::sleep(std::time::Duration::from_secs(14).saturating_sub(t0.elapsed()));
    r.terraform(PLAN)
        .code_is(1)
        .stderr_has("AuthenticationFailed");

    r.env("ARM_SAS_TOKEN", &new);
    differential(
        &mut r,
        Expect {
            manual_heals: true,
            shim_heals: true,
        },
    );
    r.record_terraform_calls();
    r.env("TFSHIM_QUIET", "0");
    r.tfshim(PLAN)
        .success()
        .stdout_has("No changes")
        .stderr_has("SAS token (storage account acct)");
    assert_eq!(r.reconfigures(), 1, "{:?}", r.calls());
    only_the_credential_left(&before, &r.saved_backend());
}

#[test]
fn a_stale_env_key_beats_a_valid_sas_so_nothing_is_repaired() {
    let (mut r, k2) = rotated_root();
    let stale = new_key(9);
    r.secret(&stale);
    r.env("ARM_ACCESS_KEY", &stale);
    let sas = r.secret(&account_sas(&k2, FUTURE));
    r.env("ARM_SAS_TOKEN", &sas);
    // Terraform takes the stale key over the SAS: the manual fix does not heal either.
    differential(
        &mut r,
        Expect {
            manual_heals: false,
            shim_heals: false,
        },
    );
    let before = r.saved_bytes();
    r.record_terraform_calls();
    r.env("TFSHIM_QUIET", "0");
    let run = r.tfshim(PLAN);
    run.code_is(1).stderr_has("ARM_ACCESS_KEY");
    assert_eq!(r.reconfigures(), 0, "{:?}", r.calls());
    assert_eq!(r.saved_bytes(), before, "the saved backend changed");
}

#[test]
fn no_fallback_changes_nothing_and_exits_1() {
    let (mut r, _) = rotated_root();
    differential(
        &mut r,
        Expect {
            manual_heals: false,
            shim_heals: false,
        },
    );
    let before = r.saved_bytes();
    r.record_terraform_calls();
    r.env("TFSHIM_QUIET", "0");
    r.tfshim(PLAN)
        .code_is(1)
        .stderr_has("no working credentials were found")
        .stderr_has("ARM_ACCESS_KEY");
    assert_eq!(r.reconfigures(), 0);
    assert_eq!(r.saved_bytes(), before);
}

#[test]
fn a_firewall_403_is_no_verdict() {
    let (mut r, k2) = rotated_root();
    r.env("ARM_ACCESS_KEY", &k2);
    r.storage.firewall(true);
    let before = r.saved_bytes();
    r.record_terraform_calls();
    r.env("TFSHIM_QUIET", "0");
    r.storage.reset_counts();
    r.tfshim(PLAN).code_is(1).stderr_has(
        "could not check the saved backend access key (storage account acct) \
         (HTTP 403 AuthorizationFailure); running terraform unchanged",
    );
    assert_eq!(r.storage.requests().0, 1, "tfshim's requests");
    assert_eq!(r.reconfigures(), 0, "{:?}", r.calls());
    assert_eq!(r.saved_bytes(), before);
}

#[test]
fn a_valid_key_costs_one_request() {
    let key = new_key(4);
    let mut r = AzRoot::new(&key);
    r.init_with("access_key", &key);
    r.storage.reset_counts();
    r.tfshim(PLAN).success();
    assert_eq!(r.storage.requests().0, 1, "tfshim's requests");
}

#[test]
fn a_credential_only_init_gets_reconfigure() {
    let (mut r, k2) = rotated_root();
    r.record_terraform_calls();
    r.tfshim(&[
        "init".to_owned(),
        "-input=false".to_owned(),
        "-no-color".to_owned(),
        format!("-backend-config=access_key={k2}"),
    ])
    .success();
    let calls = r.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("init") && c.contains("-reconfigure")),
        "{calls:?}"
    );
    assert!(r.saved_text().contains(&k2));
    r.tfshim(PLAN).success();
}

#[test]
fn doctor_sweep_and_report_show_the_verdict() {
    let (mut r, _) = rotated_root();
    let report = r.root.path().join("report.json");
    r.env("TFSHIM_REPORT", &report);
    r.tfshim(&["shim", "doctor"])
        .stdout_has("access key (storage account acct)")
        .stdout_has("AuthenticationFailed");
    let sweep_root = r.root.path().to_owned();
    r.tfshim(&[
        OsStr::new("shim"),
        OsStr::new("sweep"),
        sweep_root.as_os_str(),
    ])
    .stdout_has("AuthenticationFailed");
    r.tfshim(PLAN).code_is(1);
    let text = fs::read_to_string(&report).unwrap();
    assert!(text.contains("AuthenticationFailed"), "{text}");
}

/// Terraform 1.0.3 reads `metadata_host` only with an environment it does not know.
#[test]
fn rotated_key_is_healed_on_terraform_1_0_3() {
    let k1 = new_key(5);
    let mut r = AzRoot::with(&k1, "    environment          = \"tfshimtest\"\n");
    // No `terraform_data` before 1.4: an output makes the state.
    let tf = r.work.join("main.tf");
    let text = fs::read_to_string(&tf).unwrap().replace(
        "resource \"terraform_data\" \"x\" {\n  input = \"hello\"\n}",
        "output \"x\" {\n  value = \"hello\"\n}",
    );
    fs::write(&tf, text).unwrap();
    r.terraform_bin = Some(crate::support::terraforms::binary(
        crate::support::terraforms::V1_0_3,
    ));
    r.init_with("access_key", &k1);
    r.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .success();
    let before = r.saved_backend();
    let k2 = r.secret(&new_key(6));
    r.storage.restart_with(&k2);
    r.env("ARM_ACCESS_KEY", &k2);
    r.terraform(PLAN)
        .code_is(1)
        .stderr_has("Code=\"AuthenticationFailed\"");
    r.record_terraform_calls();
    r.tfshim(PLAN).success().stdout_has("No changes");
    assert_eq!(r.reconfigures(), 1, "{:?}", r.calls());
    only_the_credential_left(&before, &r.saved_backend());
}
