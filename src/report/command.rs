//! tfshim's own commands as the messages name them, so that running one verbatim is safe and does
//! what it says (issue #20, item 10): under the name tfshim runs as (`terraform` through a link or
//! alias, which reaches tfshim again), with the directory the user gave, quoted for a POSIX shell.

use std::path::Path;

use crate::backends::reinit::quoted;

/// The name to spell tfshim by (`settings::program`).
pub fn program() -> &'static str {
    crate::settings::program()
}

/// `tfshim shim SUB [DIR] [EXTRA]`; `DIR` only when given and not `.`.
pub fn shim(sub: &str, dir: Option<&Path>, extra: &str) -> String {
    let mut cmd = format!("{} shim {sub}", program());
    if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty() && *d != Path::new(".")) {
        cmd.push(' ');
        cmd.push_str(&quoted(&dir.to_string_lossy()));
    }
    if !extra.is_empty() {
        cmd.push(' ');
        cmd.push_str(extra);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_quoted_and_dot_left_out() {
        // Unit tests run as `tfshim-<hash>`: spelled `tfshim`.
        assert_eq!(shim("forget-keys", None, ""), "tfshim shim forget-keys");
        assert_eq!(
            shim("forget-keys", Some(Path::new(".")), ""),
            "tfshim shim forget-keys"
        );
        assert_eq!(
            shim("sweep", Some(Path::new("my roots")), "--fix"),
            "tfshim shim sweep 'my roots' --fix"
        );
    }
}
