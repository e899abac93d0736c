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
  --force      replace an existing DIR/terraform that is a link to another
               tfshim; never anything else (a real terraform in DIR is left
               alone, and nothing is linked: choose another DIR)
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

# Without cargo, the prebuilt binary is the quicker way (#22): name its installer, as README
# ## Install does, under the GitHub repository this checkout came from when git knows it.
prebuilt_hint() {
    repo=$(git -C "$repo_root" remote get-url origin 2>/dev/null |
        sed -n 's#^.*github\.com[:/]\([A-Za-z0-9_.-]*/[A-Za-z0-9_.-]*\)$#\1#p' | sed 's#\.git$##')
    owner=''
    [ -n "$repo" ] || { repo=OWNER/tfshim; owner=' (OWNER: the account tfshim is published under)'; }
    link=''
    [ -z "$link_dir" ] || link=" -s -- --link $link_dir"
    printf '%s' "cargo not found. Install the prebuilt binary instead (checksum-verified, into ~/.local/bin): curl -fsSL https://github.com/$repo/releases/latest/download/tfshim-installer.sh | sh$link$owner; or install Rust (https://rustup.rs) and run this again"
}
command -v cargo >/dev/null 2>&1 || die "$(prebuilt_hint)"
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
# Only a link to a tfshim is ever removed (issue #20, item 9): anything else there — most likely the
# real terraform — is left as it is, --force or not, and another directory is suggested.
other_dir=${HOME:-~}/.local/tfshim-bin
[ "$other_dir" != "$link_dir" ] || other_dir=${HOME:-~}/.tfshim-bin
target=''
[ ! -L "$link" ] || target=$(readlink -- "$link")
case ${target##*/} in
    tfshim|tfshim.exe) to_tfshim=1 ;;
    *) to_tfshim='' ;;
esac
if [ -n "$target" ] && [ "$target" = "$bin" ]; then
    say "$link already points at $bin"
elif [ -n "$to_tfshim" ]; then
    [ -n "$force" ] || die "$link is a link to another tfshim ($target); --force points it at $bin"
    rm -f -- "$link"
    ln -s -- "$bin" "$link"
    say "replaced the link $link (it pointed at $target) with a link to $bin"
elif [ -e "$link" ] || [ -L "$link" ]; then
    what='a file that is not tfshim (perhaps the real terraform)'
    [ -z "$target" ] || what="a link to $target, not to tfshim"
    [ ! -d "$link" ] || [ -n "$target" ] || what='a directory'
    die "$link is $what; it is left as it is, and tfshim ($bin) was not linked there (--force replaces only a link to tfshim). Link from another directory: rerun with --link \"$other_dir\" and put that first on PATH (tfshim runs the terraform it finds further down PATH)"
else
    ln -s -- "$bin" "$link"
    say "linked $link -> $bin"
fi
say "put $link_dir first on PATH, e.g.  export PATH=\"$link_dir:\$PATH\""
[ -z "${GITHUB_PATH:-}" ] || say "(GitHub Actions: echo \"$link_dir\" >> \"\$GITHUB_PATH\")"
