//! The reactive fallback: when the preflight could not reach a verdict (STS too slow for tfshim's short
//! timeout, or `skip_credentials_validation`), tfshim runs `init`/`plan` as a child and watches its
//! stderr — shown live, colours and all — for terraform's own report that the saved key was rejected.
//! If it appears, the caller repairs and retries once.
//!
//! Only `init` and `plan`: they change nothing remote, so running them twice is harmless. `apply` and
//! `destroy` are never retried. `TFSHIM_RETRY=0` turns this off.

use std::io::{self, IsTerminal, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;

use regex::Regex;

use crate::proxy::exec::{background, finish, spawn, Signals};

/// How much of terraform's stderr is kept to look for the signature: the error is at the end.
const KEPT: usize = 64 * 1024;

/// terraform's message for a rejected saved key, in the shapes of 0.12 (`error calling
/// sts:GetCallerIdentity: InvalidClientTokenId: …`), 0.13–1.5 (`error validating provider
/// credentials: error calling sts:GetCallerIdentity: …`) and 1.6+ (`operation error STS:
/// GetCallerIdentity, https response error StatusCode: 403, …, api error InvalidClientTokenId: …`).
/// A 403 whose code terraform could not read (`UnknownError`: moto's error body, docs/terraform-backend.md) counts too,
/// as does its ≤ 1.5 form (aws-sdk-go's `awserr`: `Code: Message\n\tstatus code: 403`, the code
/// empty: `sts:GetCallerIdentity: : \n\tstatus code: 403`, measured on 0.12–0.15, #21). Only the
/// trigger: the retry asks STS again before anything is changed.
fn signature() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?s)GetCallerIdentity(: : \s*status code: 403|.{0,600}?(InvalidClientTokenId|SignatureDoesNotMatch|ExpiredTokenException|ExpiredToken|UnrecognizedClientException|StatusCode: 403.{0,300}?api error UnknownError))",
        )
        .expect("a valid regex")
    })
}

fn ansi() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\x1b\[[0-9;]*[A-Za-z]").expect("a valid regex"))
}

/// Whether terraform's stderr says the saved key was rejected. Pure.
pub fn is_rejected_key_failure(stderr: &str) -> bool {
    let plain = ansi().replace_all(stderr, "");
    // Clock skew also says SignatureDoesNotMatch; that is not the key's fault.
    signature().is_match(&plain) && !plain.contains("Signature expired")
}

/// The outcome of a watched run.
pub struct Watched {
    pub status: ExitStatus,
    /// A terminating signal tfshim received meanwhile.
    pub interrupted_by: Option<i32>,
    /// The end of what terraform wrote to stderr.
    pub stderr_tail: String,
    /// terraform's stdout, held back when it is not a terminal (see [`run_watched`]).
    pub held_stdout: Vec<u8>,
}

/// At most this much stdout is held back; past it, it is written through (and a retry would then
/// repeat it).
const HOLD: usize = 16 * 1024 * 1024;

/// Runs `cmd` with its stderr copied live to tfshim's stderr and its tail kept. When tfshim's stdout
/// is not a terminal (a pipe, a file, CI), terraform's stdout is held back, so that a run that is
/// retried leaves nothing there: the caller writes it out only if there is no retry. On a terminal
/// it is shown live (a person reads a failed first attempt; a program would not want one).
pub fn run_watched(mut cmd: Command) -> io::Result<Watched> {
    let signals = Signals::catch();
    let hold = !io::stdout().is_terminal();
    cmd.stderr(Stdio::piped());
    if hold {
        cmd.stdout(Stdio::piped());
    }
    crate::proxy::exec::starting_users_command();
    let mut child = spawn(&mut cmd, &signals)?;
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let stderr_reader = background(move || {
        let mut tail: Vec<u8> = Vec::new();
        let mut out = io::stderr();
        each_chunk(&mut err_pipe, |chunk| {
            let _ = out.write_all(chunk);
            tail.extend_from_slice(chunk);
            if tail.len() > 2 * KEPT {
                tail.drain(..tail.len() - KEPT);
            }
        });
        tail
    });
    let stdout_reader = child.stdout.take().map(|mut pipe| {
        background(move || {
            let mut held = Vec::new();
            let mut streaming = false;
            let mut out = io::stdout();
            each_chunk(&mut pipe, |chunk| {
                if !streaming && held.len() + chunk.len() > HOLD {
                    // Too much to hold: from here on the output streams.
                    let _ = out.write_all(&held);
                    held.clear();
                    streaming = true;
                }
                if streaming {
                    let _ = out.write_all(chunk);
                } else {
                    held.extend_from_slice(chunk);
                }
            });
            held
        })
    });
    let status = child.wait();
    signals.forward_to(0);
    let tail = finish(stderr_reader);
    let held_stdout = stdout_reader.map(finish).unwrap_or_default();
    Ok(Watched {
        status: status?,
        interrupted_by: signals.received(),
        stderr_tail: String::from_utf8_lossy(&tail).into_owned(),
        held_stdout,
    })
}

