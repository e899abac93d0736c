#!/usr/bin/env bash
# bench.sh: tfshim's own cost, side by side with the floor and the alternatives, in one run.
#
#   shell/bench.sh            # prints a Markdown table (medians, ratios) and the raw hyperfine JSON dir
#   BENCH_RUNS=50 shell/bench.sh
#
# Every variant tfshim ships is measured: the default `cargo build --release` (what `cargo install`
# makes) and the static musl binary of the releases (shell/build-release.sh; left out, and said so,
# where it cannot be built).
# Rows:
#   own overhead     a null `terraform` (a C program that exits at once) run directly, through a static
#                    C program that only execs it (the floor of any exec proxy), through a bash
#                    `exec "$REAL" "$@"` wrapper, and through each tfshim (`version`, found on PATH):
#                    each one's cost over the null binary and its ratio to the bash wrapper's.
#   preflight alone  each tfshim in front of the null terraform: pass-through, `plan` in a root without
#                    a saved key, `plan` in a root with a valid saved key (STS requests counted on moto).
#   no saved key     `plan` in a root whose backend holds no key: terraform vs each tfshim.
#   valid saved key  the same with a key saved by `init -backend-config`.
#   repair           each tfshim's `plan` in a root whose saved key was rotated away vs the manual fix,
#                    `terraform init -reconfigure -backend-config=FILE && terraform plan`.
# Also: peak RSS of tfshim before exec (GNU time, with the null terraform) and the binaries' sizes.
# Needs: cargo, cc, terraform, python3, curl, hyperfine (installed from Debian's packages if missing);
# the static build's Debian packages (installed by build-release.sh as root).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${BENCH_RUNS:-30}

. shell/lib/apt.sh
[ -x /usr/bin/time ] || apt_ensure bench time || true
command -v terraform >/dev/null || { echo "tfshim bench: terraform is not on PATH" >&2; exit 1; }

cargo build --release --locked -q
tfshim=$repo/target/release/tfshim
# name:path of every tfshim measured; the first is the one the real-terraform rows compare.
variants=("default build:$tfshim")
if static=$(shell/build-release.sh 2>"${TMPDIR:-/tmp}/tfshim-bench-build.log" | tail -n1) && [ -x "$static" ]; then
  variants=("static musl build:$static" "${variants[@]}")
else
  echo "tfshim bench: no static build (see ${TMPDIR:-/tmp}/tfshim-bench-build.log); measuring the default build only" >&2
fi

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
# The floor of any exec-based proxy: a static C program that only execs the null terraform (musl's
# start-up when musl-gcc is there, as tfshim's static build; else glibc's).
printf '#include <unistd.h>\nint main(int c, char **v) { (void)c; execv("%s", v); return 127; }\n' "$null" >"$dir/cwrap.c"
if command -v musl-gcc >/dev/null; then cwrap_cc="musl-gcc"; else cwrap_cc="cc"; fi
$cwrap_cc -O2 -static -o "$dir/cwrap" "$dir/cwrap.c"

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

# hyperfine arguments running COMMAND (with {} for the binary) once per variant.
each() { # label, command with {}
  local v
  for v in "${variants[@]}"; do
    printf '%s\0%s\0' "-n" "tfshim ${v%%:*}, $1"
    printf '%s\0' "${2//\{\}/${v#*:}}"
  done
}
with_each() { # label, command with {} → hyperfine args in the array `args`
  mapfile -d '' -t args < <(each "$@")
}

echo "tfshim bench: own overhead" >&2
# Millisecond-scale commands on a shared 2-core machine are noisy: many runs, interleaved, medians.
with_each "pass-through" "{} version"
PATH="$dir/nullbin:$PATH" REAL=$null hf overhead $((runs * 10)) -N \
  -n "null terraform, direct" "$null version" \
  -n "static C exec wrapper ($cwrap_cc; the floor of any exec proxy)" "$dir/cwrap version" \
  -n "bash exec wrapper" "$dir/wrapper version" \
  "${args[@]}"

echo "tfshim bench: the preflight alone (tfshim in front of the null terraform)" >&2
with_each "version (pass-through)" "{} version"
pre=("${args[@]}")
with_each "plan, no saved key (reads the saved backend)" "{} -chdir=$dir/nokey plan"
pre+=("${args[@]}")
with_each "plan, valid saved key (one STS call)" "{} -chdir=$dir/key plan"
pre+=("${args[@]}")
TFSHIM_TERRAFORM=$null hf preflight $((runs * 5)) -N "${pre[@]}"

echo "tfshim bench: plan with the real terraform, no saved key" >&2
with_each "plan" "{} plan -input=false -no-color"
(cd "$dir/nokey" && hf nokey "$runs" -N \
  -n "terraform plan" "terraform plan -input=false -no-color" "${args[@]}")

echo "tfshim bench: plan with the real terraform, valid saved key" >&2
(cd "$dir/key" && hf key "$runs" -N \
  -n "terraform plan" "terraform plan -input=false -no-color" "${args[@]}")

# STS requests of one preflight: moto logs each request; with the null terraform only tfshim sends any.
count_requests() { # root, tfshim
  local log=$dir/moto-${MOTO_AUTH##*:}.log before after
  before=$(grep -c 'POST / ' "$log" || true)
  (cd "$dir/$1" && TFSHIM_TERRAFORM=$null "$2" plan >/dev/null)
  sleep 0.2
  after=$(grep -c 'POST / ' "$log" || true)
  echo $((after - before))
}

echo "tfshim bench: repair" >&2
with_each "plan (detects, repairs, plans)" "{} plan -input=false -no-color"
(cd "$dir/stale" && hf repair "$runs" --prepare "$restore_stale" \
  -n "manual fix: init -reconfigure -backend-config=FILE && plan" \
  "terraform init -reconfigure -input=false -no-color -backend-config=$dir/preserved.json >/dev/null && terraform plan -input=false -no-color" \
  "${args[@]}")

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n1; }
# Per variant: name, STS requests of a preflight without and with a saved key, peak RSS of a
# pass-through and of an STS check (KiB), size (bytes); tab-separated, one line each.
for v in "${variants[@]}"; do
  bin=${v#*:}
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${v%%:*}" "$(count_requests nokey "$bin")" "$(count_requests key "$bin")" \
    "$(cd "$dir/nokey" && TFSHIM_TERRAFORM=$null rss "$bin" version)" \
    "$(cd "$dir/key" && TFSHIM_TERRAFORM=$null rss "$bin" plan)" "$(stat -c %s "$bin")"
done >"$out/variants.tsv"

echo "tfshim bench: $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores" >&2
"$moto_python" - "$out" <<'EOF'
import csv, json, os, sys
out = sys.argv[1]
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
rows = load("overhead")
null = rows[0][1]
bash = next(med for cmd, med, _, _ in rows if cmd.startswith("bash")) - null
print("Pass-through overhead over the null terraform (medians), and as a share of the bash wrapper's:")
for cmd, med, _, _ in rows[1:]:
    print(f"- {cmd}: {(med - null) * 1000:.0f} µs, {(med - null) / bash:.0%} of the bash wrapper's")
print()
for name, nokey, key, rss_pass, rss_check, size in csv.reader(open(os.path.join(out, "variants.tsv")), delimiter="\t"):
    print(f"tfshim {name}: STS requests per preflight: no saved key {nokey}, valid saved key {key}; "
          f"peak RSS before exec: pass-through {int(rss_pass) / 1024:.1f} MiB, with an STS check "
          f"{int(rss_check) / 1024:.1f} MiB; binary {int(size) / 1e6:.1f} MB")
EOF
