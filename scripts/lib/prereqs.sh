# Sourced first by scripts/test.sh and scripts/local-up.sh: checks what cannot be installed
# for the user (Python >= 3.11, Terraform >= 1.10) and lists what will be installed
# (Debian packages), before anything is installed. Exits with every missing item named.

_version_at_least() {  # _version_at_least HAVE WANT: true when HAVE >= WANT (dotted numbers)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

check_prerequisites() {  # check_prerequisites [terraform]
  local py="${PYTHON:-python3}" missing=() will=() have
  if ! command -v "$py" >/dev/null; then
    missing+=("Python >= 3.11 ($py not found; set PYTHON to another interpreter)")
  else
    have="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    _version_at_least "$have" 3.11 || missing+=("Python >= 3.11 ($py is $have; set PYTHON to another interpreter)")
  fi
  if [ "${1:-}" = "terraform" ]; then
    if ! command -v terraform >/dev/null; then
      missing+=("Terraform >= 1.10 (not on PATH: https://developer.hashicorp.com/terraform/install)")
    else
      have="$(terraform version 2>/dev/null | sed -n '1s/^Terraform v\([0-9.]*\).*/\1/p')"
      _version_at_least "${have:-0}" 1.10 || missing+=("Terraform >= 1.10 (found ${have:-an unknown version})")
    fi
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "missing before anything can be installed:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    return 1
  fi
  # What the scripts install from Debian when it is absent (named now, installed after).
  [ -x "${IOTPM_VENV:-.venv}/bin/python" ] || "$py" -c 'import ensurepip, venv' 2>/dev/null || will+=("python3-venv")
  command -v cc >/dev/null || will+=("gcc libc6-dev")
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || will+=("mosquitto")
  if [ "${#will[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
      echo "missing, and there is no apt-get to install them: ${will[*]}" >&2
      return 1
    fi
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
      echo "to install ${will[*]} the scripts need root or sudo" >&2
      return 1
    fi
    echo "==> will install from Debian: ${will[*]}"
  fi
}

apt_install() {  # apt_install PACKAGE...: quietly, updating the package lists once if needed
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq "$@" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null; }
}
