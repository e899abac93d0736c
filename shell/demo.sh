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

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf 'tfshim demo: %s\n' "$*" >&2; exit 1; }

tfshim=${TFSHIM_BIN:-$(command -v tfshim || true)}
[ -n "$tfshim" ] || die "tfshim is not on PATH: run \`cargo install --locked --path .\` first, or set TFSHIM_BIN"
command -v terraform >/dev/null || die "terraform is not on PATH"
command -v curl >/dev/null || die "curl is not on PATH"
python=${TFSHIM_TEST_PYTHON:-python3}
if ! "$python" -c 'import moto.server' 2>/dev/null; then
  echo "tfshim demo: installing moto[server] from PyPI" >&2
  "$python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.2,<6'
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/tfshim-demo.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_moto() { # port [auth]
  if [ "${2:-}" = auth ]; then
    INITIAL_NO_AUTH_ACTION_COUNT=3 "$python" -m moto.server -H 127.0.0.1 -p "$1" >"$dir/moto-$1.log" 2>&1 &
  else
    "$python" -m moto.server -H 127.0.0.1 -p "$1" >"$dir/moto-$1.log" 2>&1 &
  fi
  pids+=($!)
  for _ in $(seq 1 200); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/moto-api/" && return 0
    sleep 0.1
  done
  die "moto did not start on port $1 (see $dir/moto-$1.log)"
}
redact() { printf '%s…%s' "${1:0:4}" "${1: -4}"; }
xml() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" | head -n1; }

say "Starting local STS/IAM (auth enforced) and S3 (moto)"
auth=$(free_port); s3=$(free_port)
start_moto "$auth" auth
start_moto "$s3"
A="http://127.0.0.1:$auth"
# moto routes unsigned requests by the Authorization header's scope; the first 3 are not checked.
dummy='Authorization: AWS4-HMAC-SHA256 Credential=AKIDUMMY/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00'
curl -sf -H "$dummy" "$A/" -d 'Action=CreateUser&UserName=demo&Version=2010-05-08' >/dev/null
curl -sf -H "$dummy" "$A/" -d Action=PutUserPolicy -d UserName=demo -d PolicyName=all -d Version=2010-05-08 \
  --data-urlencode 'PolicyDocument={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}' >/dev/null
k1=$(curl -sf -H "$dummy" "$A/" -d 'Action=CreateAccessKey&UserName=demo&Version=2010-05-08')
k1_id=$(xml AccessKeyId <<<"$k1"); k1_secret=$(xml SecretAccessKey <<<"$k1")
curl -sf -X PUT "http://127.0.0.1:$s3/tfstate" >/dev/null
echo "IAM user demo with key $(redact "$k1_id")" >&2

mkdir -p "$dir/home/.aws" "$dir/root"
: >"$dir/home/.aws/credentials"
: >"$dir/terraformrc"
cat >"$dir/root/main.tf" <<EOF
terraform {
  backend "s3" {
    bucket                 = "tfstate"
    key                    = "demo/terraform.tfstate"
    region                 = "us-east-1"
    use_path_style         = true
    skip_region_validation = true
    endpoints = {
      sts = "$A"
      iam = "$A"
      s3  = "http://127.0.0.1:$s3"
    }
  }
}

resource "terraform_data" "demo" {
  input = "hello"
}
EOF
export HOME="$dir/home" AWS_SHARED_CREDENTIALS_FILE="$dir/home/.aws/credentials" AWS_CONFIG_FILE="$dir/home/.aws/config"
export TF_CLI_CONFIG_FILE="$dir/terraformrc" CHECKPOINT_DISABLE=1 AWS_EC2_METADATA_DISABLED=true
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
cd "$dir/root"

say "terraform init with the key given by -backend-config (terraform saves it in plain text)"
terraform init -input=false -no-color -backend-config="access_key=$k1_id" -backend-config="secret_key=$k1_secret" >/dev/null
grep -q "$k1_id" .terraform/terraform.tfstate && echo ".terraform/terraform.tfstate now holds $(redact "$k1_id")" >&2

say "Rotating: new key into ~/.aws/credentials, old key deleted"
k2=$(curl -sf --aws-sigv4 "aws:amz:us-east-1:iam" --user "$k1_id:$k1_secret" "$A/" -d 'Action=CreateAccessKey&UserName=demo&Version=2010-05-08')
k2_id=$(xml AccessKeyId <<<"$k2"); k2_secret=$(xml SecretAccessKey <<<"$k2")
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$k2_id" "$k2_secret" >"$AWS_SHARED_CREDENTIALS_FILE"
curl -sf --aws-sigv4 "aws:amz:us-east-1:iam" --user "$k2_id:$k2_secret" "$A/" \
  -d "Action=DeleteAccessKey&UserName=demo&AccessKeyId=$k1_id&Version=2010-05-08" >/dev/null
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
