#!/usr/bin/env bash
# check-action.sh: the GitHub Action (action.yml) run here, for real, against releases served on
# 127.0.0.1 (issue #22): a pinned Action installs its own release, never the newest; `latest` only when
# asked; a mode tfshim does not know fails the step with an error annotation before anything is
# installed; the report path is one absolute file for the whole job. shell/release/check.sh calls it;
# it also runs alone, with any Linux build of tfshim:
#
#   shell/release/check-action.sh BINARY        # e.g. target/debug/tfshim
#
# Two releases of example/tfshim are packed (shell/release/package.sh): this version (Cargo.toml's)
# with BINARY, and a newer one (the next major) whose "tfshim" is a stand-in that prints its version,
# so which one was installed shows. A small server plays github.com: /OWNER/REPO/releases/latest
# redirects to the newest tag, as GitHub's does, and /releases/download/… serves the files. The
# Action's steps run under shell/release/run-action.py (bash steps with the runner's flags, the
# simulated GitHub context, GITHUB_OUTPUT/ENV/PATH), with a `curl` in front on PATH that sends
# https://github.com/… to that server (nothing else is changed). Prints one line per check.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
bin=${1:?usage: shell/release/check-action.sh BINARY}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'action check: ok    %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'action check: FAIL  %s\n' "$*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-action-check.XXXXXX")
server=''
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
newer=$((${version%%.*} + 1)).0.0
target=$(uname -m)-unknown-linux-musl
releases=$tmp/www/example/tfshim/releases
shell/release/package.sh --version "$version" --repo example/tfshim \
  --out "$releases/download/v$version" "$target=$bin" >/dev/null
printf '#!/bin/sh\necho "tfshim %s"\n' "$newer" >"$tmp/newer-tfshim"
chmod +x "$tmp/newer-tfshim"
shell/release/package.sh --version "$newer" --repo example/tfshim \
  --out "$releases/download/v$newer" "$target=$tmp/newer-tfshim" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$tmp/www" "$port" "$newer" >"$tmp/http.log" 2>&1 <<'EOF' &
import functools, http.server, sys
root, port, newest = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Handler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):
        if self.path.endswith("/releases/latest"):  # GitHub answers with a redirect to the tag
            self.send_response(302)
            self.send_header("Location", self.path.rsplit("/", 1)[0] + "/tag/v" + newest)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if "/releases/tag/" in self.path:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().send_head()
http.server.ThreadingHTTPServer(("127.0.0.1", port),
    functools.partial(Handler, directory=root)).serve_forever()
EOF
server=$!
url=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf -o /dev/null "$url/example/tfshim/releases/download/v$version/SHA256SUMS" && break; sleep 0.1; done

# The stand-in for the network: the real curl, with github.com's address replaced by the server's.
mkdir -p "$tmp/net"
real_curl=$(command -v curl)
cat >"$tmp/net/curl" <<EOF
#!/usr/bin/env bash
args=()
for a in "\$@"; do
  case \$a in https://github.com/*) a=$url/\${a#https://github.com/} ;; esac
  args+=("\$a")
done
exec '$real_curl' "\${args[@]}"
EOF
chmod +x "$tmp/net/curl"

# run NAME REF ACTION_DIR INPUT=VALUE…: the Action, as `uses: example/tfshim@REF` from a workflow of
# someone/infra (no REF: `uses: ./` in example/tfshim's own workflow, as action-test.yml does), in a fresh runner (its own temp, tool cache and workspace). Sets $out (all it printed), $rc, $state
# (the outputs and what it left for later steps, as JSON) and $cache (the tool cache).
run() {
  local name=$1 ref=$2 dir=$3
  shift 3
  local r=$tmp/runner-$name
  mkdir -p "$r/temp" "$r/cache" "$r/work"
  cache=$r/cache state=$r/state.json rc=0
  local workflow_repo=someone/infra
  [ -n "$ref" ] || workflow_repo=example/tfshim
  out=$(env -i HOME="$r" PATH="$tmp/net:/usr/bin:/bin" RUNNER_OS=Linux RUNNER_ARCH=X64 \
    RUNNER_TEMP="$r/temp" RUNNER_TOOL_CACHE="$r/cache" GITHUB_WORKSPACE="$r/work" \
    GITHUB_REPOSITORY="$workflow_repo" \
    GITHUB_ACTION_REPOSITORY="${ref:+example/tfshim}" \
    GITHUB_ACTION_REF="$ref" GITHUB_ACTIONS=true \
    python3 "$repo/shell/release/run-action.py" "$dir" "$state" "$@" 2>&1) || rc=$?
}
get() { python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, s))' "$state" "$1"; }
show() { printf '%s\n' "$out" | sed 's/^/    /'; }
# installed VERSION: the Action succeeded, said VERSION, and the `terraform` it put on PATH is that
# release's tfshim.
installed() {
  local want=$1 dir
  [ "$rc" = 0 ] || return 1
  [ "$(get 'outputs["version"]')" = "$want" ] || return 1
  dir=$(get 'path[-1]')
  [ "$(env -i PATH="$dir:/usr/bin:/bin" TFSHIM_MODE=off terraform shim version 2>/dev/null | head -n1)" = "tfshim $want" ]
}

