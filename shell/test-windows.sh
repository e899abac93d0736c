#!/usr/bin/env bash
# tfshim on Windows, tested here under Wine: cross-compiles tfshim and the stand-in terraform.exe
# (tests/windows/standin) for x86_64-pc-windows-gnu with Debian's Rust and its std source
# (-Zbuild-std; rustup's toolchain has no Windows std here), links them with mingw-w64, then runs
# under Wine 8 the unit tests and end-to-end checks of what differs on Windows: argument quoting,
# stdin/stdout, 32-bit exit codes, Ctrl-C, PATH/PATHEXT search, and the seed's repair (against moto
# STS on 127.0.0.1) with Windows file semantics.
#
# Needs Debian 12 (bookworm) packages: rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 wine64
# (installed with apt-get when run as root), python3 and curl (moto), and the real terraform (it
# writes the seed's saved backend). Everything built is cached in target/windows/ (its own
# CARGO_HOME, target dir and Wine prefix), so rustup's ~/.cargo is left alone.
# Usage: shell/test-windows.sh [e2e | GROUP]
#   e2e: only the end-to-end checks; GROUP: only the group of checks of that name (arguments, stdio,
#   exit-codes, ctrl-c, path, repair). TFSHIM_TEST_WINDOWS_EXE=FILE runs the checks against another
#   tfshim.exe (e.g. one built from an older commit).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=$repo/target/windows
target=x86_64-pc-windows-gnu
only=${1:-}
say() { printf 'tfshim windows: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# 1. Packages. Debian's rustc-web (bookworm: 1.85 at first, newer in its updates) with its std source in rust-web-src; Wine 8 runs the .exes.
# At the crate's rust-version or newer (shell/lib/apt.sh updates the lists first when needed).
. shell/lib/apt.sh
rust_min=$(rust_version_min Cargo.toml)
apt_ensure windows --no-install-recommends "rustc-web>=$rust_min" "cargo-web>=$rust_min" \
  "rust-web-src>=$rust_min" gcc-mingw-w64-x86-64 wine64 || exit 1
for tool in python3 curl terraform script; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done

# 2. Build. Debian's cargo and rustc (in /usr/bin) rather than rustup's; RUSTC_BOOTSTRAP=1 lets this
# stable compiler rebuild std for the target (-Zbuild-std). The debug profile, with line tables
# only (panics still name file and line), keeps a cold build short (std included); a shipped
# binary would use the release profile.
mkdir -p "$cache"
xcargo() {
  env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    CARGO_HOME="$cache/cargo-home" CARGO_TARGET_DIR="$cache/target" CARGO_PROFILE_DEV_DEBUG=line-tables-only \
    /usr/bin/cargo "$1" --locked -Zbuild-std=std,panic_abort --target "$target" "${@:2}"
}
say "building tfshim.exe, the stand-in terraform.exe and the unit tests (cold: several minutes)"
# Clippy is not packaged with Debian's Rust, so the Windows-only code is held to no compiler warnings
# (cargo replays a cached crate's warnings, so this holds on warm builds too).
xcargo build --workspace --bins 2>&1 | tee "$cache/build.log"
xcargo test -p tfshim --bins --no-run --message-format=json-diagnostic-rendered-ansi >"$cache/test-build.json"
unit_tests=$(python3 - "$cache/test-build.json" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-message" and m["message"]["level"] == "warning":
        sys.stderr.write(m["message"]["rendered"])
        print("WARNING")
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
EOF
)
if grep -q '^warning' "$cache/build.log" || [[ $unit_tests == *WARNING* ]]; then
  die "the Windows build has compiler warnings (above)"
fi
[ -n "$unit_tests" ] || die "cargo did not report the unit-test executable"
out=$cache/target/$target/debug

# 3. Wine 8 has no bcryptprimitives.dll, which Rust's std imports (ProcessPrng): without this
# stand-in every Rust .exe fails to load with status c0000135.
dll=$cache/bcryptprimitives.dll
if [ ! -f "$dll" ] || [ tests/windows/bcryptprimitives.c -nt "$dll" ]; then
  x86_64-w64-mingw32-gcc -O2 -shared -o "$dll" tests/windows/bcryptprimitives.c \
    tests/windows/bcryptprimitives.def -ladvapi32
fi

# 4. A Wine prefix (headless; no Mono or Gecko, which would ask to be installed).
export WINEPREFIX=$cache/wine WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml='
wine=/usr/lib/wine/wine64
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  say "creating the Wine prefix"
  "$wine" wineboot --init >/dev/null 2>&1 || true
  /usr/lib/wine/wineserver -w
fi
[ -d "$WINEPREFIX/drive_c/windows/system32" ] || die "wineboot did not create $WINEPREFIX"
cp "$dll" "$WINEPREFIX/drive_c/windows/system32/"

# 5. The unit tests, Windows build.
if [ -z "$only" ]; then
  say "unit tests under Wine"
  timeout 1200 "$wine" "$unit_tests" --test-threads=2 || die "unit tests failed under Wine"
fi

# 6. End-to-end checks. C:\t holds this run's files: shim\ (tfshim.exe, and a copy named
# terraform.exe), tf\ (the stand-in terraform.exe), and the roots.
# shellcheck source=moto-lib.sh
. shell/moto-lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-windows.XXXXXX")
trap 'moto_cleanup; /usr/lib/wine/wineserver -k 2>/dev/null; rm -rf "$tmp"' EXIT
c=$WINEPREFIX/drive_c
rm -rf "$c/t"
mkdir -p "$c/t/shim" "$c/t/tf" "$c/t/cmd" "$c/t/loop"
shim_exe=${TFSHIM_TEST_WINDOWS_EXE:-$out/tfshim.exe}
cp "$shim_exe" "$c/t/shim/tfshim.exe"
cp "$shim_exe" "$c/t/shim/terraform.exe"
cp "$out/terraform.exe" "$c/t/tf/terraform.exe"
# An exit-code reporter: cmd's %ERRORLEVEL% holds all 32 bits (Wine's own exit status only 8).
printf '@%%* >NUL 2>NUL\r\n@echo %%ERRORLEVEL%%\r\n' >"$c/t/rc.cmd"
# A terraform.cmd that runs the stand-in (a wrapper some installers leave), and one that runs tfshim
# again (a loop tfshim cannot see through).
printf '@"C:\\t\\tf\\terraform.exe" %%*\r\n' >"$c/t/cmd/terraform.cmd"
printf '@"C:\\t\\shim\\tfshim.exe" %%*\r\n' >"$c/t/loop/terraform.cmd"
record=$tmp/record
userprofile=$c/users/$(id -un)

# Runs a Windows program with the test environment: the stand-in on PATH (WINEPATH prepends to
# Wine's PATH), no AWS settings from this machine, no HOME (as on Windows: USERPROFILE is used).
win() {
  env -u HOME -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CONFIG_FILE -u TFSHIM_TERRAFORM -u TFSHIM_MODE \
    -u TFSHIM_LOG -u TFSHIM_ENGINE -u TF_DATA_DIR -u TF_CLI_ARGS -u CI -u GITHUB_ACTIONS \
    -u AWS_CA_BUNDLE -u SSL_CERT_FILE -u SSL_CERT_DIR -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy \
    -u https_proxy -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_STS -u AWS_REGION -u AWS_DEFAULT_REGION \
    WINEPATH="${WINEPATH:-C:\\t\\tf}" STANDIN_RECORD='Z:'"${record//\//\\}" \
    AWS_EC2_METADATA_DISABLED=true TFSHIM_QUIET=1 timeout 120 "$wine" "$@"
}
# Like win, on a console (a pty, through script(1)): Ctrl-C needs one.
{ declare -p wine record; declare -f win; echo 'win "$@"'; } >"$tmp/win.sh"
win_console() {
  local cmd
  printf -v cmd '%q ' "$@"
  SHELL=/bin/bash script -qec "bash $tmp/win.sh $cmd" /dev/null
}
exit_code() { { win 'C:\t\rc.cmd' "$@" || true; } | tr -d '\r' | tail -n1; }

passed=0
failures=()
wanted() { [ -z "$only" ] || [ "$only" = e2e ] || [ "$only" = "$1" ]; }
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
bad() { failures+=("$1"); printf 'FAIL  %s\n      %s\n' "$1" "$2"; }
# expect NAME ACTUAL WANTED
expect() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "got [$2], want [$3]"; fi; }
# expect_in NAME HAYSTACK NEEDLE
expect_in() { if [[ $2 == *"$3"* ]]; then ok "$1"; else bad "$1" "[$3] not in [$2]"; fi; }

