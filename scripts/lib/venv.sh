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
  local log
  log="$(mktemp "${TMPDIR:-/tmp}/iotpm-pip.XXXXXX")"
  echo "==> pip: the project and its Python dependencies into $VENV (iotpm[$extras]; a first install takes a few minutes)"
  if ! "$VENV/bin/python" -m pip install --quiet --upgrade pip >"$log" 2>&1 \
     || ! run_with_progress "$log" '^(Collecting|Processing|Installing collected)' "packages resolved" \
            "$VENV/bin/python" -m pip install --progress-bar off -e ".[$extras]"; then
    echo "pip failed; its last lines:" >&2
    tail -n 30 "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}
