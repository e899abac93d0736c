#!/usr/bin/env bash
# demo.sh: the rotation incident and its cure, on this machine, with no AWS account.
#
# Starts two local moto servers (STS/IAM with auth enforced, S3 without), initialises a Terraform root
# with an access key given by -backend-config (terraform saves it in .terraform/terraform.tfstate),
# rotates the key, shows plain `terraform plan` failing with the seed's 403 on GetCallerIdentity, and
# then `tfshim plan` healing it. Everything lives in a temp dir and is removed at the end.
# Needs: terraform, python3 (moto is installed from PyPI if missing), curl >= 7.75, tfshim on PATH
# (or TFSHIM_BIN=/path/to/tfshim).
set -euo pipefail

say() { if [ -t 2 ]; then printf '\n\033[1m== %s\033[0m\n' "$*" >&2; else printf '\n== %s\n' "$*" >&2; fi; }
die() { printf 'tfshim demo: %s\n' "$*" >&2; exit 1; }

tfshim=${TFSHIM_BIN:-$(command -v tfshim || true)}
[ -n "$tfshim" ] || die "tfshim is not on PATH: run \`cargo install --locked --path .\` first, or set TFSHIM_BIN"
command -v terraform >/dev/null || die "terraform is not on PATH"
# shellcheck source=moto-lib.sh
. "$(dirname "$0")/moto-lib.sh"
moto_ensure

dir=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-demo.XXXXXX")
cleanup() { moto_cleanup; rm -rf "$dir"; }
trap cleanup EXIT
redact() { printf '%s…%s' "${1:0:4}" "${1: -4}"; }

say "Starting local STS/IAM (auth enforced) and S3 (moto)"
moto_start "$dir" tfstate
read -r k1_id k1_secret < <(moto_new_key demo)
echo "IAM user demo with key $(redact "$k1_id")" >&2

mkdir -p "$dir/root"
moto_isolated_env "$dir"
moto_main_tf tfstate demo/terraform.tfstate >"$dir/root/main.tf"
cd "$dir/root"

say "terraform init with the key given by -backend-config (terraform saves it in plain text)"
terraform init -input=false -no-color -backend-config="access_key=$k1_id" -backend-config="secret_key=$k1_secret" >/dev/null
grep -q "$k1_id" .terraform/terraform.tfstate && echo ".terraform/terraform.tfstate now holds $(redact "$k1_id")" >&2

say "Rotating: new key into ~/.aws/credentials, old key deleted"
read -r k2_id k2_secret < <(moto_new_key demo)
moto_credentials "$k2_id" "$k2_secret"
moto_delete_key demo "$k1_id"
echo "new key $(redact "$k2_id") is in the credentials file; $(redact "$k1_id") is deleted" >&2

say "Plain terraform plan: the seed's failure"
if terraform plan -input=false -no-color; then die "plain terraform unexpectedly succeeded"; fi

say "tfshim plan: detects the stale saved key, re-initialises safely, runs the plan"
"$tfshim" plan -input=false -no-color

say "Afterwards"
if grep -q "$k1_id" .terraform/terraform.tfstate; then die "the old key is still saved"; fi
echo "the saved backend no longer holds a key; terraform uses the rotated one from ~/.aws/credentials" >&2
terraform plan -input=false -no-color -detailed-exitcode >/dev/null || [ $? -eq 2 ]
echo "plain terraform plan works again" >&2
