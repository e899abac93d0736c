#!/bin/sh
# tfshim @VERSION@ installer for Linux and macOS. Picks this machine's archive, checks its SHA-256
# against the checksums below (written in when the release was made, so a mirror cannot swap it),
# and installs tfshim into a user directory; with --link DIR, also makes DIR/terraform a link to it.
#
#   curl -fsSL https://github.com/@REPO@/releases/download/v@VERSION@/tfshim-installer.sh | sh
#   curl -fsSL …/tfshim-installer.sh | sh -s -- --link "$HOME/.local/tfshim-bin"
#
# Options:  --link DIR   also create DIR/terraform -> tfshim (put DIR first on PATH)
#           --force      replace an existing DIR/terraform that is a link to another tfshim (never
#                        anything else: a real terraform there is left alone, and the install stops)
# Environment:
#   TFSHIM_INSTALL_DIR   where tfshim goes (default: $HOME/.local/bin)
#   TFSHIM_DOWNLOAD_URL  where the archives are (default: this release on GitHub): a mirror or a local
#                        copy, as a URL (https://…, http://…, file://…) or a directory's path
# This file is shell/release/installer.sh with the release's values filled in by package.sh.
set -eu

version='@VERSION@'
repo='@REPO@'
checksums='@SHA256SUMS@'

say() { printf 'tfshim installer: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

link_dir='' force=''
while [ $# -gt 0 ]; do
    case $1 in
        --link) [ $# -ge 2 ] || die "--link needs a directory"; link_dir=$2; shift ;;
        --link=*) link_dir=${1#--link=} ;;
        --force) force=1 ;;
        -h|--help)
            printf '%s\n' "usage: tfshim-installer.sh [--link DIR [--force]]" \
                "Installs tfshim $version into \$TFSHIM_INSTALL_DIR (default ~/.local/bin) from" \
                "\$TFSHIM_DOWNLOAD_URL (default: the release on GitHub; a URL or a directory's path)," \
                "checksum-verified." \
                "--link DIR also makes DIR/terraform a link to it; --force replaces a link there to another" \
                "tfshim (never anything else: a real terraform in DIR is left alone and nothing is linked)."
            exit 0 ;;
        *) die "unknown argument: $1 (options: --link DIR, --force)" ;;
    esac
    shift
done

base=${TFSHIM_DOWNLOAD_URL:-https://github.com/$repo/releases/download/v$version}
base=${base%/}
dest=${TFSHIM_INSTALL_DIR:-${HOME:?HOME is not set; set TFSHIM_INSTALL_DIR}/.local/bin}

os=$(uname -s) arch=$(uname -m)
case "$os/$arch" in
    Linux/x86_64|Linux/amd64) target=x86_64-unknown-linux-musl ;;
    Linux/aarch64|Linux/arm64) target=aarch64-unknown-linux-musl ;;
    Darwin/x86_64) target=x86_64-apple-darwin ;;
    Darwin/arm64|Darwin/aarch64) target=aarch64-apple-darwin ;;
    *) die "no prebuilt tfshim for $os $arch; build it from source: cargo install --locked --git https://github.com/$repo" ;;
esac
archive=tfshim-$target.tar.gz
expected=$(printf '%s\n' "$checksums" | awk -v f="$archive" '$2 == f { print $1 }')
[ -n "$expected" ] || die "release $version has no $archive"

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1"
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1"
    elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$1"
    else die "no sha256sum, shasum or openssl to verify the download with"
    fi | awk '{ print $1 }'
}

