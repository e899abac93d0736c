//! The e2e harness: a `Sandbox` per test — a temp dir with a Terraform root whose S3 backend points at
//! the shared moto servers (through a per-test counting STS proxy), an isolated HOME and AWS
//! environment, and runners for the real `terraform` and for tfshim with `#[track_caller]` assertions.

#[cfg(unix)]
pub mod azure;
pub mod drip;
pub mod forward;
pub mod gcs_server;
pub mod moto;
pub mod proxy;
pub mod state_server;
pub mod terraforms;
pub mod tls;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use forward::ForwardProxy;
pub use moto::{moto, Key, BUCKET};
pub use proxy::{Fault, StsProxy};
pub use tls::TlsFront;

/// The tfshim under test: cargo's build of this crate, or the binary `TFSHIM_TEST_BIN` names (the
/// static release build, which `shell/test.sh` runs the suite against too).
pub fn tfshim_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var("TFSHIM_TEST_BIN") {
        Ok(bin) if !bin.is_empty() => {
            assert!(
                Path::new(&bin).is_absolute() && Path::new(&bin).is_file(),
                "TFSHIM_TEST_BIN={bin:?} is not an absolute path to a file"
            );
            bin
        }
        _ => env!("CARGO_BIN_EXE_tfshim").to_owned(),
    })
}

/// The real terraform, found on PATH; tests fail (never skip) without it.
pub fn real_terraform() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("terraform"))
        .find(|p| p.is_file())
        .expect("the real `terraform` binary is not on PATH; these tests run against it (docs/terraform-backend.md)")
}

static USERS: AtomicUsize = AtomicUsize::new(0);

/// Options for the generated `main.tf`.
#[derive(Clone, Copy, Default)]
pub struct Layout {
    /// Leave `bucket` and `key` out of the `.tf` block (given by `-backend-config` at init instead).
    pub partial: bool,
    /// No backend block at all: local state.
    pub local: bool,
}

pub struct Sandbox {
    pub root: tempfile::TempDir,
    /// The Terraform root the commands run in (unless a test uses `-chdir`).
    pub work: PathBuf,
    pub home: PathBuf,
    pub user: String,
    pub key: Key,
    pub state_key: String,
    pub sts: StsProxy,
    /// Every secret this test created; no output may contain one.
    pub secrets: Vec<String>,
    /// The terraform logs at TRACE on stderr, secrets included, whatever `TF_LOG` says (CloudRail's
    /// builds of 0.12–0.15, `terraforms.rs`): stderr is then checked for secrets in tfshim's own
    /// lines only (stdout still in full).
    pub terraform_logs_secrets: bool,
    extra_env: Vec<(OsString, OsString)>,
}

impl Sandbox {
    pub fn new(layout: Layout) -> Sandbox {
        Sandbox::in_subdir(layout, "work")
    }

    /// A sandbox whose Terraform root is `root/<subdir>` (e.g. a path with spaces).
    pub fn in_subdir(layout: Layout, subdir: &str) -> Sandbox {
        let m = moto();
        let n = USERS.fetch_add(1, Ordering::SeqCst);
        let user = format!("tfshim-test-{}-{n}", std::process::id());
        let key = m.new_user(&user);
        let root = tempfile::Builder::new()
            .prefix("tfshim-e2e-")
            .tempdir()
            .unwrap();
        let work = root.path().join(subdir);
        let home = root.path().join("home");
        fs::create_dir_all(&work).unwrap();
        fs::create_dir_all(home.join(".aws")).unwrap();
        fs::write(home.join(".aws/credentials"), "").unwrap();
        fs::write(home.join(".aws/config"), "").unwrap();
        fs::write(root.path().join("terraformrc"), "").unwrap();
        let sts = StsProxy::start(m.auth_port);
        let state_key = format!("{user}/terraform.tfstate");
        let sb = Sandbox {
            secrets: vec![key.id.clone(), key.secret.clone()],
            root,
            work,
            home,
            user,
            key,
            state_key,
            sts,
            terraform_logs_secrets: false,
            extra_env: Vec::new(),
        };
        fs::write(sb.work.join("main.tf"), sb.main_tf(layout)).unwrap();
        sb
    }

