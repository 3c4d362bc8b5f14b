#!/bin/bash
# The EC2 core's boot, after the UserData fetched the bundle (cloudformation/greengrass-core-ec2.yaml): the
# users and layout of a v1 core, the interpreters, simcore's and the Lambdas' venvs, the identity, a systemd
# unit; then the stack signal. The UserData calls it with the stack's values:
#
#   bash /opt/rain-edge/group/bootstrap-core.sh --stack-name S --region R --account-id A --model-s3-uri M \
#       [--group-stack-name G] [--thing-name T] [--core-runtime simcore|greengrass-v1] [--core-tarball-url U] \
#       [--sensor-source SRC] [--replay-speed N]
#
# What reaches the internet reads its source from a variable whose default is the real one, so a test can
# point it at a local equivalent (tests/test_ec2_bootstrap.py):
#   RAIN_EDGE_PYTHON311, RAIN_EDGE_PYTHON38  "uv" (uv installs CPython builds) or an interpreter's path
#   RAIN_EDGE_S3_ENDPOINT                     empty (the region's S3) or an S3 endpoint URL, for the unit too
#   RAIN_EDGE_CFN_SIGNAL                      the cfn-signal the UserData installed
#   RAIN_EDGE_SIGNAL_URL                      empty (the region's CloudFormation) or cfn-signal's --url
# Python packages come from pip's index (PIP_INDEX_URL, pip's own variable, when set).
# Every step is named in the log; a failing one signals exit code 1 with the step's name as the reason.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) fails the step too

STACK_NAME="" REGION="" ACCOUNT_ID="" MODEL_S3_URI="" GROUP_STACK_NAME="" THING_NAME=RainEdgeCore
CORE_RUNTIME=simcore CORE_TARBALL_URL="" SENSOR_SOURCE=bme680 REPLAY_SPEED=1
while [ "$#" -gt 0 ]; do
  case "$1" in
    --stack-name) STACK_NAME="$2" ;;
    --region) REGION="$2" ;;
    --account-id) ACCOUNT_ID="$2" ;;
    --model-s3-uri) MODEL_S3_URI="$2" ;;
    --group-stack-name) GROUP_STACK_NAME="$2" ;;
    --thing-name) THING_NAME="$2" ;;
    --core-runtime) CORE_RUNTIME="$2" ;;
    --core-tarball-url) CORE_TARBALL_URL="$2" ;;
    --sensor-source) SENSOR_SOURCE="$2" ;;
    --replay-speed) REPLAY_SPEED="$2" ;;
    *) echo "bootstrap-core.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done

BUNDLE_DIR=/opt/rain-edge
LOG=/var/log/rain-edge-bootstrap.log
UNIT=/etc/systemd/system/rain-edge-core.service
UNIT_ENVIRONMENT=/etc/default/rain-edge-core
PYTHON311_SOURCE="${RAIN_EDGE_PYTHON311:-uv}"
PYTHON38_SOURCE="${RAIN_EDGE_PYTHON38:-uv}"
S3_ENDPOINT="${RAIN_EDGE_S3_ENDPOINT:-}"
CFN_SIGNAL="${RAIN_EDGE_CFN_SIGNAL:-/opt/aws-cfn-bootstrap/bin/cfn-signal}"
SIGNAL_URL="${RAIN_EDGE_SIGNAL_URL:-}"
export PATH="/opt/aws-cfn-bootstrap/bin:$PATH" DEBIAN_FRONTEND=noninteractive

signal() {  # exit code, [reason]
  local options=(--exit-code "$1" --stack "$STACK_NAME" --resource CoreInstance --region "$REGION")
  if [ -n "$SIGNAL_URL" ]; then options+=(--url "$SIGNAL_URL"); fi
  if [ -n "${2:-}" ]; then options+=(--reason "$2"); fi
  "$CFN_SIGNAL" "${options[@]}" || echo "rain-edge bootstrap: cfn-signal failed; the stack times out instead"
}

STEP=arguments
step() {
  STEP="$1"
  echo "== rain-edge bootstrap: $1: $2"
}
# On any failure (set -e ends the script, the trap sees its status): name the step, in the log and the signal.
finish() {
  local status="$1"
  if [ "$status" -ne 0 ]; then
    echo "rain-edge bootstrap: step '$STEP' failed (exit $status); see $LOG"
    signal 1 "step $STEP failed (exit $status); see $LOG"
  fi
}
trap 'finish $?' EXIT

for required in STACK_NAME REGION ACCOUNT_ID MODEL_S3_URI; do
  if [ -z "${!required}" ]; then echo "bootstrap-core.sh: --$(echo "$required" | tr 'A-Z_' 'a-z-') is required"; exit 2; fi
done

step users "ggc_user and ggc_group, the users a v1 core runs Lambdas as"
getent group ggc_group >/dev/null || groupadd --system ggc_group
id ggc_user >/dev/null 2>&1 || useradd --system --gid ggc_group --shell /usr/sbin/nologin ggc_user

step layout "/greengrass as a v1 core lays it out"
install -d -o root -g root -m 0755 /greengrass /greengrass/config /greengrass/ggc
install -d -o root -g root -m 0700 /greengrass/certs

