//! tfshim: a drop-in `terraform` proxy. `main` only dispatches and maps errors to exit codes; it is
//! the only place that exits, but for `proxy::exec` on Windows, which passes on all 32 bits of
//! terraform's exit code (an `ExitCode` holds 8).
//!
//! On Unix the process starts in a C `main` (`no_main`), not in Rust's runtime: the pass-through of a
//! command that cannot load the backend is exec'ed from there ([`proxy::fast`]) before any start-up work
//! (issue #16); everything else gets the runtime's set-up it relies on and runs as usual.

#![cfg_attr(all(unix, not(test)), no_main)]

mod aws;
mod backends;
mod boundary;
mod commands;
mod credentials;
// Paths in the golden files are written with `/`.
#[cfg(all(test, unix))]
mod golden;
mod heal;
#[cfg(test)]
mod layers;
mod log;
mod net;
#[cfg(test)]
mod properties;
mod proxy;
mod report;
mod settings;

use std::env;
use std::ffi::OsString;
use std::process::{Command, ExitCode};

use anyhow::Result;

use crate::heal::decide::Mode;
use crate::heal::preflight;
use crate::proxy::exec;
use crate::proxy::invocation::Invocation;
use crate::proxy::locate::{self, Engine, Located};

/// The process's entry on Unix (see the module comment).
///
/// # Safety
/// Called by the C runtime only, with its `argc`/`argv`.
#[cfg(all(unix, not(test)))]
#[no_mangle]
unsafe extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> i32 {
    // SAFETY: the C runtime's arguments, before any other thread exists.
    unsafe { proxy::fast::try_exec(argc, argv) };
    proxy::fast::std_start();
    boundary::install();
    use std::os::unix::ffi::OsStrExt;
    let args = (0..usize::try_from(argc).unwrap_or(0)).map(|i| {
        // SAFETY: argv holds argc valid C strings.
        let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
        OsString::from(std::ffi::OsStr::from_bytes(arg.to_bytes()))
    });
    let code = finish(run(args));
    // `exit`, not a return: it flushes Rust's stdout, which a C `main` returning would not.
    std::process::exit(
        (0..=255)
            .find(|n| ExitCode::from(*n) == code)
            .map_or(1, i32::from),
    )
}

#[cfg(any(not(unix), test))]
fn main() -> ExitCode {
    boundary::install();
    finish(run(env::args_os()))
}

/// Maps the outcome to the exit code, saying the error first.
fn finish(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            log::say(&format!("{err:#}"));
            ExitCode::from(locate::exit_code_of(&err))
        }
    }
}

fn run(mut argv: impl Iterator<Item = OsString>) -> Result<ExitCode> {
    let invoked_as = locate::invoked_as(argv.next().as_deref());
    let args: Vec<OsString> = argv.collect();
    // Every setting read and checked once; an invalid one is said here, once (#22).
    let settings = settings::load(invoked_as.as_deref(), &args);
    log::init(settings.debug, settings.github_actions);
    let engine = Engine::choose(invoked_as.as_deref(), settings.engine);
    if let Some(call) = commands::shim_call(&args) {
        let cli = commands::parse(&call)?;
        // tfshim's own commands: a bug is an error of theirs (exit 1), said in one line.
        return boundary::contain(|| commands::run(cli, find_real(engine)))
            .unwrap_or_else(|panicked| Err(anyhow::anyhow!("{panicked}")));
    }
    proxy(engine, args, settings)
}

fn find_real(engine: Engine) -> Result<Located> {
    let me = locate::own_path();
    locate::locate(engine, settings::get().terraform.clone(), me.as_deref())
}

/// Proxy mode: find terraform, run the preflight where it applies, exec terraform.
fn proxy(engine: Engine, args: Vec<OsString>, settings: &settings::Settings) -> Result<ExitCode> {
    let count = locate::next_recursion_count(settings.recursion_count.as_deref())?;
    let located = find_real(engine)?;
    log::debug(|| format!("running {} ({})", located.path.display(), located.source));
    let child_env = [(
        OsString::from(locate::RECURSION_VAR),
        OsString::from(count.to_string()),
    )];
    let mode = settings.mode;
    let inv = Invocation::parse(args);
    let final_args = if mode == Mode::Off {
        inv.args
    } else {
        let ctx = preflight::Context {
            mode,
            terraform: &located.path,
            found: format!("{} {}", located.engine.binary_name(), located.source),
            child_env: &child_env,
        };
        // The panic boundary: whatever goes wrong inside the preflight, terraform still runs, as
        // it would without tfshim — unless the preflight had already run the user's command.
        match boundary::contain(|| preflight::run(&ctx, &inv)) {
            Ok(Ok(next)) => match next {
                preflight::Next::Run(args) => args,
                preflight::Next::Exit(code) => return Ok(code),
                preflight::Next::Killed(signal) => return Ok(exec::die_by(signal)),
            },
            // Decided by kind (#20 item 11): only a failure after terraform ran the user's own
            // command ends here; every other error says its line and terraform runs unchanged.
            Ok(Err(e)) if e.users_command_ran() => {
                anyhow::bail!("{e}; terraform had already run your command (its output is above)")
            }
            Ok(Err(e)) => {
                log::say(&format!("{e}; running terraform unchanged"));
                inv.args
            }
            Err(panicked) if exec::users_command_started() => {
                anyhow::bail!(
                    "{panicked}; terraform had already run your command (its output is above)"
                )
            }
            Err(panicked) => {
                // A panic inside a repair may have left the saved file rewritten but unchecked, and
                // its backup behind: recovery puts them right by its usual rules first — inside
                // the boundary too, so that a panic there still runs terraform.
                let data_dir = inv.data_dir(env::var_os("TF_DATA_DIR").as_deref());
                let recovery =
                    boundary::contain(|| heal::datadir::recover_if_interrupted(&data_dir));
                let unfinished = match recovery {
                    Ok(()) => String::new(),
                    Err(again) => format!(" (and recovery after it, at {})", again.location),
                };
                log::say(&format!(
                    "{panicked}{unfinished}; running terraform unchanged"
                ));
                inv.args
            }
        }
    };
    let mut cmd = Command::new(&located.path);
    cmd.args(final_args).envs(child_env);
    log::debug(|| "exec terraform".into());
    exec::exec(cmd).map_err(|e| anyhow::anyhow!("could not run {}: {e}", located.path.display()))
}
