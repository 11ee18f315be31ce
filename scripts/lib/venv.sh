# Sourced by scripts/test.sh and scripts/local-up.sh: a .venv with the project and the given extras.
# Sets VENV. PYTHON and IOTPM_VENV override the interpreter and the folder.
ensure_venv() {
  local extras="$1"
  VENV=${IOTPM_VENV:-.venv}
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  echo "==> installing iotpm[$extras]"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[$extras]"
}
