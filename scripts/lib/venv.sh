# Sourced by scripts/test.sh and scripts/local-up.sh: a .venv with the project and the given extras.
# Sets VENV. PYTHON and IOTPM_VENV override the interpreter and the folder. Debian and Ubuntu
# ship Python without venv/ensurepip (the python3-venv package): it is installed when missing.
# shellcheck source=scripts/lib/prereqs.sh
declare -F apt_install >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/prereqs.sh"
ensure_venv() {
  local extras="$1" py="${PYTHON:-python3}"
  VENV=${IOTPM_VENV:-.venv}
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
      local minor
      minor="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
      echo "==> installing Debian's python$minor-venv (python -m venv needs it)"
      apt_install "python$minor-venv" 2>/dev/null || apt_install python3-venv
    fi
    echo "==> creating $VENV"
    rm -rf "$VENV"  # a half-made folder from a failed earlier attempt
    "$py" -m venv "$VENV"
  fi
  echo "==> installing iotpm[$extras]"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[$extras]"
}
