//! Build script: on Linux with glibc (the default `cargo build`/`cargo install` there), links tfshim
//! as a position-dependent executable (`-no-pie`).
//!
//! Why (issue #16): a PIE must have its ≈ 12,700 relative relocations applied by the dynamic loader at
//! every start, copying ≈ 190 KB of pages on write; tfshim starts once per terraform command, and that
//! is a measurable part of its pass-through cost (README, Performance). Only the executable's own
//! base address loses randomisation (shared libraries, stack, heap and mmaps keep theirs). Static
//! glibc would save more, but `-C target-feature=+crt-static` cannot be set for the binary alone on
//! stable Cargo (it breaks proc-macro builds), so the fully static binary is the musl release build
//! (shell/build-release.sh). `TFSHIM_PIE=1` at build time keeps the default PIE.

fn main() {
    println!("cargo:rerun-if-env-changed=TFSHIM_PIE");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && var("TFSHIM_PIE") != "1"
    {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
