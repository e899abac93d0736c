#!/usr/bin/env bash
# apt-check.sh: shell/lib/apt.sh gets packages at a usable version, or says what is missing (issue
# #20, item 13: a fresh Debian 12 image installed rustc-web 1.85 from its stale lists, and the build
# then stopped, the crate needing 1.89). shell/release/check.sh calls it; it also runs alone, as any
# user, in a second: apt-get, dpkg-query and id are stand-ins that keep a fake package database in a
# temp dir (dpkg's own version comparison is real); nothing is installed.
#
#   shell/lib/apt-check.sh
#
# Prints one line per check and "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'apt check: ok    %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'apt check: FAIL  %s\n' "$*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-apt-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
stubs=$tmp/stubs
mkdir -p "$stubs"
# The fake database: $db/PACKAGE holds the installed version. The lists hold $OLD until an update,
# then $NEW ($NEW empty: the sources offer nothing newer).
cat >"$stubs/dpkg-query" <<'EOF'
#!/bin/sh
# dpkg-query -W [-f=FORMAT] PACKAGE…
fmt='${Package}\t${Version}\n'
for a in "$@"; do case $a in -f=*) fmt=${a#-f=} ;; esac; done
rc=0
for a in "$@"; do
  case $a in -*) continue ;; esac
  if [ -f "$DB/$a" ]; then
    v=$(cat "$DB/$a")
    printf '%s' "$fmt" | sed "s/\${Status}/install ok installed/; s/\${Package}/$a/; s/\${Version}/$v/; s/\\\\n/\n/g; s/\\\\t/\t/g"
  else
    echo "dpkg-query: no packages found matching $a" >&2; rc=1
  fi
done
exit $rc
EOF
cat >"$stubs/apt-get" <<'EOF'
#!/bin/sh
echo "apt-get $*" >>"$DB.log"
for a in "$@"; do
  case $a in
    update) [ -z "$NEW" ] || echo "$NEW" >"$DB.lists"; exit 0 ;;
    install) ;;
    -*|*=*) ;;
    *) [ "$a" = install ] || cat "$DB.lists" >"$DB/$a" ;;
  esac
done
EOF
printf '#!/bin/sh\necho 0\n' >"$stubs/id"
# A build must not start: the checks are about packages only.
for tool in cargo musl-gcc; do printf '#!/bin/sh\necho "%s ran: the build started" >&2\nexit 97\n' "$tool" >"$stubs/$tool"; done
chmod +x "$stubs"/*

old=1.85.0+dfsg3-1~deb12u3 new=1.96.0+dfsg1-1~deb12u2
min=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

# scenario NAME NEW INSTALLED…: a fresh fake machine (PACKAGE=VERSION installed), lists at $old.
scenario() {
  DB=$tmp/$1
  export DB NEW=$2
  shift 2
  mkdir -p "$DB"
  echo "$old" >"$DB.lists"
  : >"$DB.log"
  local p
  for p in "$@"; do echo "${p#*=}" >"$DB/${p%%=*}"; done
}
run() { env PATH="$stubs:/usr/bin:/bin" "$@" >"$tmp/out" 2>&1; }
show() { sed 's/^/    /' "$tmp/out" "$DB.log"; }

# 1. The issue's machine: rustc-web 1.85 installed from the image's lists. build-release.sh's own
#    package step must update the lists, upgrade, and stop there (--packages-only).
scenario stale "$new" rustc-web=$old cargo-web=$old rust-web-src=$old musl-tools=1 libunwind-14-dev=1
if ! run bash shell/build-release.sh --packages-only; then
  bad "build-release.sh with rustc-web $old installed (needs $min) failed"; show
elif ! grep -q '^apt-get update' "$DB.log" || [ "$(sed -n 1p "$DB.log" | cut -d' ' -f2)" != update ]; then
  bad "build-release.sh did not update the package lists before installing"; show
elif [ "$(cat "$DB/rustc-web")" != "$new" ] || [ "$(cat "$DB/cargo-web")" != "$new" ] || [ "$(cat "$DB/rust-web-src")" != "$new" ]; then
  bad "build-release.sh left rustc-web/cargo-web/rust-web-src at $(cat "$DB/rustc-web")"; show
else
  ok "build-release.sh --packages-only: rustc-web $old -> update, then $new (>= $min)"
fi

# 2. The sources offer nothing newer: a clear failure naming the package and both versions.
scenario nonewer '' rustc-web=$old cargo-web=$old rust-web-src=$old musl-tools=1 libunwind-14-dev=1
if run bash shell/build-release.sh --packages-only; then
  bad "build-release.sh succeeded with rustc-web $old"; show
elif ! grep -q "still missing: rustc-web $old (needs >= $min)" "$tmp/out"; then
  bad "the failure does not name rustc-web, its version and the minimum"; show
else
  ok "no newer rustc-web to be had: exit 1, naming rustc-web $old (needs >= $min)"
fi

# 3. Missing packages on a fresh machine: lists updated first, then installed.
scenario fresh "$new"
if run bash shell/build-release.sh --packages-only && [ "$(sed -n 1p "$DB.log")" = "apt-get update -qq -o DPkg::Lock::Timeout=600" ] &&
  [ -f "$DB/musl-tools" ] && [ "$(cat "$DB/rustc-web")" = "$new" ]; then
  ok "nothing installed: the lists are updated, then everything installed"
else
  bad "nothing installed: not updated first or not installed"; show
fi

# 4. Everything usable: apt-get is not run at all.
scenario current "$new" rustc-web=$new cargo-web=$new rust-web-src=$new musl-tools=1 libunwind-14-dev=1
if run bash shell/build-release.sh --packages-only && [ ! -s "$DB.log" ]; then
  ok "everything at a usable version: apt-get is not run"
else
  bad "apt-get ran though nothing was missing"; show
fi

# 5. Not root: nothing is run, and the message says what to install.
scenario user "$new" rustc-web=$old
printf '#!/bin/sh\necho 1000\n' >"$stubs/id"
if run bash -c ". shell/lib/apt.sh; apt_ensure test 'rustc-web>=$min' strace"; then
  bad "apt_ensure succeeded as a user with rustc-web $old"; show
elif [ -s "$DB.log" ] || ! grep -q "rustc-web $old (needs >= $min), strace (not installed)" "$tmp/out"; then
  bad "as a user: apt-get ran, or the message does not name what is missing"; show
else
  ok "as a user: nothing run, the missing packages named with their versions"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
