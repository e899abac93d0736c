# moto-lib.sh: local STS/IAM and S3 servers (moto), and an isolated AWS/terraform environment, for
# demo.sh, bench.sh and bench-sweep.sh. Source it; not a program.
# The layout docs/terraform-backend.md explains: one server with auth enforced (STS, IAM: a deleted key gets the real 403), one
# without (S3: moto's S3 rejects terraform's signed listing when auth is on).
# Needs: python3 (moto is installed from PyPI if missing), curl >= 7.75 (for --aws-sigv4).
# Sets: MOTO_DIR, MOTO_AUTH (http://127.0.0.1:PORT), MOTO_S3; moto_cleanup stops the servers.

moto_python=${TFSHIM_TEST_PYTHON:-python3}
moto_pids=()

moto_die() { printf 'tfshim: %s\n' "$*" >&2; exit 1; }

moto_ensure() {
  command -v curl >/dev/null || moto_die "curl is not on PATH"
  if ! "$moto_python" -c 'import moto.server' 2>/dev/null; then
    echo "tfshim: installing moto[server] from PyPI" >&2
    "$moto_python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.2,<6'
  fi
}

moto_free_port() {
  "$moto_python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

moto_start_one() { # port [auth]
  if [ "${2:-}" = auth ]; then
    INITIAL_NO_AUTH_ACTION_COUNT=3 "$moto_python" -m moto.server -H 127.0.0.1 -p "$1" >"$MOTO_DIR/moto-$1.log" 2>&1 &
  else
    "$moto_python" -m moto.server -H 127.0.0.1 -p "$1" >"$MOTO_DIR/moto-$1.log" 2>&1 &
  fi
  moto_pids+=($!)
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/moto-api/" && return 0
    sleep 0.1
  done
  moto_die "moto did not start on port $1 (see $MOTO_DIR/moto-$1.log)"
}

moto_xml() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" | head -n1; }

# moto_start DIR BUCKET: starts both servers, creates the admin user `admin` (its key in ADMIN_ID and
# ADMIN_SECRET, made with the 3 unauthenticated requests) and the bucket.
moto_start() {
  MOTO_DIR=$1
  local auth s3 dummy key
  auth=$(moto_free_port); s3=$(moto_free_port)
  moto_start_one "$auth" auth
  moto_start_one "$s3"
  MOTO_AUTH="http://127.0.0.1:$auth"
  MOTO_S3="http://127.0.0.1:$s3"
  # moto routes unsigned requests by the Authorization header's scope; the first 3 are not checked.
  dummy='Authorization: AWS4-HMAC-SHA256 Credential=AKIDUMMY/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00'
  curl -sf -H "$dummy" "$MOTO_AUTH/" -d 'Action=CreateUser&UserName=admin&Version=2010-05-08' >/dev/null
  curl -sf -H "$dummy" "$MOTO_AUTH/" -d Action=PutUserPolicy -d UserName=admin -d PolicyName=all -d Version=2010-05-08 \
    --data-urlencode 'PolicyDocument={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}' >/dev/null
  key=$(curl -sf -H "$dummy" "$MOTO_AUTH/" -d 'Action=CreateAccessKey&UserName=admin&Version=2010-05-08')
  ADMIN_ID=$(moto_xml AccessKeyId <<<"$key"); ADMIN_SECRET=$(moto_xml SecretAccessKey <<<"$key")
  curl -sf -X PUT "$MOTO_S3/$2" >/dev/null
}

moto_iam() { # form fields…, signed with the admin key
  curl -sf --aws-sigv4 "aws:amz:us-east-1:iam" --user "$ADMIN_ID:$ADMIN_SECRET" "$MOTO_AUTH/" "$@"
}

# moto_new_key USER: prints "ID SECRET" of a new key for USER (created with an allow-all policy first
# if USER is new).
moto_new_key() {
  if ! moto_iam -d "Action=GetUser&UserName=$1&Version=2010-05-08" >/dev/null 2>&1; then
    moto_iam -d "Action=CreateUser&UserName=$1&Version=2010-05-08" >/dev/null
    moto_iam -d Action=PutUserPolicy -d "UserName=$1" -d PolicyName=all -d Version=2010-05-08 \
      --data-urlencode 'PolicyDocument={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}' >/dev/null
  fi
  local key
  key=$(moto_iam -d "Action=CreateAccessKey&UserName=$1&Version=2010-05-08")
  printf '%s %s\n' "$(moto_xml AccessKeyId <<<"$key")" "$(moto_xml SecretAccessKey <<<"$key")"
}

moto_delete_key() { # USER KEY_ID
  moto_iam -d "Action=DeleteAccessKey&UserName=$1&AccessKeyId=$2&Version=2010-05-08" >/dev/null
}

# moto_main_tf BUCKET KEY: a root whose S3 backend points at the servers.
moto_main_tf() {
  cat <<EOT
terraform {
  backend "s3" {
    bucket                 = "$1"
    key                    = "$2"
    region                 = "us-east-1"
    use_path_style         = true
    skip_region_validation = true
    endpoints = {
      sts = "$MOTO_AUTH"
      iam = "$MOTO_AUTH"
      s3  = "$MOTO_S3"
    }
  }
}

resource "terraform_data" "demo" {
  input = "hello"
}
EOT
}

# moto_isolated_env DIR: a HOME with an empty ~/.aws/credentials, an empty terraform CLI config, no
# ambient AWS credentials, no tfshim settings; terraform kept off the network.
moto_isolated_env() {
  mkdir -p "$1/home/.aws"
  : >"$1/home/.aws/credentials"
  : >"$1/terraformrc"
  export HOME="$1/home" AWS_SHARED_CREDENTIALS_FILE="$1/home/.aws/credentials" AWS_CONFIG_FILE="$1/home/.aws/config"
  export TF_CLI_CONFIG_FILE="$1/terraformrc" CHECKPOINT_DISABLE=1 AWS_EC2_METADATA_DISABLED=true
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE TFSHIM_TERRAFORM TFSHIM_MODE TFSHIM_LOG
}

# moto_credentials ID SECRET: makes them the [default] profile of the isolated environment.
moto_credentials() {
  printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$1" "$2" >"$AWS_SHARED_CREDENTIALS_FILE"
}

# ensure_hyperfine NAME: installs hyperfine from Debian's packages when missing (as root), else fails.
ensure_hyperfine() {
  command -v hyperfine >/dev/null && return 0
  # shellcheck source=lib/apt.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
  apt_ensure "$1" hyperfine || exit 1
}

moto_cleanup() {
  local p
  for p in "${moto_pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
