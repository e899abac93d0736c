//! Transparency: through tfshim, terraform behaves byte-for-byte and exit-code-for-exit-code as it
//! does on its own; links named `terraform` find the real one; loops end fast; signals reach it once.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{real_terraform, tfshim_bin, Layout, Sandbox};

fn local() -> Sandbox {
    Sandbox::new(Layout {
        local: true,
        ..Layout::default()
    })
}

#[track_caller]
fn same<S: AsRef<std::ffi::OsStr>>(sb: &Sandbox, args: &[S]) {
    let direct = sb.terraform(args);
    let proxied = sb.tfshim(args);
    proxied.same_as(&direct);
}

#[test]
fn version_json_is_identical() {
    same(&local(), &["version", "-json"]);
    same(&local(), &["-version"]);
}

#[test]
fn help_is_terraforms() {
    let sb = local();
    same(&sb, &["--help"]);
    same(&sb, &["plan", "-help"]);
    // No arguments at all: terraform's usage, its exit code.
    same(&sb, &[] as &[&str]);
}

#[test]
fn plan_detailed_exitcode_is_identical() {
    let sb = local();
    sb.terraform(&["init", "-input=false", "-no-color"])
        .success();
    let direct = sb.terraform(&["plan", "-input=false", "-detailed-exitcode"]);
    direct.code_is(2);
    sb.tfshim(&["plan", "-input=false", "-detailed-exitcode"])
        .same_as(&direct);
}

#[test]
fn broken_config_validate_is_identical() {
    let sb = local();
    fs::write(sb.work.join("broken.tf"), "resource \"terraform_data\" {\n").unwrap();
    let direct = sb.terraform(&["validate"]);
    direct.code_is(1);
    sb.tfshim(&["validate"]).same_as(&direct);
}

#[test]
fn console_reads_stdin() {
    let sb = local();
    fs::write(
        sb.work.join("locals.tf"),
        "locals {\n  a = \"from-console\"\n}\n",
    )
    .unwrap();
    sb.terraform(&["init", "-input=false"]).success();
    let direct = sb.run_with_stdin(sb.terraform_cmd(), &["console"], b"local.a\n");
    let proxied = sb.run_with_stdin(sb.tfshim_cmd(), &["console"], b"local.a\n");
    assert!(
        direct.stdout().contains("from-console"),
        "{}",
        direct.stdout()
    );
    proxied.same_as(&direct);
}

#[cfg(unix)]
#[test]
fn non_utf8_argument_is_passed_verbatim() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let sb = local();
    fs::write(
        sb.work.join("vars.tf"),
        "variable \"a\" {\n  type = string\n}\n",
    )
    .unwrap();
    sb.terraform(&["init", "-input=false"]).success();
    let odd = OsString::from_vec(b"-var=a=caf\xe9-\xff".to_vec());
    let args = [OsString::from("plan"), OsString::from("-input=false"), odd];
    same(&sb, &args);
}