fetch() { # url or path, file
    case $1 in
        file://*) cp -- "${1#file://}" "$2" 2>"$tmp/fetch.err" ;;
        *://*)
            # curl's retries each print their error (offline: "Could not resolve host" four times):
            # they are kept for the installer's one line instead.
            if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o "$2" "$1" 2>"$tmp/fetch.err"
            elif command -v wget >/dev/null 2>&1; then wget -nv -O "$2" "$1" 2>"$tmp/fetch.err"
            else die "no curl or wget to download with"
            fi ;;
        *) cp -- "$1" "$2" 2>"$tmp/fetch.err" ;; # a plain path: a local copy of the release
    esac
}
# Why the download failed, in a few words: the last thing curl, wget or cp said, without its prefix.
fetch_error() {
    why=$(sed -n '$s/^[a-z]*: \(([0-9]*) \)\{0,1\}//p' "$tmp/fetch.err" 2>/dev/null)
    printf '%s' "${why:-no reason given}"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

say "downloading $base/$archive"
fetch "$base/$archive" "$tmp/$archive" ||
    die "could not download $base/$archive ($(fetch_error)); nothing was installed (offline? TFSHIM_DOWNLOAD_URL takes a mirror or a local copy)"
actual=$(sha256 "$tmp/$archive")
if [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $archive: expected $expected, got $actual; nothing was installed (a damaged or altered download: try again, or check TFSHIM_DOWNLOAD_URL)"
fi
tar -xzf "$tmp/$archive" -C "$tmp"
bin=$tmp/tfshim-$target/tfshim
[ -f "$bin" ] || die "$archive does not hold tfshim-$target/tfshim; nothing was installed"

mkdir -p -- "$dest"
dest=$(CDPATH='' cd -- "$dest" && pwd)
# Copy next to the destination, then rename: a running tfshim is never half-overwritten.
cp -- "$bin" "$dest/.tfshim.new.$$"
chmod 0755 "$dest/.tfshim.new.$$"
mv -f -- "$dest/.tfshim.new.$$" "$dest/tfshim"
say "installed tfshim $version ($target) as $dest/tfshim"

if [ -n "$link_dir" ]; then
    mkdir -p -- "$link_dir"
    link_dir=$(CDPATH='' cd -- "$link_dir" && pwd)
    link=$link_dir/terraform
    # Only a link to a tfshim is ever removed (issue #20, item 9): anything else there — most likely
    # the real terraform — is left as it is, --force or not, and another directory is suggested.
    other_dir=${HOME:-~}/.local/tfshim-bin
    [ "$other_dir" != "$link_dir" ] || other_dir=${HOME:-~}/.tfshim-bin
    target=''
    [ ! -L "$link" ] || target=$(readlink -- "$link")
    if [ -n "$target" ] && [ "$target" = "$dest/tfshim" ]; then
        say "$link already points at $dest/tfshim"
    elif [ "${target##*/}" = tfshim ]; then
        [ -n "$force" ] ||
            die "$link is a link to another tfshim ($target); --force points it at $dest/tfshim"
        rm -f -- "$link"
        ln -s -- "$dest/tfshim" "$link"
        say "replaced the link $link (it pointed at $target) with a link to $dest/tfshim"
    elif [ -e "$link" ] || [ -L "$link" ]; then
        what='a file that is not tfshim (perhaps the real terraform)'
        [ -z "$target" ] || what="a link to $target, not to tfshim"
        [ ! -d "$link" ] || [ -n "$target" ] || what='a directory'
        die "$link is $what; it is left as it is, and tfshim (installed as $dest/tfshim) was not linked there (--force replaces only a link to tfshim). Link from another directory: rerun with --link \"$other_dir\" and put that first on PATH (tfshim runs the terraform it finds further down PATH)"
    else
        ln -s -- "$dest/tfshim" "$link"
        say "linked $link -> $dest/tfshim"
    fi
fi
# Say what is left to do about PATH, only for the directory that matters: with --link, the link's
# (its `terraform` must come first; tfshim itself needs no PATH entry); without, tfshim's own.
if [ -n "$link_dir" ]; then
    first=$(command -v terraform 2>/dev/null || true)
    case ":${PATH:-}:" in
        *":$link_dir:"*)
            [ "$first" = "$link" ] ||
                say "$link_dir is on PATH after another terraform ($first); put it first, e.g.  export PATH=\"$link_dir:\$PATH\"" ;;
        *) say "$link_dir is not on PATH; put it first, e.g.  export PATH=\"$link_dir:\$PATH\"" ;;
    esac
else
    case ":${PATH:-}:" in
        *":$dest:"*) ;;
        *) say "$dest is not on PATH; add it, e.g.  export PATH=\"$dest:\$PATH\"" ;;
    esac
fi