    pub fn main_tf(&self, layout: Layout) -> String {
        let m = moto();
        let location = if layout.partial {
            String::new()
        } else {
            format!(
                "    bucket = \"{BUCKET}\"\n    key    = \"{}\"\n",
                self.state_key
            )
        };
        let backend = format!(
            "  backend \"s3\" {{\n{location}    region = \"us-east-1\"\n    use_path_style = true\n    \
             skip_region_validation = true\n    endpoints = {{\n      sts = \"http://127.0.0.1:{}\"\n      \
             iam = \"http://127.0.0.1:{}\"\n      s3  = \"http://127.0.0.1:{}\"\n    }}\n  }}\n",
            self.sts.port, m.auth_port, m.open_port
        );
        let terraform = if layout.local {
            String::new()
        } else {
            format!("terraform {{\n{backend}}}\n\n")
        };
        format!("{terraform}resource \"terraform_data\" \"x\" {{\n  input = \"hello\"\n}}\n")
    }

    /// Writes the shared credentials file terraform falls back to.
    pub fn set_ambient(&self, key: Option<&Key>) {
        let text = match key {
            Some(k) => format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                k.id, k.secret
            ),
            None => String::new(),
        };
        fs::write(self.home.join(".aws/credentials"), text).unwrap();
    }

    /// The seed's rotation: a new key K2 goes into the credentials file, the old key is deleted.
    pub fn rotate(&mut self) -> Key {
        let new = moto().rotate(&self.user, &self.key);
        self.secrets.push(new.id.clone());
        self.secrets.push(new.secret.clone());
        self.set_ambient(Some(&new));
        std::mem::replace(&mut self.key, new)
    }

    /// `-backend-config` arguments for a key.
    pub fn key_args(key: &Key) -> [String; 2] {
        [
            format!("-backend-config=access_key={}", key.id),
            format!("-backend-config=secret_key={}", key.secret),
        ]
    }

    /// Makes tfshim run terraform through a wrapper that logs each call's arguments (one line per call)
    /// to a file, so tests can count the `init -reconfigure`s a repair ran.
    #[cfg(unix)]
    pub fn record_terraform_calls(&mut self) {
        let log = self.root.path().join("terraform-calls.log");
        self.wrap_terraform(&format!("echo \"$*\" >> '{}'", log.display()));
    }

    /// Makes tfshim run terraform through a shell script (`body`, then `exec` of the real terraform;
    /// `$REAL` names it), e.g. to slow down or observe a repair.
    #[cfg(unix)]
    pub fn wrap_terraform(&mut self, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let wrapper = self.root.path().join("terraform-wrapper");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nREAL='{}'\n{body}\nexec \"$REAL\" \"$@\"\n",
                real_terraform().display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        self.env("TFSHIM_TERRAFORM", wrapper);
    }

    /// The calls logged since [`Sandbox::record_terraform_calls`].
    pub fn terraform_calls(&self) -> Vec<String> {
        fs::read_to_string(self.root.path().join("terraform-calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// How many of the recorded calls were a repair's `init -reconfigure`.
    pub fn reconfigures(&self) -> usize {
        self.terraform_calls()
            .iter()
            .filter(|c| c.contains("init -reconfigure"))
            .count()
    }

    pub fn env(&mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> &mut Self {
        self.extra_env.push((k.into(), v.into()));
        self
    }

    /// A command for `program` in the sandbox's isolated environment.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("CHECKPOINT_DISABLE", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.join(".aws/credentials"),
            )
            .env("AWS_CONFIG_FILE", self.home.join(".aws/config"))
            .env("TF_CLI_CONFIG_FILE", self.root.path().join("terraformrc"))
            .env("TFSHIM_STS_TIMEOUT", "5")
            // The security warnings have their own tests (doctor.rs); elsewhere they would only
            // add a line to every run with a saved key.
            .env("TFSHIM_QUIET", "1")
            .env("TMPDIR", self.tmp_dir())
            .stdin(Stdio::null());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn terraform_cmd(&self) -> Command {
        self.command(&real_terraform())
    }

    pub fn tfshim_cmd(&self) -> Command {
        self.command(Path::new(tfshim_bin()))
    }

    #[track_caller]
    pub fn terraform<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.run(self.terraform_cmd(), args)
    }

    #[track_caller]
    pub fn tfshim<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.run(self.tfshim_cmd(), args)
    }

    #[track_caller]
    pub fn run<S: AsRef<OsStr>>(&self, mut cmd: Command, args: &[S]) -> Run {
        cmd.args(args);
        let output = cmd.output().expect("could not start the command");
        let run = Run {
            label: format!(
                "{:?} {:?}",
                cmd.get_program(),
                cmd.get_args().collect::<Vec<_>>()
            ),
            output,
        };
        if self.terraform_logs_secrets {
            run.assert_no_secret_from_tfshim(&self.secrets);
        } else {
            run.assert_no_secret(&self.secrets);
        }
        // TFSHIM_TEST_SHOW=1 prints every command's output, to read what users would see.
        if std::env::var_os("TFSHIM_TEST_SHOW").is_some() {
            eprintln!("{}", run.dump());
        }
        run
    }

    /// Runs with `stdin` fed from `input`.
    #[track_caller]
    pub fn run_with_stdin<S: AsRef<OsStr>>(
        &self,
        mut cmd: Command,
        args: &[S],
        input: &[u8],
    ) -> Run {
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("could not start the command");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let output = child.wait_with_output().unwrap();
        let run = Run {
            label: format!("{:?}", cmd.get_program()),
            output,
        };
        run.assert_no_secret(&self.secrets);
        run
    }

    /// Initialises the backend the way the seed's author did: keys given by `-backend-config`.
    #[track_caller]
    pub fn init_with_saved_key(&self, extra: &[String]) {
        let mut args = vec!["init".to_owned(), "-input=false".to_owned()];
        args.extend(Self::key_args(&self.key));
        args.extend(extra.iter().cloned());
        self.terraform(&args).success();
        assert!(
            self.saved_text().contains(&self.key.id),
            "init did not save the key"
        );
    }

    /// The `TMPDIR` of every command (so a test can see what tfshim leaves there).
    pub fn tmp_dir(&self) -> PathBuf {
        let dir = self.root.path().join("tmp");
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.work.join(".terraform")
    }

    /// tfshim's transient files — settings files, the repair's backup, restore temporaries — found
    /// in the data dir, the work dir or the temp dir (the lock file is permanent and not one).
    pub fn tfshim_leftovers(&self) -> Vec<PathBuf> {
        [self.data_dir(), self.work.clone(), self.tmp_dir()]
            .iter()
            .flat_map(|d| fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.contains("tfshim") && name != "tfshim.lock"
            })
            .collect()
    }

    pub fn saved_bytes(&self) -> Vec<u8> {
        fs::read(self.data_dir().join("terraform.tfstate")).expect("no saved backend")
    }

    pub fn saved_text(&self) -> String {
        String::from_utf8(self.saved_bytes()).unwrap()
    }

    pub fn saved_backend(&self) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&self.saved_bytes()).unwrap();
        v["backend"].clone()
    }
}

