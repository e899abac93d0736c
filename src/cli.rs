//! tfshim's own commands, `tfshim shim …` (also `terraform shim …` through the alias or link).
//! Terraform has no `shim` subcommand, so this namespace never collides with terraform's; everything
//! else on the command line is terraform's and is never parsed by clap.

use std::ffi::OsString;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::locate::Located;

/// tfshim: a drop-in `terraform` proxy that heals S3 backends whose saved access key was rotated away.
///
/// Every command line that does not start with `shim` is terraform's and is passed on untouched.
/// Environment: TFSHIM_MODE=off|warn|fix (default fix), TFSHIM_TERRAFORM (the real binary),
/// TFSHIM_ENGINE=terraform|tofu, TFSHIM_STS_TIMEOUT (seconds, default 5), TFSHIM_LOG=debug.
#[derive(Debug, Parser)]
#[command(name = "tfshim shim", version, disable_help_subcommand = true)]
pub struct ShimCli {
    #[command(subcommand)]
    pub command: ShimCommand,
}

#[derive(Debug, Subcommand)]
pub enum ShimCommand {
    /// Print the real terraform binary tfshim runs (first line) and how it was found.
    Which,
    /// Print tfshim's version and the wrapped binary's.
    Version,
}

/// Parses `args` (everything after `shim`). Help and parse errors exit through clap, as usual.
pub fn parse(args: &[OsString]) -> ShimCli {
    ShimCli::parse_from(std::iter::once(OsString::from("tfshim shim")).chain(args.iter().cloned()))
}

pub fn run(cli: ShimCli, located: Result<Located>) -> Result<ExitCode> {
    match cli.command {
        ShimCommand::Which => {
            let located = located?;
            println!("{}", located.path.display());
            println!("{} ({})", located.engine.binary_name(), located.source);
        }
        ShimCommand::Version => {
            println!("tfshim {}", env!("CARGO_PKG_VERSION"));
            match located {
                Ok(l) => {
                    let version = Command::new(&l.path)
                        .arg("version")
                        .stdin(Stdio::null())
                        .stderr(Stdio::null())
                        .env("CHECKPOINT_DISABLE", "1")
                        .output()
                        .ok()
                        .and_then(|o| {
                            String::from_utf8_lossy(&o.stdout)
                                .lines()
                                .next()
                                .map(str::to_owned)
                        })
                        .unwrap_or_else(|| "version unknown".into());
                    println!("wraps {} ({version})", l.path.display());
                }
                Err(e) => println!("wraps nothing: {e:#}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
