//! The commands tfshim's messages tell a user to run, spelled so that running them verbatim is safe
//! (issue #20, item 10): tfshim's own repairs under the name it was invoked by, with the root the
//! user gave (`-chdir`), and never a bare `terraform init -reconfigure` (it drops the settings given
//! at init and can switch the root to other state). The full `init` for a key written in the `.tf`
//! block is `backends::reinit`'s.

use std::path::Path;

use crate::backends::reinit;
use crate::backends::saved::SavedBackend;

/// `tfshim shim SUB [ROOT]`: under the name tfshim runs as (`terraform` through a link or alias,
/// which reaches tfshim again), `tfshim` when that is unknown; `ROOT` only when it is not `.`.
pub fn shim_command(sub: &str, root: Option<&Path>) -> String {
    let program = std::env::args_os()
        .next()
        .and_then(|a| crate::proxy::locate::invoked_as(Some(a.as_os_str())))
        .filter(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .unwrap_or_else(|| "tfshim".into());
    let mut cmd = format!("{program} shim {sub}");
    if let Some(dir) = root.filter(|d| !d.as_os_str().is_empty() && *d != Path::new(".")) {
        cmd.push(' ');
        cmd.push_str(&reinit::quoted(&dir.to_string_lossy()));
    }
    cmd
}

/// What to do once the S3 keys are removed from the backend block in `tf`: the full `init` that keeps
/// every other setting saved in `b`, run in `tf`'s directory.
pub fn after_editing_block(b: &SavedBackend, tf: &Path) -> String {
    reinit::after_editing_block(b, tf)
}
