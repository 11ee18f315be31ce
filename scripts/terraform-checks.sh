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

for env in dev staging prod local; do
  dir="terraform/environments/$env"
  export TF_DATA_DIR="$WORK/$env"
  echo "==> $env: init, validate, test"
  terraform -chdir="$dir" init -backend=false -input=false >"$WORK/$env-init.log" 2>&1 || { cat "$WORK/$env-init.log"; exit 1; }
  terraform -chdir="$dir" validate -no-color
  terraform -chdir="$dir" test -no-color >"$WORK/$env-test.log" 2>&1 || { cat "$WORK/$env-test.log"; exit 1; }
  grep -E "^(Success|Failure)" "$WORK/$env-test.log"
done
# modules with their own tests (tests/*.tftest.hcl beside the module)
for dir in terraform/modules/*/; do
  [ -d "$dir/tests" ] || continue
  mod="$(basename "$dir")"
  export TF_DATA_DIR="$WORK/module-$mod"
  echo "==> module $mod: init, validate, test"
  terraform -chdir="$dir" init -backend=false -input=false >"$WORK/module-$mod-init.log" 2>&1 || { cat "$WORK/module-$mod-init.log"; exit 1; }
  terraform -chdir="$dir" validate -no-color
  terraform -chdir="$dir" test -no-color >"$WORK/module-$mod-test.log" 2>&1 || { cat "$WORK/module-$mod-test.log"; exit 1; }
  grep -E "^(Success|Failure)" "$WORK/module-$mod-test.log"
done
unset TF_DATA_DIR

echo "==> checkov"
CHECKOV_VENV="${IOTPM_CHECKOV_VENV:-$(iotpm_home)/checkov-venv}"
if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check "checkov>=3.2,<4"
fi
# Every skip is written next to the resource it concerns, with its reason (checkov:skip=ID:reason).
"$CHECKOV_VENV/bin/checkov" --directory terraform --framework terraform --quiet --compact \
  --skip-path '\.terraform' --download-external-modules false --skip-download
echo "==> terraform checks passed"
