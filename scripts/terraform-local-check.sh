#!/usr/bin/env bash
# Proves the Terraform configuration against the local AWS emulator, end to end:
# starts its own emulator on a free port, builds the Lambda zips if missing, applies
# terraform/environments/local, checks that a second plan shows no changes, destroys,
# and stops what it started. Exits non-zero on any failure. Prints the timings.
# terraform is never interrupted mid-apply: the provider's retries are bounded instead.
# IOTPM_TF_LOG_DIR=dir keeps terraform's logs and the provider's debug log (every request,
# its duration and retries) there; benchmarks/terraform_soak.py uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# shellcheck source=scripts/lib/terraform.sh
source scripts/lib/terraform.sh
PY="${IOTPM_PYTHON:-$ROOT/.venv/bin/python}"
ENV_DIR=terraform/environments/local

terraform_offline_setup
WORK="$(mktemp -d "${TMPDIR:-/tmp}/iotpm-tf-check.XXXXXX")"
export IOTPM_HOME="$WORK/home" TF_DATA_DIR="$WORK/.terraform" TF_IN_AUTOMATION=1
if [ -n "${IOTPM_TF_LOG_DIR:-}" ]; then
  mkdir -p "$IOTPM_TF_LOG_DIR"
  export TF_LOG_PROVIDER=DEBUG TF_LOG_PATH="$IOTPM_TF_LOG_DIR/provider.log"
fi
PORT="$("$PY" -c 'from iotpm.emulator.control import free_port; print(free_port())')"
ENDPOINT="http://127.0.0.1:$PORT"
WATCH=""

cleanup() {
  [ -z "$WATCH" ] || kill "$WATCH" 2>/dev/null || true
  "$PY" -m iotpm emulator stop --port "$PORT" >/dev/null 2>&1 || true
  if [ -n "${IOTPM_TF_LOG_DIR:-}" ]; then
    cp "$WORK"/*.log "$IOTPM_TF_LOG_DIR"/ 2>/dev/null || true
    cp "$IOTPM_HOME"/emulator-*.log "$IOTPM_TF_LOG_DIR"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

for fn in processor api compaction; do
  if [ ! -f "lambda_build/out/$fn-x86_64.zip" ]; then
    echo "==> building the $fn Lambda zip (terraform uploads it to the emulator)"
    "$PY" lambda_build/build.py "$fn" --arch x86_64 >/dev/null
  fi
done

echo "==> starting a fresh emulator for this check on $ENDPOINT (stopped when the check ends)"
"$PY" -m iotpm emulator start --port "$PORT" >/dev/null
tf() { terraform -chdir="$ENV_DIR" "$@"; }
now() { date +%s.%N; }
VARS=(-var "emulator_endpoint=$ENDPOINT")

# ticker LOG PATTERN WHAT: every 15 s, how many lines of LOG match PATTERN (resources done), until killed
ticker() {
  local start=$SECONDS
  while sleep 15; do
    echo "    $3: $(grep -c -E "$2" "$1" 2>/dev/null || true) so far ($((SECONDS - start)) s)"
  done
}
# step NAME LOG PATTERN WHAT -- terraform args: runs terraform with its output in LOG, showing progress
step() {
  local name="$1" log="$2" pattern="$3" what="$4"; shift 5
  ticker "$log" "$pattern" "$what" & WATCH=$!
  local rc=0
  tf "$@" >"$log" 2>&1 || rc=$?
  kill "$WATCH" 2>/dev/null || true; wait "$WATCH" 2>/dev/null || true; WATCH=""
  echo "    $name: $(grep -c -E "$pattern" "$log" || true) $what"
  return "$rc"
}

t0=$(now)
tf init -input=false -backend-config="path=$WORK/terraform.tfstate" >/dev/null
t1=$(now)
echo "==> terraform apply of terraform/environments/local (~170 resources; 1-2 min, most of it the provider's waits)"
step apply "$WORK/apply.log" 'Creation complete' "resources created" -- \
  apply -input=false -auto-approve "${VARS[@]}" || { tail -50 "$WORK/apply.log"; exit 1; }
t2=$(now)
echo "==> terraform plan: expecting no changes after the apply (about 20 s)"
set +e
step plan "$WORK/plan.log" 'Refreshing state' "resources refreshed" -- \
  plan -input=false -detailed-exitcode "${VARS[@]}"
rc=$?
set -e
t3=$(now)
if [ "$rc" -ne 0 ]; then
  echo "plan after apply is not empty (exit $rc):" >&2
  grep -E '^\s+[~+-/]|will be|must be|Error' "$WORK/plan.log" | head -60 >&2
  exit 1
fi
resources="$(tf state list | wc -l)"
# The emulator now and then answers a delete with an HTTP 500 (seen once on 2026-12-01:
# Timestream DeleteDatabase). Destroy is idempotent, so one more pass finishes what the
# first left; a second failure fails the check.
echo "==> terraform destroy (about 40 s)"
if ! step destroy "$WORK/destroy.log" 'Destruction complete' "resources destroyed" -- \
     destroy -input=false -auto-approve "${VARS[@]}"; then
  echo "destroy failed once; retrying after:" >&2
  grep -m3 'Error' "$WORK/destroy.log" >&2 || true
  step destroy "$WORK/destroy2.log" 'Destruction complete' "resources destroyed" -- \
    destroy -input=false -auto-approve "${VARS[@]}" || { tail -50 "$WORK/destroy2.log"; exit 1; }
fi
t4=$(now)
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$resources" <<'PY'
import json, sys
t = [float(x) for x in sys.argv[1:6]]
print(json.dumps({"resources": int(sys.argv[6]), "init_s": round(t[1] - t[0], 1), "apply_s": round(t[2] - t[1], 1),
                  "plan_s": round(t[3] - t[2], 1), "destroy_s": round(t[4] - t[3], 1), "total_s": round(t[4] - t[0], 1),
                  "plan_after_apply": "no changes"}))
PY
