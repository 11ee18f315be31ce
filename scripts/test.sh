#!/usr/bin/env bash
# Runs every check CI runs: creates .venv on a fresh machine, installs the project
# with its dev extras, then lint, types and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${IOTPM_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "==> installing iotpm[dev]"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'

echo "==> ruff"
"$VENV/bin/ruff" check src tests benchmarks lambda_build
"$VENV/bin/ruff" format --check src tests benchmarks lambda_build
echo "==> mypy --strict"
"$VENV/bin/mypy"
echo "==> pytest"
"$VENV/bin/pytest" -q "$@"

# Terraform: offline checks, then a real apply -> no-change plan -> destroy on the emulator.
# IOTPM_SKIP_TERRAFORM=1 leaves them out of a quick local run (CI never sets it).
if [ "${IOTPM_SKIP_TERRAFORM:-0}" != "1" ]; then
  IOTPM_PYTHON="$VENV/bin/python" ./scripts/terraform-checks.sh
  echo "==> terraform apply against the emulator"
  IOTPM_PYTHON="$VENV/bin/python" ./scripts/terraform-local-check.sh
fi
