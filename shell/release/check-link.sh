#!/usr/bin/env bash
# check-link.sh: the installers' `--link DIR` never removes a terraform that is not a link to tfshim
# (issue #20, item 9: `--force` used to `rm -f` a real terraform in DIR). shell/release/check.sh
# calls it; it also runs alone, with any Linux build of tfshim (cheap: no release build needed):
#
#   shell/release/check-link.sh BINARY        # e.g. target/debug/tfshim
#
# The release installer (shell/release/installer.sh, packed by package.sh, served on 127.0.0.1, run as
# `curl … | sh` into a fresh HOME) and shell/install.sh (with a stand-in `cargo` that "installs" BINARY,
# so no build runs) each meet, in DIR: a real terraform (a file), a link to a terraform elsewhere, a
# link to another tfshim, nothing. Each is run with and without --force, and the advice each refusal
# gives (another DIR) is followed verbatim. Prints one line per check and "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
bin=${1:?usage: shell/release/check-link.sh BINARY}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'link check: ok    %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'link check: FAIL  %s\n' "$*"; }
show() { printf '%s\n' "$out" | sed 's/^/    /'; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-link-check.XXXXXX")
server=''
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
target=$(uname -m)-unknown-linux-musl
shell/release/package.sh --version "$version" --repo example/tfshim --out "$tmp/www" \
  "$target=$bin" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" "$port" >"$tmp/http.log" 2>&1 &
server=$!
url=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf -o /dev/null "$url/SHA256SUMS" && break; sleep 0.1; done

# A stand-in cargo for shell/install.sh: `cargo install` puts BINARY where cargo would.
mkdir -p "$tmp/fake-cargo"
cat >"$tmp/fake-cargo/cargo" <<EOF
#!/bin/sh
mkdir -p "\$CARGO_HOME/bin" && cp '$bin' "\$CARGO_HOME/bin/tfshim"
EOF
chmod +x "$tmp/fake-cargo/cargo"

# run_installer KIND HOME ARGS…: the release installer (curl | sh) or shell/install.sh, in a clean
# environment with HOME; output in $out, exit code in $rc; $tfshim is where it installs tfshim.
run_installer() {
  local kind=$1 home=$2
  shift 2
  rc=0
  if [ "$kind" = release ]; then
    tfshim=$home/.local/bin/tfshim
    out=$(curl -fsSL "$url/tfshim-installer.sh" |
      env -i HOME="$home" PATH=/usr/bin:/bin TFSHIM_DOWNLOAD_URL="$url" sh -s -- "$@" 2>&1) || rc=$?
  else
    tfshim=$home/.cargo/bin/tfshim
    out=$(env -i HOME="$home" CARGO_HOME="$home/.cargo" PATH="$tmp/fake-cargo:/usr/bin:/bin" \
      sh "$repo/shell/install.sh" "$@" 2>&1) || rc=$?
  fi
}

n=0
for kind in release install.sh; do
  for force in '' --force; do
    # A real terraform in DIR: a file (its bytes are checked), and a link to one elsewhere.
    for what in file link; do
      n=$((n + 1))
      home=$tmp/home-$n
      mkdir -p "$home/bin" "$home/elsewhere"
      printf '#!/bin/sh\necho real terraform\n' >"$home/elsewhere/terraform"
      chmod +x "$home/elsewhere/terraform"
      if [ "$what" = file ]; then
        cp "$home/elsewhere/terraform" "$home/bin/terraform"
      else
        ln -s "$home/elsewhere/terraform" "$home/bin/terraform"
      fi
      name="$kind --link DIR ${force:+--force }with a real terraform in DIR ($what)"
      run_installer "$kind" "$home" --link "$home/bin" $force
      if [ "$rc" = 0 ]; then
        bad "$name: exit 0"
      elif [ "$what" = file ] && { [ -L "$home/bin/terraform" ] ||
        ! cmp -s "$home/bin/terraform" "$home/elsewhere/terraform"; }; then
        bad "$name: the real terraform was removed or changed"
      elif [ "$what" = link ] && [ "$(readlink "$home/bin/terraform")" != "$home/elsewhere/terraform" ]; then
        bad "$name: the link to the real terraform was replaced"
      elif ! grep -q "left as it is" <<<"$out" || grep -q "use --force" <<<"$out"; then
        bad "$name: the refusal does not say it is left alone, or suggests --force"
      else
        # The advice, followed verbatim: the DIR it names, first on PATH, runs the real terraform
        # through tfshim.
        other=$(sed -n 's/.*rerun with --link "\([^"]*\)".*/\1/p' <<<"$out")
        if [ -z "$other" ]; then
          bad "$name: names no other directory"
        else
          run_installer "$kind" "$home" --link "$other"
          if [ "$rc" != 0 ] || [ "$(readlink "$other/terraform")" != "$tfshim" ]; then
            bad "$name: following the advice (--link \"$other\") did not link tfshim"
          elif [ "$(env -i HOME="$home" PATH="$other:$home/bin:/usr/bin:/bin" TFSHIM_MODE=off terraform version)" != "real terraform" ]; then
            bad "$name: the suggested DIR's terraform does not run the real one"
          else
            ok "$name: refused, left as it is, and the suggested DIR works"
            continue
          fi
        fi
      fi
      show
    done
    # A link to another tfshim: replaced only with --force.
    n=$((n + 1))
    home=$tmp/home-$n
    mkdir -p "$home/bin" "$home/old"
    cp "$bin" "$home/old/tfshim"
    ln -s "$home/old/tfshim" "$home/bin/terraform"
    name="$kind --link DIR ${force:+--force }with a link to another tfshim in DIR"
    run_installer "$kind" "$home" --link "$home/bin" $force
    now=$(readlink "$home/bin/terraform")
    if [ -n "$force" ] && { [ "$rc" != 0 ] || [ "$now" != "$tfshim" ]; }; then
      bad "$name: not replaced (exit $rc, -> $now)"; show
    elif [ -z "$force" ] && { [ "$rc" = 0 ] || [ "$now" != "$home/old/tfshim" ] || ! grep -q -- --force <<<"$out"; }; then
      bad "$name: replaced without --force, or --force not named (exit $rc, -> $now)"; show
    elif [ ! -f "$home/old/tfshim" ]; then
      bad "$name: the other tfshim's binary was removed"
    else
      if [ -n "$force" ]; then ok "$name: replaced"; else ok "$name: refused, naming --force"; fi
    fi
  done
  # Nothing in DIR: linked; a second run keeps the link.
  n=$((n + 1))
  home=$tmp/home-$n
  run_installer "$kind" "$home" --link "$home/bin"
  rc1=$rc
  run_installer "$kind" "$home" --link "$home/bin" --force
  if [ "$rc1" = 0 ] && [ "$rc" = 0 ] && [ "$(readlink "$home/bin/terraform")" = "$tfshim" ]; then
    ok "$kind --link DIR with nothing in DIR links tfshim; a second run keeps the link"
  else
    bad "$kind --link DIR with nothing in DIR (exits $rc1, $rc)"; show
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
