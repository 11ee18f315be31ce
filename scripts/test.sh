#!/usr/bin/env bash
# Runs every check CI runs: creates .venv on a fresh machine, installs the project
# with its dev extras, Debian's C compilers and Debian's mosquitto, then lint, types, tests and the
# Terraform checks (offline, then a real apply against the emulator).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
check_prerequisites terraform  # Python and Terraform first: nothing is installed when either is missing
# shellcheck source=scripts/lib/compilers.sh
source scripts/lib/compilers.sh
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
# shellcheck source=scripts/lib/mosquitto.sh
source scripts/lib/mosquitto.sh
# shellcheck source=scripts/lib/chromium.sh
source scripts/lib/chromium.sh
ensure_compilers cross  # before the install, which builds the detection kernel
ensure_venv dev
ensure_mosquitto  # the end-to-end test runs the local twin's broker
# shellcheck source=scripts/lib/python312.sh
source scripts/lib/python312.sh
ensure_python312  # the Lambda zip smoke test runs its handler under the runtime's Python
ensure_chromium   # the end-to-end test opens the dashboard in a real browser
# shellcheck source=scripts/lib/dynamodb_local.sh
source scripts/lib/dynamodb_local.sh
ensure_dynamodb_local  # the DynamoDB adapters' tests also run on DynamoDB Local, AWS's own engine

echo "==> ruff"
"$VENV/bin/ruff" check src tests benchmarks lambda_build docs/hooks
"$VENV/bin/ruff" format --check src tests benchmarks lambda_build docs/hooks
echo "==> mypy --strict"
"$VENV/bin/mypy"
echo "==> mkdocs build --strict (the docs site: a broken link, anchor or nav entry fails)"
site="$(mktemp -d "${TMPDIR:-/tmp}/iotpm-site.XXXXXX")"
NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict --site-dir "$site"  # the variable hides Material's notice of its successor
rm -rf "$site"
echo "==> pytest"
"$VENV/bin/pytest" -q "$@"

# Terraform: offline checks, then a real apply -> no-change plan -> destroy on the emulator.
# IOTPM_SKIP_TERRAFORM=1 leaves them out of a quick local run (CI never sets it).
if [ "${IOTPM_SKIP_TERRAFORM:-0}" != "1" ]; then
  IOTPM_PYTHON="$VENV/bin/python" ./scripts/terraform-checks.sh
  echo "==> terraform apply against the emulator"
  IOTPM_PYTHON="$VENV/bin/python" ./scripts/terraform-local-check.sh
fi
