#!/usr/bin/env bash
# package.sh: packs built tfshim binaries into a release: one archive per target (the binary, README and
# licences), SHA256SUMS, the shell and PowerShell installers (with those checksums written into them),
# a Homebrew formula and a Scoop manifest. The release workflow runs it; so do the local release
# checks (shell/release/check.sh, check-link.sh and check-action.sh), which serve what it packs.
#
#   shell/release/package.sh --version 0.2.0 --repo OWNER/tfshim --out DIR TARGET=BINARY...
#   e.g. x86_64-unknown-linux-musl=target/x86_64-unknown-linux-musl/release/tfshim
#
# Archive names carry the target but not the version (tfshim-x86_64-unknown-linux-musl.tar.gz, …), so
# `releases/latest/download/NAME` always names the newest; each holds one directory of the same name.
# Needs: bash, tar (GNU), gzip, python3 (zip, JSON), sha256sum.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo_root=$(cd "$here/../.." && pwd)

die() { printf 'tfshim package: %s\n' "$*" >&2; exit 1; }

version='' repo='' out=''
bins=()
while [ $# -gt 0 ]; do
  case $1 in
    --version) version=${2:?}; shift ;;
    --repo) repo=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    *=*) bins+=("$1") ;;
    *) die "unknown argument: $1 (see the comment at the top of $0)" ;;
  esac
  shift
done
if [ -z "$version" ] || [ -z "$repo" ] || [ -z "$out" ] || [ ${#bins[@]} = 0 ]; then
  die "usage: package.sh --version V --repo OWNER/NAME --out DIR TARGET=BINARY..."
fi
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || die "--version $version is not a semantic version"
[[ $repo =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "--repo $repo is not OWNER/NAME"

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# Archives that only differ when their content does: fixed owner, order and time.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo_root" log -1 --format=%ct 2>/dev/null || echo 0)}

archives=()
for pair in "${bins[@]}"; do
  target=${pair%%=*} bin=${pair#*=}
  [[ $target =~ ^[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+(-[a-z0-9_]+)?$ ]] || die "$target is not a target triple"
  [ -f "$bin" ] || die "$bin does not exist"
  name=tfshim-$target
  mkdir -p "$stage/$name"
  case $target in
    *windows*) exe=tfshim.exe ;;
    *) exe=tfshim ;;
  esac
  install -m 0755 "$bin" "$stage/$name/$exe"
  install -m 0644 "$repo_root/README.md" "$repo_root/LICENSE-MIT" "$repo_root/LICENSE-APACHE" "$stage/$name/"
  case $target in
    *windows*)
      python3 - "$stage" "$name" "$out/$name.zip" <<'EOF'
import os, sys, zipfile
stage, name, dest = sys.argv[1:]
with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted(os.listdir(os.path.join(stage, name))):
        info = zipfile.ZipInfo(f"{name}/{f}", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16 if f.endswith(".exe") else 0o100644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, open(os.path.join(stage, name, f), "rb").read())
EOF
      archives+=("$name.zip") ;;
    *)
      tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        -C "$stage" -cf - "$name" | gzip -9n >"$out/$name.tar.gz"
      archives+=("$name.tar.gz") ;;
  esac
done

(cd "$out" && sha256sum "${archives[@]}") >"$out/SHA256SUMS"
sums=$(cat "$out/SHA256SUMS")

# The installers: the release's version, repository and checksums are written into them, so an
# installer from GitHub verifies archives fetched from anywhere (a mirror: TFSHIM_DOWNLOAD_URL).
fill() { # template, destination
  python3 - "$1" "$2" "$version" "$repo" "$sums" <<'EOF'
import sys
src, dest, version, repo, sums = sys.argv[1:]
text = open(src).read()
for key, value in (("@VERSION@", version), ("@REPO@", repo), ("@SHA256SUMS@", sums)):
    assert key in text, f"{src} has no {key}"
    text = text.replace(key, value)
open(dest, "w", newline="").write(text)
EOF
}
fill "$here/installer.sh" "$out/tfshim-installer.sh"
fill "$here/installer.ps1" "$out/tfshim-installer.ps1"
chmod 0755 "$out/tfshim-installer.sh"

# Homebrew formula and Scoop manifest, for the targets this release has.
python3 - "$out" "$version" "$repo" <<'EOF'
import json, os, sys
out, version, repo = sys.argv[1:]
sums = dict(reversed(line.split()) for line in open(os.path.join(out, "SHA256SUMS")))
base = f"https://github.com/{repo}/releases/download/v{version}"
desc = "A drop-in terraform that heals S3 backends whose saved access key was rotated away"

def block(target, indent):
    name = f"tfshim-{target}.tar.gz"
    if name not in sums:
        return None
    pad = " " * indent
    return f'{pad}url "{base}/{name}"\n{pad}sha256 "{sums[name]}"\n'

parts = []
for os_name, arches in (("macos", (("arm", "aarch64-apple-darwin"), ("intel", "x86_64-apple-darwin"))),
                        ("linux", (("arm", "aarch64-unknown-linux-musl"), ("intel", "x86_64-unknown-linux-musl")))):
    inner = [f"    on_{arch} do\n{b}    end\n" for arch, t in arches if (b := block(t, 6))]
    if inner:
        parts.append(f"  on_{os_name} do\n{''.join(inner)}  end\n")
formula = f'''# Generated by shell/release/package.sh for tfshim {version}; do not edit.
class Tfshim < Formula
  desc "{desc}"
  homepage "https://github.com/{repo}"
  version "{version}"
  license any_of: ["MIT", "Apache-2.0"]

{"".join(parts)}
  def install
    bin.install "tfshim"
  end

  def caveats
    <<~EOS
      To run tfshim as `terraform`, source the shell script for your shell from the README, or
      put a link named terraform first on PATH:
        ln -s #{{opt_bin}}/tfshim /some/dir/first/on/PATH/terraform
    EOS
  end

  test do
    assert_match version.to_s, shell_output("#{{bin}}/tfshim shim version")
  end
end
'''
open(os.path.join(out, "tfshim.rb"), "w").write(formula)

win = "tfshim-x86_64-pc-windows-msvc.zip"
if win in sums:
    manifest = {
        "version": version,
        "description": desc,
        "homepage": f"https://github.com/{repo}",
        "license": "MIT|Apache-2.0",
        "architecture": {"64bit": {"url": f"{base}/{win}", "hash": sums[win],
                                   "extract_dir": "tfshim-x86_64-pc-windows-msvc"}},
        "bin": "tfshim.exe",
        "checkver": "github",
        "autoupdate": {"architecture": {"64bit": {
            "url": f"https://github.com/{repo}/releases/download/v$version/{win}",
            "hash": {"url": "$baseurl/SHA256SUMS"}}}},
    }
    json.dump(manifest, open(os.path.join(out, "tfshim.json"), "w"), indent=2)
EOF
ls -1 "$out"
