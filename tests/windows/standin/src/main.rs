//! A stand-in for `terraform.exe` in tfshim's Windows tests (`shell/test-windows.sh`): no Windows
//! build of terraform can be obtained where those tests run (under Wine), and the Linux end-to-end
//! tests already prove what the real terraform writes. This program exists to prove tfshim's
//! Windows side: argument quoting, exit codes, Ctrl-C, PATH search, and its file handling during a
//! repair. It is never shipped.
//!
//! What it does:
//! - Every run appends its arguments to the file named by `STANDIN_RECORD` (if set): one line per
//!   argument, Debug-quoted so that empty, quoted and non-ASCII arguments compare exactly, then
//!   `TFSHIM_RECURSION_COUNT`, then `---`; what `STANDIN_INIT=ctrlc` saw goes there too.
//! - `init … -backend-config=FILE`: rebuilds the saved backend
//!   (`[-chdir=DIR/]<TF_DATA_DIR or .terraform>/terraform.tfstate`) the way terraform does: every
//!   attribute of the saved config takes FILE's value, or null when FILE does not set it (the test
//!   roots' `.tf` backend blocks are empty); an attribute FILE sets that the saved config does not
//!   have is an error, as it is for terraform. Type, hash and every other field are kept. The file is
//!   rewritten in place (truncate, write), as terraform's backend state writer does.
//!   `STANDIN_INIT=fail`: writes half a file instead and exits 1. `STANDIN_INIT=fail-and-hold`: the
//!   same, and leaves a process holding the saved file open with no sharing for `STANDIN_HOLD_MS`
//!   (an antivirus scanner or an editor). `STANDIN_INIT=ctrlc`: sends Ctrl-C to its console, then
//!   finishes the rewrite (terraform finishes a backend write it has started).
//! - `plan`: fails, as terraform would, while the saved backend still holds an `access_key`.
//! - `console`: copies stdin to stdout.
//! - `ctrlc-probe`: sends Ctrl-C to its whole console and prints how many it received.
//! - `hold FILE MS`: opens FILE with no sharing, says `held`, waits MS milliseconds.
//! - `version`: prints a terraform-like version line.
//! - Exit code: `STANDIN_EXIT` (all 32 bits; decimal or `0x…`), default 0.

use std::env;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    record(&args);
    let (chdir, rest) = match args.first().and_then(|a| a.strip_prefix("-chdir=")) {
        Some(dir) => (Some(PathBuf::from(dir)), &args[1..]),
        None => (None, &args[..]),
    };
    let code = match rest.first().map(String::as_str) {
        Some("init") => init(chdir.as_deref(), rest),
        Some("plan") => plan(chdir.as_deref()),
        Some("console") => io::copy(&mut io::stdin(), &mut io::stdout()).map_or(1, |_| 0),
        Some("ctrlc-probe") => {
            println!("ctrl-c received {}", console::probe_ctrl_c());
            0
        }
        Some("hold") => hold(rest),
        Some("version") => {
            println!("Terraform v1.11.4 (tfshim stand-in)");
            0
        }
        _ => 0,
    };
    let _ = io::stdout().flush();
    let chosen = env::var("STANDIN_EXIT").ok().and_then(|v| parse_code(&v));
    console::exit(chosen.unwrap_or(code));
}