/// A finished command.
pub struct Run {
    pub label: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    fn dump(&self) -> String {
        format!(
            "{}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.label,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    #[track_caller]
    pub fn success(&self) -> &Self {
        assert!(
            self.output.status.success(),
            "expected success:\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit code:\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn stderr_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stderr().contains(needle),
            "stderr has {needle:?}:\n{}",
            self.dump()
        );
        self
    }

    /// Lines tfshim itself wrote.
    pub fn tfshim_lines(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|l| l.starts_with("tfshim:"))
            .map(str::to_owned)
            .collect()
    }

    /// The output of a child the test spawned itself, checked for secrets like every other run.
    #[track_caller]
    pub fn checked(sb: &Sandbox, label: &str, output: Output) -> Run {
        let run = Run {
            label: label.to_owned(),
            output,
        };
        run.assert_no_secret(&sb.secrets);
        run
    }

    #[track_caller]
    pub fn assert_no_secret(&self, secrets: &[String]) {
        for s in secrets {
            let hay = [&self.output.stdout, &self.output.stderr];
            for h in hay {
                assert!(
                    !String::from_utf8_lossy(h).contains(s.as_str()),
                    "a secret (…{}) appeared in the output of {}",
                    &s[s.len().saturating_sub(4)..],
                    self.label
                );
            }
        }
    }

    /// [`Run::assert_no_secret`] for a terraform that logs secrets on stderr itself: stdout, and
    /// the lines tfshim wrote on stderr.
    #[track_caller]
    pub fn assert_no_secret_from_tfshim(&self, secrets: &[String]) {
        let out = self.stdout();
        let ours = self.tfshim_lines().join("\n");
        for s in secrets {
            assert!(
                !out.contains(s.as_str()) && !ours.contains(s.as_str()),
                "a secret (…{}) appeared in the output of {}",
                &s[s.len().saturating_sub(4)..],
                self.label
            );
        }
    }

    /// Same stdout, stderr and exit code as `other`.
    #[track_caller]
    pub fn same_as(&self, other: &Run) {
        assert_eq!(
            self.code(),
            other.code(),
            "exit codes differ:\n{}\n{}",
            self.dump(),
            other.dump()
        );
        assert_eq!(
            self.output.stdout,
            other.output.stdout,
            "stdout differs:\n{}\n{}",
            self.dump(),
            other.dump()
        );
        assert_eq!(
            self.output.stderr,
            other.output.stderr,
            "stderr differs:\n{}\n{}",
            self.dump(),
            other.dump()
        );
    }
}
