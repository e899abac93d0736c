#!/usr/bin/env bash
# bench.sh: tfshim's own cost, side by side with the floor and the alternatives, in one run.
#
#   shell/bench.sh            # prints a Markdown table (medians, ratios) and the raw hyperfine JSON dir
#   BENCH_RUNS=50 shell/bench.sh
#
# Rows:
#   own overhead     a null `terraform` (a C program that exits at once) run directly, through a bash
#                    `exec "$REAL" "$@"` wrapper, and through tfshim (`version`, found on PATH): tfshim's
#                    cost isolated from terraform's own start-up.
#   preflight alone  tfshim in front of the null terraform: pass-through, `plan` in a root without a
#                    saved key, `plan` in a root with a valid saved key (STS requests counted on moto).
#   no saved key     `plan` in a root whose backend holds no key: terraform vs tfshim.
#   valid saved key  the same with a key saved by `init -backend-config`.
#   repair           `tfshim plan` in a root whose saved key was rotated away vs the manual fix,
#                    `terraform init -reconfigure -backend-config=FILE && terraform plan`.
# Also: peak RSS of tfshim before exec (GNU time, with the null terraform) and the release binary size.
# Needs: cargo, cc, terraform, python3, curl, hyperfine (installed from Debian's packages if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${BENCH_RUNS:-30}

[ -x /usr/bin/time ] || { [ "$(id -u)" = 0 ] && apt-get install -y -qq time >/dev/null; } || true
command -v terraform >/dev/null || { echo "tfshim bench: terraform is not on PATH" >&2; exit 1; }

cargo build --release --locked -q
tfshim=$repo/target/release/tfshim

# shellcheck source=moto-lib.sh
. "$repo/shell/moto-lib.sh"
moto_ensure
ensure_hyperfine bench
dir=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-bench.XXXXXX")
trap 'moto_cleanup; rm -rf "$dir"' EXIT
out=$dir/results
mkdir -p "$out" "$dir/nullbin" "$dir/home/.aws"

printf 'int main(void) { return 0; }\n' >"$dir/null.c"
cc -O2 -o "$dir/nullbin/terraform" "$dir/null.c"
null=$dir/nullbin/terraform
printf '#!/bin/bash\nexec "$REAL" "$@"\n' >"$dir/wrapper"
chmod +x "$dir/wrapper"
# The floor of any exec-based proxy: a C program that only execs the null terraform.
printf '#include <unistd.h>\nint main(int c, char **v) { (void)c; execv("%s", v); return 127; }\n' "$null" >"$dir/cwrap.c"
cc -O2 -o "$dir/cwrap" "$dir/cwrap.c"

moto_start "$dir" tfstate
read -r nokey_id nokey_secret < <(moto_new_key bench)
read -r saved_id saved_secret < <(moto_new_key bench-saved)
read -r stale_id stale_secret < <(moto_new_key bench-stale)

moto_isolated_env "$dir"
moto_credentials "$nokey_id" "$nokey_secret"

mkroot() { # name, init args…
  local root=$dir/$1; shift
  mkdir -p "$root"
  moto_main_tf tfstate "$(basename "$root")/terraform.tfstate" >"$root/main.tf"
  (cd "$root" && terraform init -input=false -no-color "$@" >/dev/null)
}
mkroot nokey
mkroot key -backend-config="access_key=$saved_id" -backend-config="secret_key=$saved_secret"
mkroot stale -backend-config="access_key=$stale_id" -backend-config="secret_key=$stale_secret"
moto_delete_key bench-stale "$stale_id"
cp "$dir/stale/.terraform/terraform.tfstate" "$dir/stale.saved"
# The manual fix's settings file: what tfshim would preserve (every set, non-credential attribute).
"$moto_python" - "$dir/stale.saved" >"$dir/preserved.json" <<'EOF'
import json, sys
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items() if x is not None}
    return v
cfg = json.load(open(sys.argv[1]))["backend"]["config"]
print(json.dumps({k: clean(v) for k, v in cfg.items() if v is not None and k not in ("access_key", "secret_key", "token")}))
EOF
restore_stale="cp '$dir/stale.saved' '$dir/stale/.terraform/terraform.tfstate'"

hf() { # name, runs, hyperfine args…
  local name=$1 n=$2; shift 2
  hyperfine --style none --warmup 5 --runs "$n" --export-json "$out/$name.json" "$@" >/dev/null
}

