//! Build script: on Linux with glibc (the default `cargo build`/`cargo install` there), links tfshim
//! so that the dynamic loader has as little to do at start-up as possible (issue #16):
//!
//! - **`-no-pie`**: a PIE must have its ≈ 12,700 relative relocations applied by the loader at every
//!   start, copying ≈ 190 KB of pages on write. Only the executable's own base address loses
//!   randomisation (shared libraries, stack, heap and mmaps keep theirs).
//! - **the unwinder linked in** (`libgcc_eh.a`, as `gcc -static-libgcc` does) instead of loading
//!   `libgcc_s.so.1`: each shared library costs its own open, mappings and symbol scope, ≈ 55 µs per
//!   start on the project's VM. rustc asks for `-lgcc_s` itself, so the build script puts a
//!   `libgcc_s.so` linker script naming `libgcc_eh.a` and `libgcc.a` first on the binary's search
//!   path. It is done only with `-no-pie` and when the C compiler names both archives; otherwise the
//!   link stays as rustc makes it.
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
    if var("TFSHIM_PIE") == "1" {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-no-pie");
    // Only with `-no-pie`: on a toolchain whose gcc does not default to PIE, the archives need not be
    // position-independent. Tests and other targets keep the shared library.
    if var("TFSHIM_SHARED_LIBGCC") != "1" {
        if let Some(archives) = target_compiler().and_then(|cc| static_libgcc(&cc)) {
            let dir = PathBuf::from(var("OUT_DIR")).join("static-libgcc");
            std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
            // A linker script where `-lgcc_s` finds it first. The real `libgcc_s.so` is itself a
            // script, `GROUP(libgcc_s.so.1 -lgcc)`: the static replacement keeps `libgcc.a` too,
            // as `gcc -static-libgcc` links `-lgcc -lgcc_eh`.
            let quoted: Vec<String> = archives
                .iter()
                .map(|a| format!("\"{}\"", a.display()))
                .collect();
            let script = format!("GROUP({})\n", quoted.join(" "));
            std::fs::write(dir.join("libgcc_s.so"), script).expect("OUT_DIR is writable");
            println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
            // A compiler upgrade moves the archives: link with the new ones, not a stale path.
            for archive in &archives {
                println!("cargo:rerun-if-changed={}", archive.display());
            }
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

/// The C compiler's static unwinder and runtime archives (`libgcc_eh.a`, `libgcc.a`), when it names
/// both at absolute paths that exist and that a linker script can quote.
fn static_libgcc(cc: &Path) -> Option<[PathBuf; 2]> {
    let ask = |flag: &str| {
        let out = Command::new(cc).arg(flag).output().ok()?;
        let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        let quotable = !path.to_string_lossy().contains('"');
        (out.status.success() && path.is_absolute() && path.is_file() && quotable).then_some(path)
    };
    Some([
        ask("-print-file-name=libgcc_eh.a")?,
        ask("-print-libgcc-file-name")?,
    ])
}
