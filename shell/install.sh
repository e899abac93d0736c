#!/bin/sh
# install.sh: build and install tfshim from this checkout with cargo, and
# optionally (for CI) put a `terraform` symlink to it in a directory of your
# choice. Run `shell/install.sh --help` for usage.
set -eu

usage() {
    cat <<'EOF'
usage: shell/install.sh [--link DIR [--force]] [--help]

Runs `cargo install --locked --path <repo root>` and prints where tfshim went
(cargo's bin dir: $CARGO_INSTALL_ROOT/bin, else $CARGO_HOME/bin, else ~/.cargo/bin).

  --link DIR   also create DIR/terraform as a symlink to the installed tfshim.
               Put DIR first on PATH: tfshim then runs as `terraform` and
               hands off to the real terraform found later on PATH.
  --force      replace an existing DIR/terraform that is something else
  --help       show this help

For interactive shells, source shell/tfshim.bash (or .zsh/.fish/.ps1) instead.
EOF
}

say() { printf 'tfshim install: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

link_dir='' force=''
while [ $# -gt 0 ]; do
    case $1 in
        --link) [ $# -ge 2 ] || die "--link needs a directory"; link_dir=$2; shift ;;
        --link=*) link_dir=${1#--link=} ;;
        --force) force=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[ -n "$link_dir" ] || [ -z "$force" ] || die "--force only makes sense with --link"

# The repo root is the parent of the directory holding this script.
script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
repo_root=$(dirname -- "$script_dir")

command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust (https://rustup.rs) first"
say "running: cargo install --locked --path $repo_root"
cargo install --locked --path "$repo_root"

# cargo does not print a machine-readable destination, so recompute its
# default; a custom install.root in .cargo/config.toml is caught by the
# PATH fallback.
bin=${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin/tfshim
[ -x "$bin" ] || { [ -x "$bin.exe" ] && bin=$bin.exe; } || bin=$(command -v tfshim) ||
    die "cargo succeeded but the tfshim binary was not found; is cargo's bin dir on PATH?"
say "installed $bin"

[ -n "$link_dir" ] || exit 0

mkdir -p -- "$link_dir"
link_dir=$(CDPATH='' cd -- "$link_dir" && pwd)
link=$link_dir/terraform
if [ -L "$link" ] && [ "$(readlink -- "$link")" = "$bin" ]; then
    say "$link already points at $bin"
elif [ -e "$link" ] || [ -L "$link" ]; then
    # Never silently replace what may be the real terraform.
    [ -n "$force" ] || die "$link already exists and is not a link to $bin; use --force to replace it"
    rm -f -- "$link"
    ln -s -- "$bin" "$link"
    say "replaced $link with a link to $bin"
else
    ln -s -- "$bin" "$link"
    say "linked $link -> $bin"
fi
say "put $link_dir first on PATH, e.g.  export PATH=\"$link_dir:\$PATH\""
[ -z "${GITHUB_PATH:-}" ] || say "(GitHub Actions: echo \"$link_dir\" >> \"\$GITHUB_PATH\")"