#[cfg(unix)]
#[test]
fn symlink_named_terraform_finds_the_real_one() {
    let mut sb = local();
    let bin = sb.root.path().join("shims");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(tfshim_bin(), bin.join("terraform")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    sb.env("PATH", &path);
    let direct = sb.terraform(&["version"]);
    let linked = sb.run(sb.command(&bin.join("terraform")), &["version"]);
    linked.same_as(&direct);
    // `shim which` names the real binary and says that tfshim skipped itself.
    let which = sb.run(sb.command(&bin.join("terraform")), &["shim", "which"]);
    which.success();
    let first = which.stdout().lines().next().unwrap().to_owned();
    assert_eq!(
        Path::new(&first).canonicalize().unwrap(),
        real_terraform().canonicalize().unwrap()
    );
    assert!(which.stdout().contains("skipping 1"), "{}", which.stdout());
}

#[test]
fn loops_end_fast_with_a_clear_error() {
    let mut sb = local();
    sb.env("TFSHIM_TERRAFORM", tfshim_bin());
    let start = Instant::now();
    let run = sb.tfshim(&["version"]);
    run.code_is(1)
        .stderr_has("tfshim: TFSHIM_TERRAFORM=")
        .stderr_has("is tfshim itself");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[cfg(unix)]
#[test]
fn wrapper_loops_are_caught_by_the_recursion_guard() {
    use std::os::unix::fs::PermissionsExt;
    let mut sb = local();
    // A wrapper script named terraform that calls tfshim again: not the same file, so only the
    // recursion counter can see the loop.
    let bin = sb.root.path().join("wrapper");
    fs::create_dir_all(&bin).unwrap();
    let script = bin.join("terraform");
    fs::write(
        &script,
        format!("#!/bin/sh\nexec '{}' \"$@\"\n", tfshim_bin()),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    sb.env(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    let start = Instant::now();
    let run = sb.tfshim(&["version"]);
    run.code_is(1).stderr_has("tfshim has started itself");
    assert_eq!(run.tfshim_lines().len(), 1, "{}", run.stderr());
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn missing_terraform_exits_127() {
    let mut sb = local();
    let empty = sb.root.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    sb.env("PATH", &empty);
    sb.tfshim(&["version"])
        .code_is(127)
        .stderr_has("tfshim: no terraform found on PATH")
        .stderr_has("TFSHIM_TERRAFORM");
}

#[test]
fn shim_commands_are_ours() {
    let sb = local();
    let help = sb.tfshim(&["shim", "--help"]);
    help.success();
    assert!(
        help.stdout().contains("which") && help.stdout().contains("TFSHIM_MODE"),
        "{}",
        help.stdout()
    );
    let version = sb.tfshim(&["shim", "version"]);
    version.success();
    assert!(
        version.stdout().starts_with("tfshim "),
        "{}",
        version.stdout()
    );
    assert!(
        version.stdout().contains("Terraform v"),
        "{}",
        version.stdout()
    );
}

#[cfg(unix)]
#[test]
fn sigint_reaches_terraform_once() {
    let sb = local();
    fs::write(
        sb.work.join("main.tf"),
        "resource \"terraform_data\" \"slow\" {\n  provisioner \"local-exec\" {\n    command = \"sleep 30\"\n  }\n}\n",
    )
    .unwrap();
    sb.terraform(&["init", "-input=false"]).success();
    let mut cmd = sb.tfshim_cmd();
    cmd.args(["apply", "-input=false", "-auto-approve", "-no-color"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("local-exec") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("apply never reached the provisioner");
    let start = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let elapsed = start.elapsed();
    let out = reader.join().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let all = format!("{out}{err}");
    for s in &sb.secrets {
        assert!(!all.contains(s.as_str()), "a secret in the output");
    }
    assert_eq!(all.matches("Interrupt received").count(), 1, "{all}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert!(!status.success());
}

/// `init -backend-config=<(…)` (a pipe, e.g. settings read from a vault) works with terraform alone:
/// its bytes are there once, and terraform must be the one to read them. tfshim used to read the file
/// for its own decision first: terraform then waited for ever on a pipe already drained.
#[cfg(unix)]
#[test]
fn a_backend_config_pipe_is_left_to_terraform() {
    let sb = Sandbox::new(Layout::default());
    sb.init_with_saved_key(&[]);
    let fifo = sb.root.path().join("settings.hcl");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Once, as a process substitution would: the same key as saved, so the init changes nothing.
    let text = format!(
        "access_key = \"{}\"\nsecret_key = \"{}\"\n",
        sb.key.id, sb.key.secret
    );
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::write(fifo, text))
    };
    let mut cmd = sb.tfshim_cmd();
    cmd.arg("init")
        .arg("-input=false")
        .arg(format!("-backend-config={}", fifo.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("init never finished: terraform was left waiting on the pipe");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    crate::support::Run::checked(&sb, "init with a pipe", out).success();
    writer.join().unwrap().unwrap();
    assert!(sb.saved_text().contains(&sb.key.id));
}
