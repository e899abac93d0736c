#!/usr/bin/env bash
# Runs every tfshim test on a fresh machine: installs what the tests need (moto, from PyPI), checks
# that the real terraform is there, then format, lint, unit and end-to-end tests.
# Usage: shell/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${TFSHIM_TEST_PYTHON:-python3}
if ! "$python" -c 'import moto.server, flask' 2>/dev/null; then
  echo "tfshim test: installing moto[server] from PyPI" >&2
  "$python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.2,<6'
fi
# The crash-consistency test holds terraform inside its write of the saved file with strace, and
# tests/e2e/signals.rs counts the signals the real terraform receives with it.
if ! command -v strace >/dev/null 2>&1; then
  echo "tfshim test: installing strace (apt-get)" >&2
  apt-get install -y -qq strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace >/dev/null; }
fi
if ! command -v terraform >/dev/null 2>&1; then
  echo "tfshim test: no terraform on PATH; the end-to-end tests run the real binary (install it, then rerun)" >&2
  exit 1
fi

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked "$@"
