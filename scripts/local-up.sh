#!/usr/bin/env bash
# The README's first command: installs what is missing (Python packages in .venv, and with
# apt: python3-venv, gcc, mosquitto, curl), then brings the whole pipeline up locally and
# runs the simulator with injected faults through it. Run it again at any time: it stops
# what an earlier run left and starts afresh. Options go to `iotpm local up`
# (e.g. --devices 50 --duration 120). Stop everything with: .venv/bin/iotpm local down
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
check_prerequisites terraform curl  # Python and Terraform first: nothing is installed when either is missing
# shellcheck source=scripts/lib/compilers.sh
source scripts/lib/compilers.sh
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
# shellcheck source=scripts/lib/mosquitto.sh
source scripts/lib/mosquitto.sh
ensure_compilers  # before the install, which builds the detection kernel
ensure_venv local  # the emulator, the AWS IoT Device SDK, the API, the CLI
ensure_mosquitto
ensure_curl  # the run's summary ends with curl examples against the twin's API

exec "$VENV/bin/iotpm" local up "$@"