sha=$(git rev-parse HEAD 2>/dev/null || echo 0123456789abcdef0123456789abcdef01234567)
for pin in "v$version:a release tag" "v${version%%.*}:a major tag (v1)" "$sha:a commit SHA" \
  "main:a branch" ":uses: ./ (no ref)"; do
  ref=${pin%%:*} what=${pin#*:}
  run "pin-${ref:-local}" "$ref" "$repo"
  if installed "$version"; then
    ok "pinned to $what, the default version is the Action's own release ($version), not the newest ($newer)"
  else
    bad "pinned to $what: did not install $version (exit $rc, version output '$(get 'outputs["version"]' 2>/dev/null)')"; show
  fi
done

run latest "v$version" "$repo" version=latest
if installed "$newer"; then
  ok "version: latest installs the newest release ($newer) even from a pinned Action"
else
  bad "version: latest did not install $newer (exit $rc)"; show
fi
run explicit "v$newer" "$repo" version="v$version"
if installed "$version"; then ok "an explicit version (v$version) wins over the Action's ref"; else bad "an explicit version (exit $rc)"; show; fi

# A commit whose Cargo.toml names a version with no release yet: one error annotation, nothing installed.
mkdir -p "$tmp/unreleased"
cp action.yml "$tmp/unreleased/"
printf '[package]\nname = "tfshim"\nversion = "%s"\n' "$((${version%%.*} + 2)).0.0" >"$tmp/unreleased/Cargo.toml"
run unreleased main "$tmp/unreleased"
if [ "$rc" != 0 ] && grep -q '^::error title=tfshim::could not download tfshim' <<<"$out" &&
  [ -z "$(find "$cache" -name tfshim -type f)" ]; then
  ok "a ref whose version has no release fails with an error annotation, installing nothing"
else
  bad "a ref whose version has no release (exit $rc)"; show
fi
run mismatch "v9.8.7" "$repo"
if [ "$rc" != 0 ] && grep -q '^::error title=tfshim::.*Cargo.toml says' <<<"$out"; then
  ok "a release tag that disagrees with the Action's Cargo.toml fails with an error annotation"
else
  bad "a release tag that disagrees with Cargo.toml (exit $rc)"; show
fi

for mode in wran Warn-ing 'fix;off' 'w arn'; do
  run "mode-bad" "v$version" "$repo" mode="$mode"
  if [ "$rc" != 0 ] && [ "$(grep -c '^::error title=tfshim::mode' <<<"$out")" = 1 ] &&
    [ -z "$(find "$cache" -mindepth 1 -print -quit)" ] && [ "$(get 'env.get("TFSHIM_MODE", "")')" = '' ]; then
    ok "mode: '$mode' fails the step with one error annotation, before anything is installed"
  else
    bad "mode: '$mode' was not refused with an ::error:: annotation (exit $rc)"; show
  fi
  rm -rf "$tmp/runner-mode-bad"
done
for mode in Warn OFF ' fix '; do
  run "mode-ok" "v$version" "$repo" mode="$mode"
  want=$(printf '%s' "$mode" | tr -d ' ' | tr '[:upper:]' '[:lower:]') # the test's values: spaces only at the ends
  if [ "$rc" = 0 ] && [ "$(get 'env.get("TFSHIM_MODE")')" = "$want" ]; then
    ok "mode: '$mode' is accepted and passed on as TFSHIM_MODE=$want"
  else
    bad "mode: '$mode' (exit $rc, TFSHIM_MODE '$(get 'env.get("TFSHIM_MODE")' 2>/dev/null)')"; show
  fi
  rm -rf "$tmp/runner-mode-ok"
done

run report "v$version" "$repo" report=reports/tfshim.jsonl
abs=$tmp/runner-report/work/reports/tfshim.jsonl
if [ "$rc" = 0 ] && [ "$(get 'outputs["report"]')" = "$abs" ] && [ "$(get 'env["TFSHIM_REPORT"]')" = "$abs" ]; then
  ok "report: a relative path becomes one absolute file (the workspace's) for every later step"
else
  bad "report: relative path (exit $rc, output '$(get 'outputs["report"]' 2>/dev/null)')"; show
fi
run no-report "v$version" "$repo"
if [ "$rc" = 0 ] && [ "$(get 'outputs["report"]')" = '' ] && [ "$(get '"TFSHIM_REPORT" in env')" = False ]; then
  ok "report: none asked for, none set"
else
  bad "report: none asked for (exit $rc)"; show
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
