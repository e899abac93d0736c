# shellcheck shell=sh
# shell/lib/apt.sh: Debian packages at a version the scripts can use (sourced by every script that
# installs packages; bash or POSIX sh).
#
# Why: a fresh machine's image comes with the package lists of the day it was made. Installing from
# them first and running `apt-get update` only when the install fails gets whatever those lists
# name — on Debian 12, rustc-web 1.85 where the crate needs its Cargo.toml `rust-version` (issue #20,
# item 13) — and the build then stops far from the cause. So: when anything is missing or older than
# its minimum, the lists are updated first, then the packages installed or upgraded, then the
# installed versions checked again; what still falls short is named, with the version found.
#
#   . shell/lib/apt.sh
#   apt_ensure WHO [--no-install-recommends] PACKAGE[>=MIN]…   # returns 1 (after saying why) if it cannot
#   rust_version_min CARGO_TOML                                 # the crate's rust-version, e.g. 1.89
#
# Another apt may hold the dpkg lock (a fresh CI machine runs unattended upgrades): it is waited for.

# The installed version of PACKAGE, or nothing.
apt_installed_version() {
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
    awk '$1 == "install" && $3 == "installed" { print $4 }'
}

# Whether SPEC (PACKAGE or PACKAGE>=MIN) is installed at a usable version.
apt_satisfied() {
  apt_pkg=${1%%>=*} apt_min=''
  [ "$apt_pkg" = "$1" ] || apt_min=${1#*>=}
  apt_have=$(apt_installed_version "$apt_pkg")
  [ -n "$apt_have" ] || return 1
  [ -z "$apt_min" ] || dpkg --compare-versions "$apt_have" ge "$apt_min"
}

# "rustc-web 1.85.0+dfsg3-1~deb12u3 (needs >= 1.89)", "musl-tools (not installed)".
apt_describe() {
  apt_pkg=${1%%>=*} apt_min=''
  [ "$apt_pkg" = "$1" ] || apt_min=${1#*>=}
  apt_have=$(apt_installed_version "$apt_pkg")
  if [ -z "$apt_have" ]; then
    printf '%s (not installed%s)' "$apt_pkg" "${apt_min:+; needs >= $apt_min}"
  else
    printf '%s %s (needs >= %s)' "$apt_pkg" "$apt_have" "$apt_min"
  fi
}

apt_ensure() {
  apt_who=$1
  shift
  apt_opts=''
  if [ "${1:-}" = --no-install-recommends ]; then
    apt_opts=$1
    shift
  fi
  apt_short='' apt_names=''
  for apt_spec in "$@"; do
    apt_satisfied "$apt_spec" && continue
    apt_short="$apt_short${apt_short:+, }$(apt_describe "$apt_spec")"
    apt_names="$apt_names ${apt_spec%%>=*}"
  done
  [ -n "$apt_names" ] || return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    printf 'tfshim %s: needs the Debian packages: %s; install them as root (apt-get update && apt-get install%s), then rerun\n' \
      "$apt_who" "$apt_short" "$apt_names" >&2
    return 1
  fi
  printf 'tfshim %s: updating the package lists, then installing: %s\n' "$apt_who" "$apt_short" >&2
  # Lists first: the image's own may predate the versions needed, or name files the mirror dropped.
  if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq -o DPkg::Lock::Timeout=600 >&2; then
    printf 'tfshim %s: apt-get update failed (output above); still missing: %s\n' "$apt_who" "$apt_short" >&2
    return 1
  fi
  # shellcheck disable=SC2086 # $apt_opts and $apt_names are word lists of package names
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 $apt_opts \
    $apt_names >/dev/null; then
    printf 'tfshim %s: apt-get install failed; still missing: %s\n' "$apt_who" "$apt_short" >&2
    return 1
  fi
  apt_short=''
  for apt_spec in "$@"; do
    apt_satisfied "$apt_spec" ||
      apt_short="$apt_short${apt_short:+, }$(apt_describe "$apt_spec")"
  done
  if [ -n "$apt_short" ]; then
    printf 'tfshim %s: after apt-get update and install, still missing: %s; the package sources in /etc/apt offer no newer version (add one that does, e.g. bookworm-updates, or install it yourself), then rerun\n' \
      "$apt_who" "$apt_short" >&2
    return 1
  fi
  return 0
}

# The crate's minimum Rust (Cargo.toml's `rust-version`), for `rustc-web>=$(rust_version_min …)`.
rust_version_min() {
  sed -n 's/^rust-version = "\(.*\)"/\1/p' "$1" | head -n1
}