# A version's interpreter: installed by uv (under /opt/python), or one already there, checked to be that version.
interpreter() {  # version, source
  if [ "$2" = uv ]; then
    UV_PYTHON_INSTALL_DIR=/opt/python uv python install "$1" >&2
    UV_PYTHON_INSTALL_DIR=/opt/python uv python find "$1"
  else
    "$2" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$1'.split('.'))), sys.version" >&2 \
      || { echo "$2 is not a working Python $1" >&2; return 1; }
    echo "$2"
  fi
}
step interpreters "CPython 3.11 (simcore) from $PYTHON311_SOURCE, 3.8 (the Lambdas) from $PYTHON38_SOURCE"
python311="$(interpreter 3.11 "$PYTHON311_SOURCE")"
# simcore unpacks model archives with tarfile's data filter (PEP 706), which CPython has from 3.11.4 on.
"$python311" -c "import tarfile; tarfile.data_filter" \
  || { echo "$python311 is older than CPython 3.11.4 (no tarfile.data_filter); simcore needs 3.11.4 or later"; exit 1; }
python38="$(interpreter 3.8 "$PYTHON38_SOURCE")"
ln -sf "$python311" /usr/local/bin/python3.11
ln -sf "$python38" /usr/local/bin/python3.8

step venvs "simcore's venv and the Lambdas' (pip)"
cd "$BUNDLE_DIR"
# From the interpreters' own paths, not the /usr/local/bin links: a venv made through a link finds its stdlib
# from the link's folder, and takes the system's /usr/lib/python3.11 where the system's Python is 3.11 too.
make --no-print-directory PY311="$python311" PY38="$python38" .venv/.runtime venv38
test -x .venv-py38/bin/python

step lambda-access "ggc_group may pass through the folders above the Lambdas' interpreter and runtime"
.venv/bin/python -m simcore setup-users --share .venv-py38/bin/python --share simcore/lambda_side

step identity "the core's certificate, key and config.json"
if [ -n "$GROUP_STACK_NAME" ]; then
  .venv/bin/python -m group.setup --stack "$GROUP_STACK_NAME" --region "$REGION" \
    --out "$BUNDLE_DIR/build/greengrass-setup" --root /greengrass --install
else
  echo "no group stack named: copy greengrass-setup.zip over (the stack's ScpCommand output)"
fi
chmod 0700 /greengrass/certs

step unit "$UNIT for the $CORE_RUNTIME core"
# The unit's own environment: where S3 is, when not the region's (a stand-in in a test).
install -m 0644 /dev/null "$UNIT_ENVIRONMENT"
if [ -n "$S3_ENDPOINT" ]; then echo "AWS_ENDPOINT_URL_S3=$S3_ENDPOINT" >"$UNIT_ENVIRONMENT"; fi
# A parameter value as one word of a unit's command line: quoted, with systemd's specifier % doubled.
unit_word() {
  local value="${1//%/%%}"
  value="${value//\\/\\\\}"
  printf '"%s"' "${value//\"/\\\"}"
}
# simcore names the group's functions after the group stack, as CloudFormation did.
group_stack="${GROUP_STACK_NAME:-rain-edge}"
if [ "$CORE_RUNTIME" = greengrass-v1 ]; then
  curl -fsSL "$CORE_TARBALL_URL" -o /tmp/greengrass-core.tar.gz
  tar -xzf /tmp/greengrass-core.tar.gz -C /
  cat >"$UNIT" <<'UNIT'
[Unit]
Description=Greengrass v1 core (rain-edge)
After=network-online.target
Wants=network-online.target
ConditionPathExists=/greengrass/config/config.json
[Service]
Type=forking
PIDFile=/var/run/greengrassd.pid
ExecStart=/greengrass/ggc/core/greengrassd start
ExecStop=/greengrass/ggc/core/greengrassd stop
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
else
  cat >"$UNIT" <<UNIT
[Unit]
Description=simcore, the v1-compatible core running the rain-edge group
After=network-online.target
Wants=network-online.target
ConditionPathExists=/greengrass/config/config.json
[Service]
WorkingDirectory=$BUNDLE_DIR
EnvironmentFile=-$UNIT_ENVIRONMENT
ExecStartPre=$BUNDLE_DIR/.venv/bin/python -m simcore deploy cloudformation/greengrass-group.yaml --root /var/lib/simcore --region $REGION --account-id $ACCOUNT_ID --stack-name $group_stack --param $(unit_word "ModelS3Uri=$MODEL_S3_URI") --param $(unit_word "ThingName=$THING_NAME") --param $(unit_word "SensorSource=$SENSOR_SOURCE") --param $(unit_word "ReplaySpeed=$REPLAY_SPEED")
ExecStart=$BUNDLE_DIR/.venv/bin/python -m simcore run --root /var/lib/simcore --config /greengrass/config/config.json --runtime python3.8=$BUNDLE_DIR/.venv-py38/bin/python
Restart=on-failure
RestartSec=5
[Install]
WantedBy=multi-user.target
UNIT
fi
chmod 0644 "$UNIT"

step start "enable the unit; start it once the identity is there"
systemctl daemon-reload
systemctl enable rain-edge-core.service
if [ -f /greengrass/config/config.json ]; then systemctl start rain-edge-core.service; fi

step signal "the stack hears the boot succeeded"
signal 0
echo "rain-edge bootstrap: done"
