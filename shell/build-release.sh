#!/usr/bin/env bash
# build-release.sh: builds the Linux binary tfshim ships — static, musl, non-PIE — on Debian with
# Debian's packages only, for this machine's architecture, into
# target/<arch>-unknown-linux-musl/release/tfshim (prints that path): x86_64 here and in the release
# workflow; aarch64 in the release workflow only (no arm64 machine here).
#
#   shell/build-release.sh            # installs what it needs (as root, from apt) on a fresh machine
#   shell/build-release.sh --packages-only   # only that: the Debian packages, at usable versions
#
# Why musl and not the default glibc build: a static non-PIE binary skips the dynamic loader, the PIE
# relocations and glibc's start-up, which on a VM are most of a pass-through's cost (README,
# Performance); and one binary runs on every distribution and in Alpine images.
#
# How (docs/static-musl-build.md has the detail and the reasons): Debian's rustc-web/cargo-web ship the
# standard library's source (rust-web-src) but no prebuilt musl standard library, so std is built from
# source with -Zbuild-std (RUSTC_BOOTSTRAP=1: nightly flags on a stable compiler, for this build only),
# linked by musl-gcc against Debian's musl and LLVM's libunwind. rustup's toolchain is left alone: a
# separate CARGO_HOME, Debian's cargo first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
arch=$(uname -m)
target=$arch-unknown-linux-musl
# Cargo's per-target variable names: X86_64_UNKNOWN_LINUX_MUSL, x86_64_unknown_linux_musl.
upper=$(tr 'a-z-' 'A-Z_' <<<"$target") lower=${target//-/_}

say() { printf 'tfshim build-release: %s\n' "$*" >&2; }

case "$(uname -s)/$arch" in
  Linux/x86_64|Linux/aarch64) ;;
  *) say "builds the Linux x86_64 or aarch64 binary on that machine only (this is $(uname -sm))"; exit 1 ;;
esac

# Debian's Rust at the crate's rust-version or newer: the lists are updated first when anything is
# missing or too old (a fresh image's lists may name an older rustc-web; shell/lib/apt.sh).
. shell/lib/apt.sh
rust_min=$(rust_version_min Cargo.toml)
apt_ensure build-release "rustc-web>=$rust_min" "cargo-web>=$rust_min" "rust-web-src>=$rust_min" \
  musl-tools libunwind-14-dev || exit 1
# --packages-only: just the step above (to check a machine, or to prepare it).
if [ "${1:-}" = --packages-only ]; then
  say "packages ready: $(dpkg-query -W -f='${Package} ${Version}\n' rustc-web cargo-web rust-web-src | paste -sd, -)"
  exit 0
fi

export PATH=/usr/bin:$PATH
export CARGO_HOME=${TFSHIM_RELEASE_CARGO_HOME:-$repo/target/debian-cargo-home}
export RUSTC_BOOTSTRAP=1
unset RUSTC RUSTDOC RUSTUP_TOOLCHAIN RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
export "CC_$lower=musl-gcc"
export "CARGO_TARGET_${upper}_LINKER=musl-gcc"
# link-self-contained=no: link with Debian's musl (musl-gcc) rather than the crt objects rustup would
# ship; +crt-static and relocation-model=static: without them musl-gcc makes a dynamic PIE.
# Debian's LLVM libunwind was compiled against glibc with _FORTIFY_SOURCE: its unwinding code (linked
# since the release profile unwinds, for the panic boundary) calls glibc's `__fprintf_chk`, which musl
# lacks. A one-function shim maps it to `vfprintf`.
shim=$repo/target/musl-shim
mkdir -p "$shim"
printf '%s\n' '#include <stdarg.h>' '#include <stdio.h>' \
  'int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) { va_list ap; (void)flag; va_start(ap, fmt); int r = vfprintf(f, fmt, ap); va_end(ap); return r; }' \
  >"$shim/fprintf_chk.c"
musl-gcc -O2 -c -o "$shim/fprintf_chk.o" "$shim/fprintf_chk.c"
# -lgcc: the C compiler's runtime, which C objects compiled by gcc may call (mimalloc's bit counting
# calls `__popcountdi2`); rustc links with -nodefaultlibs, and Rust's compiler-builtins lacks it here.
export "CARGO_TARGET_${upper}_RUSTFLAGS=-C link-self-contained=no -L/usr/lib/llvm-14/lib -C target-feature=+crt-static -C relocation-model=static -C link-arg=$shim/fprintf_chk.o -C link-arg=-lgcc"
# mimalloc, the static build's allocator (`--features mimalloc` below), without the C constructor that
# would start it on every start of tfshim: src/proxy/linkage.rs starts it before the first allocation
# instead.
export "CFLAGS_$lower=-DMI_PRIM_HAS_PROCESS_ATTACH=1"
# Thin LTO: std is compiled with the program here, and fat LTO over both costs minutes more for no
# measurable gain on the pass-through path (README, Performance).
export CARGO_PROFILE_RELEASE_LTO=${TFSHIM_RELEASE_LTO:-thin}

say "$(cargo --version), $(rustc --version)"
cargo build --locked --release -Zbuild-std=std,panic_abort --target "$target" --features mimalloc "$@"
bin=$repo/target/$target/release/tfshim
# Static and non-PIE: an ELF of type EXEC with no program interpreter (no dynamic loader).
headers=$(readelf -hl "$bin")
if ! grep -q 'Type:[[:space:]]*EXEC' <<<"$headers" || grep -q INTERP <<<"$headers"; then
  say "$bin is not a static non-PIE executable; refusing to ship it"
  exit 1
fi
echo "$bin"
