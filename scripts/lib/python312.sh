# Sourced by scripts/test.sh: a Python 3.12 (the Lambda runtime's) so the zip smoke test runs
# instead of skipping. Looked for as lambda_build/build.py does (IOTPM_PYTHON312, pyenv,
# python3.12 on PATH); else installed from the distribution where it has one (Ubuntu 24.04;
# Debian 12 has none), else with uv when uv is present; else the smoke test skips and says
# why. Exports IOTPM_PYTHON312 (and IOTPM_REQUIRE_SMOKE=1: then a skip fails) when one runs.
# shellcheck source=scripts/lib/prereqs.sh
declare -F apt_install >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/prereqs.sh"

find_python312() {
  local c
  for c in "${IOTPM_PYTHON312:-}" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 "$(command -v python3.12 || true)"; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

ensure_python312() {
  local found
  if ! found="$(find_python312)"; then
    if command -v apt-cache >/dev/null && apt-cache show python3.12 >/dev/null 2>&1; then
      echo "==> installing python3.12 with apt (the Lambda runtime's Python: the zip smoke test runs the handler under it)"
      apt_install python3.12 || true
    elif command -v uv >/dev/null; then
      echo "==> installing Python 3.12 with uv (the Lambda runtime's Python: the zip smoke test runs the handler under it)"
      uv python install 3.12 >/dev/null 2>&1 && export IOTPM_PYTHON312="$(uv python find 3.12)"
    fi
    found="$(find_python312)" || {
      echo "==> no Python 3.12 on this machine, and this distribution has none to install (Debian 12 has 3.11 only):" \
           "the Lambda zip smoke test will be SKIPPED; the zips are still built and checked." \
           "To run it, point IOTPM_PYTHON312 at a Python 3.12 (pyenv, uv) and run again." >&2
      return 0
    }
  fi
  export IOTPM_PYTHON312="$found" IOTPM_REQUIRE_SMOKE=1
}
