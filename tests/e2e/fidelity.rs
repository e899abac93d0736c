//! Issue #20, items 4 and 6: tfshim reads every saved attribute and picks every proxy exactly as
//! terraform does, end to end with the real terraform as the reference.
//!
//! - Item 4: `init -backend-config=username= -backend-config=password=…` saves `username = ""`;
//!   terraform keeps it and sends no basic auth. tfshim once took `TF_HTTP_USERNAME` instead, got
//!   401 and refused a run plain terraform completed.
//! - Item 6: an address `http://[::ffff:127.0.0.1]:…` is loopback to Go (never proxied); tfshim once
//!   sent the token to `HTTP_PROXY` and read that proxy's own 403 as a rejected token. A proxy's
//!   own 407 is no verdict either.
//!
//! The differential rows for both are at the end of `differential.rs`.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::support::state_server::StateServer;
use crate::support::{real_terraform, tfshim_bin, Run};

/// An HTTP proxy that answers every request (a `CONNECT` too) with one status of its own — 403 as a
/// proxy that forbids the destination, 407 as one that wants its own credentials — and keeps the
/// head of each request, to show what reached it.
pub struct StatusProxy {
    pub port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl StatusProxy {
    pub fn start(status: u16) -> StatusProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the status proxy");
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let h = h.clone();
                thread::spawn(move || answer(conn, status, &h));
            }
        });
        StatusProxy { port, heads }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request heads the proxy received.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn answer(mut conn: TcpStream, status: u16, heads: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while !data.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&data).into_owned());
    let body = "refused by the proxy";
    let auth = if status == 407 {
        "Proxy-Authenticate: Basic realm=\"proxy\"\r\n"
    } else {
        ""
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status} Proxy Says No\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Write);
}

/// A root whose http backend names `address`, with an isolated environment.
struct Root {
    dir: tempfile::TempDir,
    work: PathBuf,
    env: Vec<(OsString, OsString)>,
    secrets: Vec<String>,
}

impl Root {
    fn new(address: &str, lock_address: &str) -> Root {
        let dir = tempfile::Builder::new()
            .prefix("tfshim-fidelity-")
            .tempdir()
            .unwrap();
        let work = dir.path().join("work");
        for d in [&work, &dir.path().join("home"), &dir.path().join("tmp")] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(dir.path().join("terraformrc"), "").unwrap();
        fs::write(
            work.join("main.tf"),
            format!(
                "terraform {{\n  backend \"http\" {{\n    address        = \"{address}\"\n    \
                 lock_address   = \"{lock_address}\"\n    unlock_address = \"{lock_address}\"\n    \
                 lock_method    = \"POST\"\n    unlock_method  = \"DELETE\"\n    retry_max      = 1\n    \
                 retry_wait_min = 1\n    retry_wait_max = 2\n  }}\n}}\n\n\
                 resource \"terraform_data\" \"x\" {{\n  input = \"hello\"\n}}\n"
            ),
        )
        .unwrap();
        Root {
            dir,
            work,
            env: Vec::new(),
            secrets: Vec::new(),
        }
    }

    fn env(&mut self, k: &str, v: impl Into<OsString>) {
        self.env.push((k.into(), v.into()));
    }