if wanted arguments; then
  # What the stand-in records for each argument is its Debug form: the Wine-started stand-in and
  # tfshim's child must both see exactly these strings.
  args=(plan "-var=name=a b" 'x"y' '"quoted"' 'trail\' 'trail space\ ' '' 'back\\"slash' 'a\b\c'
    'ünï cödé €' '%PATH%' '%TEMP' '^&|<>' "-var=list=[\"a\", \"b\"]" 'tab	here')
  want=$(python3 -c 'import sys
for a in sys.argv[1:]: print("\"" + a.replace("\\", "\\\\").replace("\"", "\\\"").replace("\t", "\\t") + "\"")' "${args[@]}")
  : >"$record"
  win 'C:\t\tf\terraform.exe' "${args[@]}" >/dev/null || true
  direct=$(sed -n '/^TFSHIM_RECURSION/q;p' "$record")
  : >"$record"
  win 'C:\t\shim\tfshim.exe' "${args[@]}" >/dev/null || true
  shim=$(sed -n '/^TFSHIM_RECURSION/q;p' "$record")
  expect "arguments: the stand-in alone sees them as given (test set-up)" "$direct" "$want"
  expect "arguments: passed through tfshim unchanged" "$shim" "$want"
  expect_in "arguments: terraform runs with the recursion counter" "$(cat "$record")" 'TFSHIM_RECURSION_COUNT=Some("1")'
fi

if wanted stdio; then
  input=$'line one\nünï line two\n\nlast line without newline'
  got=$(printf '%s' "$input" | win 'C:\t\shim\tfshim.exe' console 2>"$tmp/stderr" || true; echo x)
  expect "stdio: stdin reaches terraform and its stdout comes back byte for byte" "${got%x}" "$input"
  expect "stdio: tfshim adds nothing on stderr" "$(cat "$tmp/stderr")" ""
fi

if wanted exit-codes; then
  for code in 0 1 2 255 256 3221225786; do
    direct=$(STANDIN_EXIT=$code exit_code 'C:\t\tf\terraform.exe' version)
    shim=$(STANDIN_EXIT=$code exit_code 'C:\t\shim\tfshim.exe' version)
    expect "exit-codes: $code, all 32 bits, as terraform's own ($direct)" "$shim" "$direct"
  done
  expect "exit-codes: 0xC000013A is reported as the test expects (test set-up)" \
    "$(STANDIN_EXIT=3221225786 exit_code 'C:\t\tf\terraform.exe' version)" "-1073741510"
fi

if wanted ctrl-c; then
  # The stand-in sends Ctrl-C to its console and counts what its handler receives (terraform's Go
  # runtime handles it the same way). tfshim must neither hide it from terraform nor die of it.
  got=$(STANDIN_EXIT=7 win_console 'C:\t\tf\terraform.exe' ctrlc-probe | tr -d '\r' || true)
  expect_in "ctrl-c: the stand-in alone receives it once (test set-up)" "$got" "ctrl-c received 1"
  got=$(STANDIN_EXIT=7 win_console 'C:\t\shim\tfshim.exe' ctrlc-probe | tr -d '\r'; echo "rc=${PIPESTATUS[0]}")
  expect_in "ctrl-c: terraform started by tfshim receives it, once" "$got" "ctrl-c received 1"
  expect_in "ctrl-c: tfshim outlives it and exits with terraform's code" "$got" "rc=7"
fi

if wanted path; then
  : >"$record"
  got=$(WINEPATH='C:\t\shim;C:\t\tf' win 'C:\t\shim\terraform.exe' shim which 2>&1 | tr -d '\r' || true)
  expect "path: tfshim installed as terraform.exe skips itself on PATH" "${got%%$'\n'*}" 'C:\t\tf\terraform.exe'
  code=$(WINEPATH='C:\t\shim;C:\t\tf' STANDIN_EXIT=3 exit_code 'C:\t\shim\terraform.exe' version)
  expect "path: ... and runs the real one" "$code:$(head -n1 "$record")" '3:"version"'
  got=$(WINEPATH='C:\t\shim;C:\t\cmd;C:\t\tf' win 'C:\t\shim\terraform.exe' shim which 2>&1 | tr -d '\r' || true)
  expect "path: a terraform.cmd is found through PATHEXT" "${got%%$'\n'*}" 'C:\t\cmd\terraform.cmd'
  : >"$record"
  code=$(WINEPATH='C:\t\shim;C:\t\cmd' STANDIN_EXIT=4 exit_code 'C:\t\shim\terraform.exe' plan '-var=a=b c')
  expect "path: ... and run, with its arguments and exit code" "$code:$(head -n2 "$record" | tr '\n' ' ')" \
    '4:"plan" "-var=a=b c" '
  code=$(WINEPATH='C:\t\shim' exit_code 'C:\t\shim\terraform.exe' version)
  expect "path: no terraform but tfshim itself: exit 127" "$code" 127
  got=$(WINEPATH='C:\t\shim' win 'C:\t\shim\terraform.exe' version 2>&1 | tr -d '\r' || true)
  expect_in "path: ... saying so" "$got" "the only terraform found is tfshim itself"
  got=$(WINEPATH='C:\t\loop' win 'C:\t\shim\tfshim.exe' version 2>&1 | tr -d '\r'; echo "rc=${PIPESTATUS[0]}")
  expect_in "path: a terraform.cmd that runs tfshim again is stopped by the recursion guard" "$got" \
    "tfshim has started itself 8 times in a row"
  expect_in "path: ... with exit 1" "$got" "rc=1"
fi

# The seed: a root initialised (by the real terraform, on Linux) with a key given by -backend-config,
# that key deleted in IAM, the new key in %USERPROFILE%\.aws\credentials.
if wanted repair; then
  moto_ensure
  mkdir -p "$tmp/moto"
  moto_start "$tmp/moto" tfstate
  read -r old_id old_secret < <(moto_new_key seed)
  read -r new_id new_secret < <(moto_new_key seed)
  seed=$tmp/seed
  mkdir -p "$seed"
  moto_main_tf tfstate seed/terraform.tfstate >"$seed/main.tf"
  (
    moto_isolated_env "$tmp/linux"
    cd "$seed"
    terraform init -input=false -no-color "-backend-config=access_key=$old_id" \
      "-backend-config=secret_key=$old_secret" >"$tmp/init.log" 2>&1
  ) || die "terraform init of the seed root failed: $(cat "$tmp/init.log")"
  moto_delete_key seed "$old_id"
  mkdir -p "$userprofile/.aws"
  printf '[default]\r\naws_access_key_id = %s\r\naws_secret_access_key = %s\r\n' "$new_id" "$new_secret" \
    >"$userprofile/.aws/credentials"
  secrets=("$old_secret" "$new_id" "$new_secret")

  # A fresh copy of the seed root in C:\t\REL (default: a path with spaces and non-ASCII letters).
  n=0
  fresh_root() {
    n=$((n + 1))
    local rel=${1:-Users/Jörg Müller $n/infra}
    root="$c/t/$rel"
    mkdir -p "$root"
    cp -r "$seed/main.tf" "$seed/.terraform" "$root/"
    winroot="C:\\t\\${rel//\//\\}"
    saved=$root/.terraform/terraform.tfstate
    cp "$saved" "$tmp/before"
    : >"$record"
  }
  # Runs tfshim in the root (Wine maps the working directory to its C:\ path).
  tfshim_in_root() { (cd "$root" && win 'C:\t\shim\tfshim.exe' "$@"); }
  no_secret() {
    local s
    for s in "${secrets[@]}"; do
      if grep -qF -- "$s" "$@"; then bad "$name: no secret in the output" "a key or secret was printed"; return; fi
    done
    ok "$name: no secret in the output"
  }
  leftovers() { # files a repair must not leave behind
    { ls -A "$root/.terraform"; ls -A "$c/users/$(id -un)/AppData/Local/Temp" 2>/dev/null; } |
      grep -v -x -e terraform.tfstate -e tfshim.lock | grep -e tfshim -e tfstate || true
  }
  invariants() { # compares the saved backend before and after: prints what differs, nothing if the
    # repair kept every setting and the hash and removed the keys
    python3 - "$tmp/before" "$saved" <<'EOF'
import json, sys
old, new = (json.load(open(p, encoding="utf-8"))["backend"] for p in sys.argv[1:3])
creds = ("access_key", "secret_key", "token")
def bare(v):  # null and absent are the same to terraform, at any depth
    return {k: bare(x) for k, x in v.items() if x is not None} if isinstance(v, dict) else v
def strip(c): return bare({k: v for k, v in c.items() if k not in creds})
if old["type"] != new["type"]: print("type changed")
if old["hash"] != new["hash"]: print("hash changed")
if strip(old["config"]) != strip(new["config"]): print("settings changed")
if any(new["config"].get(k) is not None for k in creds): print("a credential is still saved")
EOF
  }

  name="repair: the seed's plan"
  fresh_root
  tfshim_in_root plan >"$tmp/stdout" 2>"$tmp/stderr" && rc=0 || rc=$?
  expect "$name: exit 0" "$rc" 0
  expect "$name: stdout is the plan's alone" "$(tr -d '\r' <"$tmp/stdout")" \
    "No changes. Your infrastructure matches the configuration."
  expect_in "$name: says what it did on stderr" "$(cat "$tmp/stderr")" "tfshim:"
  expect "$name: settings and hash kept, keys gone" "$(invariants)" ""
  expect "$name: terraform ran init -reconfigure with a settings file, then plan" \
    "$(grep -v -e '^TFSHIM_RECURSION' -e '^---' "$record" | sed 's/-backend-config=.*/-backend-config=FILE"/' | tr '\n' ' ')" \
    '"init" "-reconfigure" "-input=false" "-backend-config=FILE" "plan" '
  expect "$name: no settings file, backup or temp file left" "$(leftovers)" ""
  no_secret "$tmp/stdout" "$tmp/stderr"

  name="repair: the profile comes from USERPROFILE (HOME unset)"
  fresh_root
  tfshim_in_root shim doctor --json >"$tmp/stdout" 2>"$tmp/stderr" || true
  expect_in "$name" "$(cat "$tmp/stdout")" '"source": "profile default (C:\\users\\'

  name="repair: two runs at once"
  fresh_root
  (cd "$root" && win 'C:\t\shim\tfshim.exe' plan >"$tmp/out1" 2>&1) &
  first=$!
  (cd "$root" && win 'C:\t\shim\tfshim.exe' plan >"$tmp/out2" 2>&1) &
  second=$!
  wait "$first" && rc=0 || rc=$?
  wait "$second" && rc="$rc:0" || rc="$rc:$?"
  expect "$name: both succeed" "$rc" "0:0"
  expect "$name: the lock lets one repair through" "$(grep -c '^"init"$' "$record" || true)" 1
  expect "$name: settings and hash kept, keys gone" "$(invariants)" ""

  name="repair: a root deeper than 260 characters, by -chdir"
  fresh_root "deep/$(printf 'directory-number-%02d/' $(seq 1 16))infra"
  (cd "$c/t" && win 'C:\t\shim\tfshim.exe' "-chdir=$winroot" plan >"$tmp/stdout" 2>"$tmp/stderr") && rc=0 || rc=$?
  expect "$name: exit 0 (path: ${#winroot} characters)" "$rc" 0
  [ "$rc" = 0 ] || cat "$tmp/stderr"
  expect "$name: settings and hash kept, keys gone" "$(invariants)" ""

  name="repair: a failed reconfigure"
  fresh_root
  STANDIN_INIT=fail tfshim_in_root plan >"$tmp/stdout" 2>"$tmp/stderr" && rc=0 || rc=$?
  expect "$name: exit 1" "$rc" 1
  expect "$name: the saved file is back byte for byte" "$(cmp "$tmp/before" "$saved" 2>&1)" ""
  expect_in "$name: terraform's error is shown" "$(cat "$tmp/stderr")" "stand-in failure"
  expect "$name: no settings file, backup or temp file left" "$(leftovers)" ""

  name="repair: a failed reconfigure, the saved file held open by another process"
  fresh_root
  STANDIN_INIT=fail-and-hold STANDIN_HOLD_MS=3500 tfshim_in_root plan >"$tmp/stdout" 2>"$tmp/stderr" && rc=0 || rc=$?
  [ -z "${TFSHIM_TEST_SHOW:-}" ] || cat "$tmp/stderr" >&2
  expect "$name: exit 1" "$rc" 1
  expect "$name: the saved file is back byte for byte" "$(cmp "$tmp/before" "$saved" 2>&1)" ""

  name="repair: Ctrl-C during the reconfigure"
  fresh_root
  got=$(cd "$root" && STANDIN_INIT=ctrlc win_console 'C:\t\shim\tfshim.exe' plan | tr -d '\r'; echo "rc=${PIPESTATUS[0]}")
  expect_in "$name: terraform's init receives it, once" "$(cat "$record")" "ctrl-c received 1"
  expect "$name: the repair is finished and verified" "$(invariants)" ""
  expect "$name: the user's command does not run" "$(grep -c '^"plan"$' "$record" || true)" 0
  expect_in "$name: tfshim exits 130, as after SIGINT on Unix" "$got" "rc=130"
fi

printf '\n%d passed, %d failed\n' "$passed" "${#failures[@]}"
[ "${#failures[@]}" -eq 0 ] || { printf 'failed: %s\n' "${failures[@]}"; exit 1; }
