//! Build script: on Linux with glibc (the default `cargo build`/`cargo install` there), links tfshim
//! so that the dynamic loader has as little to do at start-up as possible (issue #16):
//!
//! - **`-no-pie`**: a PIE must have its ≈ 12,700 relative relocations applied by the loader at every
//!   start, copying ≈ 190 KB of pages on write. Only the executable's own base address loses
//!   randomisation (shared libraries, stack, heap and mmaps keep theirs).
//! - **the unwinder linked in** (`libgcc_eh.a`, as `gcc -static-libgcc` does) instead of loading
//!   `libgcc_s.so.1`: each shared library costs its own open, mappings and symbol scope, ≈ 55 µs per
//!   start on the project's VM. rustc asks for `-lgcc_s` itself, so the build script puts a
//!   `libgcc_s.so` linker script naming `libgcc_eh.a` first on the search path. It is done only when
//!   the C compiler names an existing `libgcc_eh.a`; otherwise the link stays as rustc makes it.
//!   (`libm.so.6`, the other library rustc links, is avoided in `src/proxy/linkage.rs`.)
//!
//! Static glibc would save more, but `-C target-feature=+crt-static` cannot be set for the binary alone
//! on stable Cargo (it breaks proc-macro builds), so the fully static binary is the musl release build
//! (shell/build-release.sh). At build time `TFSHIM_PIE=1` keeps the default PIE and
//! `TFSHIM_SHARED_LIBGCC=1` the shared unwinder (docs/static-build.md).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TFSHIM_PIE");
    println!("cargo:rerun-if-env-changed=TFSHIM_SHARED_LIBGCC");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    if var("TFSHIM_PIE") != "1" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    if var("TFSHIM_SHARED_LIBGCC") != "1" {
        if let Some(archive) = target_compiler().and_then(|cc| static_unwinder(&cc)) {
            let dir = PathBuf::from(var("OUT_DIR")).join("static-libgcc");
            std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
            // A linker script: `-lgcc_s` finds it before the real shared library, and the linker
            // takes the archive's members that are used, as for any static library.
            let script = format!("INPUT({})\n", archive.display());
            std::fs::write(dir.join("libgcc_s.so"), script).expect("OUT_DIR is writable");
            println!("cargo:rustc-link-search=native={}", dir.display());
        }
    }
}

/// The C compiler that links for the target, as the `cc` crate would choose it; `None` when
/// cross-compiling without one named (the host's `cc` would name the host's archive).
fn target_compiler() -> Option<PathBuf> {
    let target = std::env::var("TARGET").ok()?;
    let upper = target.to_uppercase().replace('-', "_");
    let named = [
        format!("CARGO_TARGET_{upper}_LINKER"),
        format!("CC_{}", target.replace('-', "_")),
        format!("CC_{target}"),
        "TARGET_CC".to_string(),
    ];
    for name in &named {
        println!("cargo:rerun-if-env-changed={name}");
    }
    if let Some(cc) = named.iter().find_map(std::env::var_os) {
        return Some(cc.into());
    }
    if std::env::var("HOST").ok()? != target {
        return None;
    }
    Some(std::env::var_os("CC").unwrap_or_else(|| "cc".into()).into())
}

/// The C compiler's static unwinder archive, when it has one at an absolute path that exists.
fn static_unwinder(cc: &Path) -> Option<PathBuf> {
    let out = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_absolute() && path.is_file()).then_some(path)
}
