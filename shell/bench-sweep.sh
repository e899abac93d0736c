#!/usr/bin/env bash
# bench-sweep.sh: how long `tfshim shim sweep` takes over a big tree, and how many STS requests it sends.
#
#   shell/bench-sweep.sh                          # 500 roots sharing 5 keys, 2 of them rotated away
#   SWEEP_ROOTS=2000 SWEEP_KEYS=20 BENCH_RUNS=10 shell/bench-sweep.sh
#
# The tree is generated, not initialised root by root: one real `terraform init -backend-config=…` per
# key makes a template `.terraform/terraform.tfstate`, and each root gets a copy of its key's template
# (and a main.tf). Then 2 of the keys are rotated (new key created, old one deleted; the first new one
# becomes the default profile), so the sweep sees rejected keys and checks the fallback credentials
# once. The sweep runs without --fix: it reads every saved backend and asks STS once per distinct key.
# Needs: cargo, terraform, python3, curl, hyperfine (installed from Debian's packages if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${BENCH_RUNS:-20}
roots=${SWEEP_ROOTS:-500}
keys=${SWEEP_KEYS:-5}
rotated=$((keys < 2 ? keys : 2))

command -v terraform >/dev/null || { echo "tfshim bench-sweep: terraform is not on PATH" >&2; exit 1; }

cargo build --release --locked -q
tfshim=$repo/target/release/tfshim

# shellcheck source=moto-lib.sh
. "$repo/shell/moto-lib.sh"
moto_ensure
ensure_hyperfine bench-sweep
dir=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-bench-sweep.XXXXXX")
trap 'moto_cleanup; rm -rf "$dir"' EXIT
mkdir -p "$dir/home/.aws" "$dir/templates" "$dir/tree"
moto_start "$dir" tfstate

moto_isolated_env "$dir"

echo "tfshim bench-sweep: $keys template roots (one terraform init each)" >&2
ids=()
for k in $(seq 1 "$keys"); do
  read -r id secret < <(moto_new_key "sweep-k$k")
  ids+=("$id")
  t=$dir/templates/k$k
  mkdir -p "$t"
  moto_main_tf tfstate "templates/k$k/terraform.tfstate" >"$t/main.tf"
  (cd "$t" && terraform init -input=false -no-color \
    -backend-config="access_key=$id" -backend-config="secret_key=$secret" >/dev/null)
done

echo "tfshim bench-sweep: $roots roots" >&2
for i in $(seq 1 "$roots"); do
  k=$(((i - 1) % keys + 1))
  r=$dir/tree/team-$((i % 10))/stack-$i
  mkdir -p "$r/.terraform"
  cp "$dir/templates/k$k/main.tf" "$r/main.tf"
  cp "$dir/templates/k$k/.terraform/terraform.tfstate" "$r/.terraform/terraform.tfstate"
done

for k in $(seq 1 "$rotated"); do
  read -r id secret < <(moto_new_key "sweep-k$k")
  moto_delete_key "sweep-k$k" "${ids[$((k - 1))]}"
  if [ "$k" = 1 ]; then
    moto_credentials "$id" "$secret"
  fi
done

# STS requests of one sweep, counted in moto's request log (only the sweep talks to moto meanwhile).
log=$dir/moto-${MOTO_AUTH##*:}.log
before=$(grep -c 'POST / ' "$log" || true)
code=0
"$tfshim" shim sweep --json "$dir/tree" >"$dir/report.json" || code=$?
sleep 0.2
after=$(grep -c 'POST / ' "$log" || true)

echo "tfshim bench-sweep: timing" >&2
# Exit code 3 (repairs due) is the expected answer, hence -i.
hyperfine --style none -i --warmup 2 --runs "$runs" --export-json "$dir/sweep.json" \
  -n "sweep --jobs 4 (default)" "$tfshim shim sweep $dir/tree" \
  -n "sweep --jobs 1" "$tfshim shim sweep --jobs 1 $dir/tree" >/dev/null

"$moto_python" - "$dir" "$roots" "$keys" "$rotated" "$((after - before))" "$code" <<'EOF'
import json, os, sys
d, roots, keys, rotated, requests, code = sys.argv[1:]
report = json.load(open(os.path.join(d, "report.json")))
s = report["summary"]
print(f"tree: {roots} roots, {keys} keys ({rotated} rotated away); sweep exit {code}; "
      f"{s['rejected']} rejected, {s['valid']} valid; keys_checked {report['keys_checked']}, "
      f"fallbacks_checked {report['fallbacks_checked']}; STS requests (moto log) {requests}")
print("| command | median ms | mean ± sd ms | min ms |")
print("|---|---:|---:|---:|")
for r in json.load(open(os.path.join(d, "sweep.json")))["results"]:
    print(f"| {r['command']} | {r['median'] * 1000:.1f} | {r['mean'] * 1000:.1f} ± {r['stddev'] * 1000:.1f} "
          f"| {r['min'] * 1000:.1f} |")
EOF
