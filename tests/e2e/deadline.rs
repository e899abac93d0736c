//! `TFSHIM_STS_TIMEOUT` bounds the whole check of a root, end to end (#20, item 1): a server that
//! completes the TLS handshake and then drips its answer, or one that answers each request just
//! before the timeout, delays terraform by at most that timeout (plus the time to start). And a
//! server certificate pinned in `client_ca_certificate_pem` is accepted exactly where terraform's Go
//! accepts it (#20, item 8). The real terraform runs in every case; the misbehaving server
//! (`support::drip`) misbehaves for tfshim's requests only, so terraform's own run is the
//! reference.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::drip::DripFront;
use crate::support::state_server::StateServer;
use crate::support::{real_terraform, tfshim_bin, Layout, Run, Sandbox};

/// `TFSHIM_STS_TIMEOUT` in these tests.
const TIMEOUT: Duration = Duration::from_secs(1);
/// What starting tfshim (a debug build) and the wrapper costs on a loaded machine, beyond the
/// timeout. The documented bound is one timeout per root's check.
const SLACK: Duration = Duration::from_secs(2);
/// A run that has not reached terraform by then never will in reasonable time: it is killed.
const CAP: Duration = Duration::from_secs(40);

/// The wrapper tfshim runs terraform through: it notes when terraform was first started.
fn stamping_wrapper(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let wrapper = dir.join("terraform-wrapper");
    let stamp = dir.join("terraform-started");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ -f '{0}' ] || date +%s.%N > '{0}'\nexec '{1}' \"$@\"\n",
            stamp.display(),
            real_terraform().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    (wrapper, stamp)
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs `cmd` (whose terraform is the stamping wrapper) and says how long tfshim kept terraform
/// waiting: until it started terraform, or until it ended without (a refusal); kills it at
/// [`CAP`].
#[track_caller]
fn time_to_terraform(mut cmd: Command, stamp: &Path, secrets: &[String]) -> (Run, Duration) {
    let _ = fs::remove_file(stamp);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = epoch();
    let clock = Instant::now();
    let mut child = cmd.spawn().expect("could not start tfshim");
    // Read both pipes as they fill, so that a chatty run cannot block on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if clock.elapsed() > CAP {
            killed = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ended = clock.elapsed();
    let run = Run {
        label: format!("{:?}", cmd.get_args().collect::<Vec<_>>()),
        output: std::process::Output {
            status,
            stdout: out_thread.join().unwrap(),
            stderr: err_thread.join().unwrap(),
        },
    };
    run.assert_no_secret(secrets);
    assert!(
        !killed,
        "tfshim had not started terraform after {CAP:?} (killed):\n{}",
        run.stderr()
    );
    match fs::read_to_string(stamp) {
        Ok(stamp) => {
            let at: f64 = stamp.trim().parse().unwrap();
            (run, Duration::from_secs_f64((at - started).max(0.0)))
        }
        Err(_) => (run, ended),
    }
}

#[track_caller]
fn assert_bounded(took: Duration, run: &Run) {
    assert!(
        took < TIMEOUT + SLACK,
        "terraform started {took:?} after tfshim with TFSHIM_STS_TIMEOUT={TIMEOUT:?} (bound: the \
         timeout + {SLACK:?}):\n{}",
        run.stderr()
    );
}

const USER: &str = "alice";

/// An http-backend root whose address is a [`DripFront`] before the state server.
struct HttpRoot {
    dir: tempfile::TempDir,
    work: PathBuf,
    server: StateServer,
    front: DripFront,
    secrets: Vec<String>,
    env: Vec<(OsString, OsString)>,
}

