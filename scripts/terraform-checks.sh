#!/usr/bin/env bash
# The offline Terraform checks CI runs: fmt, validate and `terraform test` (mocked AWS
# provider) in every environment root, then checkov over terraform/. Providers come
# from the registry, or from a local mirror when it is unreachable (scripts/lib/terraform.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# shellcheck source=scripts/lib/terraform.sh
source scripts/lib/terraform.sh
terraform_offline_setup
WORK="$(mktemp -d "${TMPDIR:-/tmp}/iotpm-tf.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "==> terraform fmt -check -recursive"
terraform fmt -check -recursive terraform

echo "==> module READMEs match variables.tf/outputs.tf"
"${IOTPM_PYTHON:-python3}" scripts/terraform-docs.py --check

echo "==> environment roots pass every setting of modules/pipeline/variables.tf through (generated)"
"${IOTPM_PYTHON:-python3}" scripts/terraform-passthrough.py --check

tf_test() {  # tf_test DIR NAME [ARGS...]: init, validate and `terraform test` a root
  local dir="$1" name="$2"; shift 2
  export TF_DATA_DIR="$WORK/$name"
  terraform -chdir="$dir" init -backend=false -input=false >"$WORK/$name-init.log" 2>&1 || { cat "$WORK/$name-init.log"; exit 1; }
  terraform -chdir="$dir" validate -no-color
  if [ -d "$dir/tests" ]; then
    terraform -chdir="$dir" test -no-color "$@" >"$WORK/$name-test.log" 2>&1 || { cat "$WORK/$name-test.log"; exit 1; }
    grep -E "^(Success|Failure)" "$WORK/$name-test.log"
  fi
}

for env in dev staging prod local; do
  echo "==> $env: init, validate; the pipeline module's tests with $env's terraform.tfvars"
  tf_test "terraform/environments/$env" "$env"
  tf_test terraform/modules/pipeline "pipeline-$env" -var-file="../../environments/$env/terraform.tfvars"
done
for example in terraform/examples/*/; do
  echo "==> example $(basename "$example"): init, validate, test"
  tf_test "$example" "example-$(basename "$example")"
done
# modules with their own tests (tests/*.tftest.hcl beside the module); the pipeline module's
# run above, once per environment's tfvars
for dir in terraform/modules/*/; do
  mod="$(basename "$dir")"
  [ -d "$dir/tests" ] && [ "$mod" != "pipeline" ] || continue
  echo "==> module $mod: init, validate, test"
  tf_test "$dir" "module-$mod"
done
rm -f terraform/modules/*/.terraform.lock.hcl terraform/examples/*/.terraform.lock.hcl
unset TF_DATA_DIR

echo "==> checkov"
CHECKOV_VENV="${IOTPM_CHECKOV_VENV:-$(iotpm_home)/checkov-venv}"
if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  echo "==> pip: checkov into $CHECKOV_VENV (the Terraform policy scanner, kept apart from .venv; first run only)"
  python3 -m venv "$CHECKOV_VENV"
  # shellcheck source=scripts/lib/prereqs.sh
  source scripts/lib/prereqs.sh
  run_with_progress "$WORK/checkov-pip.log" '^(Collecting|Installing collected)' "packages resolved" \
    "$CHECKOV_VENV/bin/pip" install --progress-bar off --disable-pip-version-check "checkov>=3.2,<4" \
    || { tail -n 30 "$WORK/checkov-pip.log" >&2; exit 1; }
fi
# Every skip is written next to the resource it concerns, with its reason (checkov:skip=ID:reason).
"$CHECKOV_VENV/bin/checkov" --directory terraform --framework terraform --quiet --compact \
  --skip-path '\.terraform' --download-external-modules false --skip-download
echo "==> terraform checks passed"