fn parse_code(v: &str) -> Option<u32> {
    match v.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn record(args: &[String]) {
    let mut text = String::new();
    for a in args {
        text.push_str(&format!("{a:?}\n"));
    }
    text.push_str(&format!(
        "TFSHIM_RECURSION_COUNT={:?}\n---\n",
        env::var("TFSHIM_RECURSION_COUNT").ok()
    ));
    append_record(&text);
}

fn append_record(text: &str) {
    let Some(path) = env::var_os("STANDIN_RECORD") else {
        return;
    };
    let file = fs::OpenOptions::new().create(true).append(true).open(path);
    if let Err(e) = file.and_then(|mut f| f.write_all(text.as_bytes())) {
        eprintln!("stand-in: cannot record the arguments: {e}");
    }
}

fn saved_path(chdir: Option<&Path>) -> PathBuf {
    let data_dir = env::var_os("TF_DATA_DIR").unwrap_or_else(|| ".terraform".into());
    chdir
        .unwrap_or(Path::new("."))
        .join(data_dir)
        .join("terraform.tfstate")
}

fn init(chdir: Option<&Path>, args: &[String]) -> u32 {
    let Some(file) = args.iter().find_map(|a| a.strip_prefix("-backend-config=")) else {
        println!("Terraform has been successfully initialized! (stand-in: nothing to do)");
        return 0;
    };
    let path = saved_path(chdir);
    match reconfigure(&path, Path::new(file)) {
        Ok(()) => {
            println!("Terraform has been successfully initialized!");
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

fn reconfigure(path: &Path, settings_file: &Path) -> Result<(), String> {
    let read_json = |p: &Path| -> Result<Value, String> {
        let text = fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{} is not JSON: {e}", p.display()))
    };
    let settings = read_json(settings_file)?;
    let settings = settings
        .as_object()
        .ok_or("the -backend-config file is not an object")?;
    let mut state = read_json(path)?;
    let config = state
        .pointer_mut("/backend/config")
        .and_then(Value::as_object_mut)
        .ok_or("the saved backend has no config")?;
    rebuild(config, settings)?;
    let text = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
    let mode = env::var("STANDIN_INIT").unwrap_or_default();
    if mode.starts_with("fail") {
        let _ = fs::write(path, &text[..text.len() / 2]);
        if mode == "fail-and-hold" {
            hold_in_background(path)?;
        }
        return Err("Failed to get existing workspaces (stand-in failure)".into());
    }
    if mode == "ctrlc" {
        // Recorded too: a successful repair's output is held back by tfshim.
        let seen = format!("ctrl-c received {}", console::probe_ctrl_c());
        println!("{seen}");
        append_record(&format!("{seen}\n"));
    }
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Gives every attribute of `schema` (the saved config, standing in for the backend's schema) the
/// value `given` sets, or null; nested objects (`endpoints`, `assume_role`) keep their full shape
/// the same way.
fn rebuild(
    schema: &mut serde_json::Map<String, Value>,
    given: &serde_json::Map<String, Value>,
) -> Result<(), String> {
    if let Some(unknown) = given.keys().find(|k| !schema.contains_key(*k)) {
        return Err(format!(
            "Unsupported argument: {unknown:?} is not expected here"
        ));
    }
    for (name, value) in schema.iter_mut() {
        match (value.as_object_mut(), given.get(name)) {
            (Some(inner), Some(Value::Object(g))) => rebuild(inner, g)?,
            (_, g) => *value = g.cloned().unwrap_or(Value::Null),
        }
    }
    Ok(())
}

/// Starts `terraform hold PATH MS` and returns once it holds the file.
fn hold_in_background(path: &Path) -> Result<(), String> {
    let ms = env::var("STANDIN_HOLD_MS").unwrap_or_else(|_| "1000".into());
    let me = env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(me)
        .arg("hold")
        .arg(path)
        .arg(ms)
        .env_remove("STANDIN_RECORD")
        .env_remove("STANDIN_EXIT")
        // Not tfshim's pipes: tfshim would wait for the holder to close them.
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the holder: {e}"))?;
    let mut said = [0u8; 4];
    let out = child.stdout.as_mut().ok_or("no holder stdout")?;
    out.read_exact(&mut said)
        .map_err(|e| format!("the holder did not start: {e}"))?;
    Ok(())
}

fn hold(args: &[String]) -> u32 {
    let (Some(path), Some(ms)) = (args.get(1), args.get(2).and_then(|m| m.parse().ok())) else {
        eprintln!("usage: hold FILE MS");
        return 2;
    };
    match console::open_unshared(Path::new(path)) {
        Ok(file) => {
            print!("held");
            let _ = io::stdout().flush();
            std::thread::sleep(std::time::Duration::from_millis(ms));
            drop(file);
            0
        }
        Err(e) => {
            eprintln!("cannot hold {path}: {e}");
            1
        }
    }
}

fn plan(chdir: Option<&Path>) -> u32 {
    let saved = fs::read(saved_path(chdir))
        .ok()
        .and_then(|t| serde_json::from_slice::<Value>(&t).ok());
    let key = saved
        .as_ref()
        .and_then(|s| s.pointer("/backend/config/access_key"));
    if key.is_some_and(|k| !k.is_null()) {
        eprintln!(
            "Error: error configuring S3 Backend: error validating provider credentials: \
             error calling sts:GetCallerIdentity: operation error STS: GetCallerIdentity, \
             https response error StatusCode: 403, RequestID: 0, api error InvalidClientTokenId: \
             The security token included in the request is invalid."
        );
        return 1;
    }
    println!("No changes. Your infrastructure matches the configuration.");
    0
}

#[cfg(windows)]
mod console {
    use std::os::windows::fs::OpenOptionsExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicU32, Ordering};

    static SEEN: AtomicU32 = AtomicU32::new(0);
    const CTRL_C_EVENT: u32 = 0;

    #[link(name = "kernel32")]
    extern "system" {
        fn SetConsoleCtrlHandler(
            handler: Option<unsafe extern "system" fn(u32) -> i32>,
            add: i32,
        ) -> i32;
        fn GenerateConsoleCtrlEvent(event: u32, group: u32) -> i32;
        fn ExitProcess(code: u32) -> !;
    }

    unsafe extern "system" fn on_ctrl(event: u32) -> i32 {
        if event == CTRL_C_EVENT {
            SEEN.fetch_add(1, Ordering::SeqCst);
        }
        1
    }

    /// Handles Ctrl-C the way terraform does (a handler, no change to the inherited "ignore"
    /// flag), sends one to every process on the console, and counts what arrives: 0 means the
    /// flag was set by whoever started this process.
    pub fn probe_ctrl_c() -> u32 {
        // SAFETY: plain kernel32 calls; the handler only touches an atomic.
        unsafe {
            SetConsoleCtrlHandler(Some(on_ctrl), 1);
            GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0);
        }
        std::thread::sleep(std::time::Duration::from_millis(1000));
        SEEN.load(Ordering::SeqCst)
    }

    pub fn open_unshared(path: &Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .share_mode(0)
            .open(path)
    }

    /// `std::process::exit` takes an i32; ExitProcess keeps all 32 bits as they are.
    pub fn exit(code: u32) -> ! {
        // SAFETY: ends the process; stdout was flushed by the caller.
        unsafe { ExitProcess(code) }
    }
}

#[cfg(not(windows))]
mod console {
    //! The stand-in is only run on Windows; these keep it building (and linted) elsewhere.
    use std::path::Path;

    pub fn probe_ctrl_c() -> u32 {
        0
    }

    pub fn open_unshared(path: &Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
    }

    pub fn exit(code: u32) -> ! {
        std::process::exit(code as i32)
    }
}