echo "tfshim bench: own overhead" >&2
# Millisecond-scale commands on a shared 2-core machine are noisy: many runs, medians.
PATH="$dir/nullbin:$PATH" REAL=$null hf overhead $((runs * 10)) -N \
  -n "null terraform, direct" "$null version" \
  -n "C exec wrapper (floor of any exec proxy)" "$dir/cwrap version" \
  -n "bash exec wrapper" "$dir/wrapper version" \
  -n "tfshim (pass-through)" "$tfshim version"

echo "tfshim bench: the preflight alone (tfshim in front of the null terraform)" >&2
TFSHIM_TERRAFORM=$null hf preflight $((runs * 5)) -N \
  -n "tfshim version (pass-through)" "$tfshim version" \
  -n "tfshim plan, no saved key (reads the saved backend)" "$tfshim -chdir=$dir/nokey plan" \
  -n "tfshim plan, valid saved key (one STS call)" "$tfshim -chdir=$dir/key plan"

echo "tfshim bench: plan with the real terraform, no saved key" >&2
(cd "$dir/nokey" && hf nokey "$runs" -N \
  -n "terraform plan" "terraform plan -input=false -no-color" \
  -n "tfshim plan" "$tfshim plan -input=false -no-color")

echo "tfshim bench: plan with the real terraform, valid saved key" >&2
(cd "$dir/key" && hf key "$runs" -N \
  -n "terraform plan" "terraform plan -input=false -no-color" \
  -n "tfshim plan" "$tfshim plan -input=false -no-color")

# STS requests of one preflight: moto logs each request; with the null terraform only tfshim sends any.
count_requests() { # root
  local log=$dir/moto-${MOTO_AUTH##*:}.log before after
  before=$(grep -c 'POST / ' "$log" || true)
  (cd "$dir/$1" && TFSHIM_TERRAFORM=$null "$tfshim" plan >/dev/null)
  sleep 0.2
  after=$(grep -c 'POST / ' "$log" || true)
  echo $((after - before))
}
sts_nokey=$(count_requests nokey)
sts_key=$(count_requests key)

echo "tfshim bench: repair" >&2
(cd "$dir/stale" && hf repair "$runs" \
  -n "manual fix: init -reconfigure -backend-config=FILE && plan" \
  --prepare "$restore_stale" \
  "terraform init -reconfigure -input=false -no-color -backend-config=$dir/preserved.json >/dev/null && terraform plan -input=false -no-color" \
  -n "tfshim plan (detects, repairs, plans)" \
  --prepare "$restore_stale" \
  "$tfshim plan -input=false -no-color")

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n1; }
rss_pass=$(cd "$dir/nokey" && TFSHIM_TERRAFORM=$null rss "$tfshim" version)
rss_check=$(cd "$dir/key" && TFSHIM_TERRAFORM=$null rss "$tfshim" plan)
size=$(stat -c %s "$tfshim")

"$moto_python" - "$out" "$sts_nokey" "$sts_key" "$rss_pass" "$rss_check" "$size" <<'EOF'
import json, os, sys
out, sts_nokey, sts_key, rss_pass, rss_check, size = sys.argv[1:]
def load(name):
    return [(r["command"], r["median"] * 1000, r["mean"] * 1000, r["stddev"] * 1000)
            for r in json.load(open(os.path.join(out, name + ".json")))["results"]]
print("| group | command | median ms | mean ± sd ms | vs first row |")
print("|---|---|---:|---:|---:|")
for group, name in [("own overhead", "overhead"), ("preflight alone", "preflight"),
                    ("no saved key", "nokey"), ("valid saved key", "key"), ("repair", "repair")]:
    rows = load(name)
    base = rows[0][1]
    for cmd, med, mean, sd in rows:
        delta = med - base
        print(f"| {group} | {cmd} | {med:.2f} | {mean:.2f} ± {sd:.2f} | {med / base:.2f}× ({delta:+.2f} ms) |")
print()
print(f"STS requests by one tfshim preflight: no saved key {sts_nokey}, valid saved key {sts_key}")
print(f"peak RSS of tfshim before exec: pass-through {int(rss_pass) / 1024:.1f} MiB, "
      f"with an STS check {int(rss_check) / 1024:.1f} MiB")
print(f"release binary: {int(size) / 1e6:.1f} MB")
EOF
