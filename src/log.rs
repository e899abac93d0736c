//! tfshim's voice: one line per event on stderr, prefixed `tfshim:`. stdout belongs to terraform.
//!
//! `TFSHIM_LOG=debug` adds the decisions tfshim takes (variable names and redacted keys, never values).
//! Nothing here is given a secret: callers format keys with `AccessKeyId`'s redacting `Display`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

static DEBUG: AtomicBool = AtomicBool::new(false);
static ANNOTATE: AtomicBool = AtomicBool::new(false);
static START: OnceLock<Instant> = OnceLock::new();

/// Starts the clock; `debug`: `TFSHIM_LOG=debug`; `annotate`: `GITHUB_ACTIONS=true` (both checked
/// in `settings`).
pub fn init(debug: bool, annotate: bool) {
    START.get_or_init(Instant::now);
    DEBUG.store(debug, Ordering::Relaxed);
    ANNOTATE.store(annotate, Ordering::Relaxed);
}

pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// One line on stderr. Write errors (a closed stderr) are ignored: they must not change terraform's run.
pub fn say(message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "tfshim: {message}");
}

/// A decision, shown only with `TFSHIM_LOG=debug`, with the time since start-up.
pub fn debug(message: impl FnOnce() -> String) {
    if debug_enabled() {
        let ms = START
            .get()
            .map_or(0.0, |s| s.elapsed().as_secs_f64() * 1000.0);
        say(&format!("debug: +{ms:.1}ms {}", message()));
    }
}

/// An event worth a CI reviewer's attention (a repair, a security warning): one line on stderr or,
/// under GitHub Actions, a `::warning` workflow annotation instead (the runner reads workflow
/// commands from stderr as well, so stdout stays terraform's; it shows the annotation in the log
/// where the line would be, so both would say it twice, #22).
pub fn warn(message: &str) {
    if ANNOTATE.load(Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "::warning title=tfshim::{}",
            escape_annotation(message)
        );
    } else {
        say(message);
    }
}

/// Workflow-command escaping of a message (`%`, CR, LF).
fn escape_annotation(message: &str) -> String {
    message
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    #[test]
    fn annotation_escaping() {
        assert_eq!(super::escape_annotation("50%\nnext"), "50%25%0Anext");
    }
}