impl HttpRoot {
    /// `extra_tf`: more backend attributes.
    fn new(tls: bool, mode: &str, extra_tf: &str) -> HttpRoot {
        let server = StateServer::start();
        let dir = tempfile::Builder::new()
            .prefix("tfshim-deadline-")
            .tempdir()
            .unwrap();
        let work = dir.path().join("work");
        for d in ["work", "home", "tmp"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        fs::write(dir.path().join("terraformrc"), "").unwrap();
        let front = DripFront::start(server.port, &dir.path().join("front"), tls, mode);
        let scheme = if tls { "https" } else { "http" };
        fs::write(
            work.join("main.tf"),
            format!(
                "terraform {{\n  backend \"http\" {{\n    address = \"{scheme}://127.0.0.1:{}/state/prod\"\n\
                 {extra_tf}    retry_max = 1\n    retry_wait_min = 1\n    retry_wait_max = 1\n  }}\n}}\n\
                 resource \"terraform_data\" \"x\" {{\n  input = \"hello\"\n}}\n",
                front.port
            ),
        )
        .unwrap();
        HttpRoot {
            dir,
            work,
            server,
            front,
            secrets: Vec::new(),
            env: Vec::new(),
        }
    }

    fn grant(&mut self, user: &str, name: &str) -> String {
        let t = format!("glpat-{name}{}x{}", std::process::id(), epoch().fract());
        self.server.grant(user, &t);
        self.secrets.push(t.clone());
        t
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_CLI_CONFIG_FILE", self.dir.path().join("terraformrc"))
            .env("TFSHIM_STS_TIMEOUT", TIMEOUT.as_secs_f64().to_string())
            .env("TFSHIM_QUIET", "1")
            .env("TMPDIR", self.dir.path().join("tmp"))
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    #[track_caller]
    fn run(&self, program: &Path, args: &[String]) -> Run {
        let mut cmd = self.command(program);
        cmd.args(args);
        let run = Run {
            label: format!("{program:?} {args:?}"),
            output: cmd.output().unwrap(),
        };
        run.assert_no_secret(&self.secrets);
        run
    }

    /// `init` with the username and the token by `-backend-config`.
    #[track_caller]
    fn init(&self, token: &str, extra: &[String]) {
        let mut args: Vec<String> = [
            "init",
            "-input=false",
            "-no-color",
            &format!("-backend-config=username={USER}"),
            &format!("-backend-config=password={token}"),
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend_from_slice(extra);
        self.run(&real_terraform(), &args).success();
    }

    fn plan_args() -> Vec<String> {
        ["plan", "-input=false", "-no-color"]
            .map(str::to_owned)
            .to_vec()
    }

    /// `tfshim plan`, timed to the start of terraform.
    #[track_caller]
    fn timed_plan(&self) -> (Run, Duration) {
        let (wrapper, stamp) = stamping_wrapper(self.dir.path());
        let mut cmd = self.command(Path::new(tfshim_bin()));
        cmd.env("TFSHIM_TERRAFORM", wrapper).args(Self::plan_args());
        time_to_terraform(cmd, &stamp, &self.secrets)
    }

    fn saved_bytes(&self) -> Vec<u8> {
        fs::read(self.work.join(".terraform/terraform.tfstate")).unwrap()
    }
}

/// Over TLS, a server that completes the handshake and then sends its answer one byte every
/// 0.25 s (one TLS record of 16 KiB: over an hour): rustls inside a blocking `read` never returned
/// before the record was whole; now the whole request is under the deadline.
#[test]
fn a_dripping_tls_server_costs_at_most_the_timeout() {
    let mut r = HttpRoot::new(true, "pass", "");
    let ca = fs::read_to_string(r.front.file("ca.pem")).unwrap();
    r.env("TF_HTTP_CLIENT_CA_CERTIFICATE_PEM", &ca);
    let t1 = r.grant(USER, "one");
    r.init(&t1, &[]);
    r.front.set_mode("drip");
    let before = r.saved_bytes();
    let (run, took) = r.timed_plan();
    assert_bounded(took, &run);
    run.success()
        .stderr_has("could not check the saved backend password (user alice) (timeout)");
    assert_eq!(r.saved_bytes(), before);
}

/// Over plain http, a server that answers each of tfshim's requests just before the timeout: the
/// verdict's HEAD and GET and the fallback's (with the saved username, then `TF_HTTP_USERNAME`) —
/// five requests — each got a full timeout of their own; now they share one.
#[test]
fn a_slow_server_costs_at_most_the_timeout_for_all_requests() {
    let mut r = HttpRoot::new(false, "pass", "");
    let t1 = r.grant(USER, "one");
    r.init(&t1, &[]);
    r.server.revoke(&t1);
    // Only bob's token works, so the whole fallback is walked: 401, 401, 401, 401, 200.
    let t2 = r.grant("bob", "two");
    r.env("TF_HTTP_PASSWORD", &t2);
    r.env("TF_HTTP_USERNAME", "bob");
    r.front.set_mode("slow:0.9");
    let before = r.saved_bytes();
    let (run, took) = r.timed_plan();
    assert_bounded(took, &run);
    run.stderr_has("could not check the saved backend password (user alice) (timeout)");
    assert_eq!(r.saved_bytes(), before);
}

impl HttpRoot {
    fn env(&mut self, k: &str, v: impl Into<OsString>) {
        self.env.push((k.into(), v.into()));
    }
}

/// STS is bounded the same way: an `endpoints.sts` over TLS (trusted through `custom_ca_bundle`)
/// that completes the handshake and drips its answer costs at most the timeout.
#[test]
fn a_dripping_sts_endpoint_costs_at_most_the_timeout() {
    let mut sb = Sandbox::new(Layout::default());
    let front = DripFront::start(sb.sts.port, &sb.root.path().join("front"), true, "pass");
    let main_tf = sb.main_tf(Layout::default()).replace(
        &format!("sts = \"http://127.0.0.1:{}\"", sb.sts.port),
        &format!("sts = \"https://127.0.0.1:{}\"", front.port),
    );
    let main_tf = main_tf.replace(
        "    region = \"us-east-1\"\n",
        &format!(
            "    region = \"us-east-1\"\n    custom_ca_bundle = \"{}\"\n",
            front.file("ca.pem").display()
        ),
    );
    assert!(main_tf.contains("custom_ca_bundle") && main_tf.contains("https://127.0.0.1"));
    fs::write(sb.work.join("main.tf"), main_tf).unwrap();
    sb.init_with_saved_key(&[]);
    front.set_mode("drip");
    sb.env("TFSHIM_STS_TIMEOUT", TIMEOUT.as_secs_f64().to_string());
    let (wrapper, stamp) = stamping_wrapper(sb.root.path());
    sb.env("TFSHIM_TERRAFORM", &wrapper);
    let before = sb.saved_bytes();
    let mut cmd = sb.tfshim_cmd();
    cmd.args(["plan", "-input=false", "-no-color"]);
    let (run, took) = time_to_terraform(cmd, &stamp, &sb.secrets);
    assert_bounded(took, &run);
    run.success()
        .stderr_has("could not check the saved backend key")
        .stderr_has("timeout");
    assert_eq!(sb.saved_bytes(), before);
}

/// A slow STS (each answer just before the timeout) for the S3 check of one root: the saved key's
/// call, the fallback's, and — the fallback key rejected too — the fresh-key window's calls each
/// had a full timeout of their own; now the key and its fallback share one.
#[test]
fn a_slow_sts_costs_at_most_the_timeout_for_the_key_and_its_fallback() {
    let mut sb = Sandbox::new(Layout::default());
    let front = DripFront::start(sb.sts.port, &sb.root.path().join("front"), false, "pass");
    let main_tf = sb.main_tf(Layout::default()).replace(
        &format!("sts = \"http://127.0.0.1:{}\"", sb.sts.port),
        &format!("sts = \"http://127.0.0.1:{}\"", front.port),
    );
    fs::write(sb.work.join("main.tf"), main_tf).unwrap();
    sb.init_with_saved_key(&[]);
    // The saved key is rotated away, and the fallback holds that same dead key.
    let old = sb.rotate();
    sb.set_ambient(Some(&old));
    front.set_mode("slow:0.9");
    sb.env("TFSHIM_STS_TIMEOUT", TIMEOUT.as_secs_f64().to_string())
        .env("TFSHIM_FRESH_KEY_WAIT", "2");
    let (wrapper, stamp) = stamping_wrapper(sb.root.path());
    sb.env("TFSHIM_TERRAFORM", &wrapper);
    let before = sb.saved_bytes();
    let mut cmd = sb.tfshim_cmd();
    cmd.args(["plan", "-input=false", "-no-color"]);
    let (run, took) = time_to_terraform(cmd, &stamp, &sb.secrets);
    assert_bounded(took, &run);
    assert_eq!(sb.saved_bytes(), before);
}

/// `client_ca_certificate_pem` holding the server's own self-signed `CA:TRUE` certificate, with
/// four more pinned beside it: for each certificate the server may present, terraform (Go) is the
/// reference — where its plan works with a valid token, tfshim reaches a verdict and heals a
/// revoked one; where Go refuses the certificate (another host, clientAuth only, expired, not
/// pinned), tfshim has no verdict and changes nothing.
#[test]
fn a_pinned_server_certificate_is_accepted_where_go_accepts_it() {
    let cases = [
        ("pinned", true),
        ("pinned_wrong_host", false),
        ("pinned_client_auth", false),
        ("pinned_expired", false),
        ("unpinned", false),
    ];
    for (cert, go_accepts) in cases {
        let mut r = HttpRoot::new(true, "pass", "");
        let pins = fs::read_to_string(r.front.file("pins.pem")).unwrap();
        r.front.serve("pinned");
        let t1 = r.grant(USER, "one");
        r.init(
            &t1,
            &[format!("-backend-config=client_ca_certificate_pem={pins}")],
        );
        r.front.serve(cert);
        // The reference: terraform alone, with the token still valid.
        let reference = r.run(&real_terraform(), &HttpRoot::plan_args());
        assert_eq!(
            reference.output.status.success(),
            go_accepts,
            "{cert}: terraform's verdict on the certificate:\n{}",
            reference.stderr()
        );
        r.server.revoke(&t1);
        let t2 = r.grant(USER, "two");
        r.env("TF_HTTP_PASSWORD", &t2);
        let before = r.saved_bytes();
        let run = r.run(Path::new(tfshim_bin()), &HttpRoot::plan_args());
        if go_accepts {
            run.success()
                .stderr_has("was rejected by the state server (HTTP 401)");
            assert_ne!(r.saved_bytes(), before, "{cert}: not repaired");
        } else {
            run.stderr_has("could not check the saved backend password (user alice) (TLS");
            assert!(
                !run.output.status.success(),
                "{cert}: terraform cannot work"
            );
            assert_eq!(r.saved_bytes(), before, "{cert}");
        }
    }
}