/// Calls `f` with each chunk read from `r` until end of file or an error.
fn each_chunk(r: &mut impl Read, mut f: impl FnMut(&[u8])) {
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => f(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_shape() {
        for text in [
            "Error: error using credentials to get account ID: error calling sts:GetCallerIdentity: \
             InvalidClientTokenId: The security token included in the request is invalid.\n\tstatus code: 403",
            "Error: error validating provider credentials: error calling sts:GetCallerIdentity: \
             SignatureDoesNotMatch: The request signature we calculated does not match",
            "Error: validating provider credentials: retrieving caller identity from STS: operation \
             error STS: GetCallerIdentity, https response error StatusCode: 403, RequestID: x, api \
             error InvalidClientTokenId: The security token included in the request is invalid.",
            "\x1b[31m│\x1b[0m \x1b[1mError: \x1b[0mvalidating provider credentials: retrieving caller \
             identity from STS: operation error STS: GetCallerIdentity, https response error \
             StatusCode: 403, RequestID: x, api error UnknownError: UnknownError",
            "operation error STS: GetCallerIdentity, https response error StatusCode: 400, api error \
             ExpiredToken: The security token included in the request is expired",
            // 0.12–0.15 (#21), from terraform's source: 0.12's backend returns aws-sdk-go-base
            // v0.4's error as it is ("error using credentials to get account ID: error calling
            // sts:GetCallerIdentity: %s"); 0.13–1.5 wrap v0.5+'s ("error validating provider
            // credentials: error calling sts:GetCallerIdentity: %w") in "error configuring S3
            // Backend: %w"; aws-sdk-go's awserr prints "Code: Message\n\tstatus code: N, request
            // id: …". These builds print it on stdout (prefixed `e:`), so the e2e cannot drive it.
            "Error: error using credentials to get account ID: error calling sts:GetCallerIdentity: \
             ExpiredToken: The security token included in the request is expired\n\tstatus code: \
             403, request id: 1",
            "Error: error configuring S3 Backend: error validating provider credentials: error \
             calling sts:GetCallerIdentity: InvalidClientTokenId: The security token included in \
             the request is invalid.\n\tstatus code: 403, request id: 1",
            "\x1b[31m\nError: \x1b[0m\x1b[0m\x1b[1merror configuring S3 Backend: error validating \
             provider credentials: error calling sts:GetCallerIdentity: ExpiredToken: The security \
             token included in the request is expired\n\tstatus code: 403, request id: 1",
            // Moto's body, whose code aws-sdk-go cannot read, as 0.12.29 and 0.13.4–0.15.0-rc2
            // print it (measured).
            "Error: error using credentials to get account ID: error calling sts:GetCallerIdentity: \
             : \n\tstatus code: 403, request id: ZVNoLY6tQgc2Q8eVqPVLBR1guLU2BPBpghxwozUtucnune4BHVHB",
            "Error: error configuring S3 Backend: error validating provider credentials: error \
             calling sts:GetCallerIdentity: : \n\tstatus code: 403, request id: U9yq",
        ] {
            assert!(is_rejected_key_failure(text), "{text}");
        }
    }

    #[test]
    fn other_failures_are_not_it() {
        for text in [
            "Error: Backend initialization required, please run \"terraform init\"",
            "operation error STS: GetCallerIdentity, exceeded maximum number of attempts, 5, https \
             response error StatusCode: 503, api error ServiceUnavailable",
            "operation error STS: GetCallerIdentity, https response error StatusCode: 403, api error \
             SignatureDoesNotMatch: Signature expired: 20200501T143723Z is now earlier than …",
            "Error: No valid credential sources found",
            "InvalidClientTokenId without the operation",
            // ≤ 1.5: STS unreachable or throttled is no verdict on the key.
            "Error: error configuring S3 Backend: error validating provider credentials: error \
             calling sts:GetCallerIdentity: RequestError: send request failed\ncaused by: Post \
             https://sts.amazonaws.com/: dial tcp: i/o timeout",
            "Error: error configuring S3 Backend: error validating provider credentials: error \
             calling sts:GetCallerIdentity: : \n\tstatus code: 503, request id: 1",
            "Error: error using credentials to get account ID: error calling sts:GetCallerIdentity: \
             SignatureDoesNotMatch: Signature expired: 20200706T195306Z is now earlier than \
             20200707T071347Z",
        ] {
            assert!(!is_rejected_key_failure(text), "{text}");
        }
    }
}