    #[track_caller]
    fn run<S: AsRef<OsStr>>(&self, program: &Path, args: &[S]) -> Run {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_CLI_CONFIG_FILE", self.dir.path().join("terraformrc"))
            .env("TFSHIM_STS_TIMEOUT", "5")
            .env("TMPDIR", self.dir.path().join("tmp"))
            .stdin(Stdio::null())
            .args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let output = cmd.output().expect("could not start the command");
        let run = Run {
            label: format!("{:?} {:?}", program, cmd.get_args().collect::<Vec<_>>()),
            output,
        };
        run.assert_no_secret(&self.secrets);
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

    fn saved(&self) -> Vec<u8> {
        fs::read(self.work.join(".terraform/terraform.tfstate")).unwrap()
    }
}

const PLAN: &[&str] = &["plan", "-input=false", "-no-color"];

fn token(name: &str) -> String {
    format!("glpat-{name}-{}-fidelity", std::process::id())
}

/// Item 4: `username = ""` saved. terraform sends no basic auth (the server serves anonymous
/// requests), whatever `TF_HTTP_USERNAME` says; tfshim must neither check nor repair anything, and
/// must let the plan run as plain terraform runs it.
#[test]
fn empty_username_is_terraform_s_value_not_the_variable() {
    let server = StateServer::start();
    server.allow_anonymous();
    let valid = token("valid");
    server.grant("alice", &valid);
    let mut root = Root::new(&server.address("prod"), &server.lock_address("prod"));
    // A password the server does not know: never sent by terraform (no username), so harmless.
    let unused = token("unused");
    root.secrets = vec![valid.clone(), unused.clone()];
    root.env("TF_HTTP_USERNAME", "alice");
    root.terraform(&[
        "init",
        "-input=false",
        "-no-color",
        "-backend-config=username=",
        &format!("-backend-config=password={unused}"),
    ])
    .success();
    let saved = root.saved();
    let config: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    assert_eq!(
        config["backend"]["config"]["username"], "",
        "terraform keeps the empty username"
    );
    root.terraform(PLAN).success();
    server.clear_log();

    let shim = root.tfshim(PLAN);
    shim.success();
    assert_eq!(root.saved(), saved, "tfshim changed the saved backend");
    assert!(
        server.tfshim_requests().is_empty(),
        "tfshim checked a password terraform never sends: {:?}",
        server.tfshim_requests()
    );
    assert!(
        server.log().iter().all(|l| l.authorized),
        "a request was refused: {:?}",
        server.log()
    );
}

/// Item 6: the address is `[::ffff:127.0.0.1]`, loopback to Go, and `HTTP_PROXY` names a proxy that
/// forbids everything. terraform goes direct and works; tfshim must go direct too, never send the
/// token to the proxy, and judge the (valid) token by the server's answer.
#[test]
fn ipv4_mapped_loopback_is_never_proxied() {
    let server = StateServer::start();
    let proxy = StatusProxy::start(403);
    let valid = token("mapped");
    server.grant("alice", &valid);
    let address = format!("http://[::ffff:127.0.0.1]:{}/state/prod", server.port);
    let mut root = Root::new(&address, &format!("{address}/lock"));
    root.secrets = vec![valid.clone()];
    root.env("HTTP_PROXY", proxy.url());
    root.env("HTTPS_PROXY", proxy.url());
    root.terraform(&[
        "init",
        "-input=false",
        "-no-color",
        "-backend-config=username=alice",
        &format!("-backend-config=password={valid}"),
    ])
    .success();
    root.terraform(PLAN).success();
    assert!(proxy.heads().is_empty(), "terraform used the proxy");
    let saved = root.saved();

    let shim = root.tfshim(PLAN);
    shim.success();
    assert_eq!(root.saved(), saved, "tfshim changed the saved backend");
    assert!(
        proxy.heads().is_empty(),
        "tfshim sent a request (with the token) to the proxy: {:?}",
        proxy
            .heads()
            .iter()
            .map(|h| h.lines().next().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    );
    assert!(
        server.tfshim_requests().iter().any(|l| l.authorized),
        "tfshim did not check the token with the server directly: {:?}",
        server.log()
    );
}

/// Item 6: a proxy's own 407 (it wants its own credentials) says nothing about the state server's
/// token: no verdict, terraform runs unchanged and meets the same 407, the saved token stays.
#[test]
fn a_proxy_s_407_is_no_verdict() {
    let server = StateServer::start();
    let valid = token("p407");
    server.grant("alice", &valid);
    let mut root = Root::new(&server.address("prod"), &server.lock_address("prod"));
    root.secrets = vec![valid.clone()];
    root.terraform(&[
        "init",
        "-input=false",
        "-no-color",
        "-backend-config=username=alice",
        &format!("-backend-config=password={valid}"),
    ])
    .success();
    let saved = root.saved();
    // A name, not loopback: Go sends it to HTTP_PROXY (which answers 407 to everything).
    let proxy = StatusProxy::start(407);
    let named = format!("http://state.tfshim.test:{}/state/prod", server.port);
    let mut text = String::from_utf8(saved.clone()).unwrap();
    text = text.replace(&server.address("prod"), &named);
    fs::write(root.work.join(".terraform/terraform.tfstate"), &text).unwrap();
    root.env("HTTP_PROXY", proxy.url());
    root.env("TF_HTTP_PASSWORD", token("fallback"));
    let plain = root.terraform(PLAN);
    assert_ne!(plain.code(), Some(0), "terraform got past the proxy's 407");
    let before = root.saved();
    let shim = root.tfshim(PLAN);
    assert_eq!(shim.code(), plain.code(), "{}", shim.stderr());
    assert_eq!(root.saved(), before, "tfshim changed the saved backend");
    let stderr = shim.stderr();
    assert!(
        !stderr.contains("re-initialising") && !stderr.contains("rejected"),
        "tfshim read the proxy's 407 as a verdict:\n{stderr}"
    );
}
