# Sourced first by scripts/test.sh and scripts/local-up.sh: checks what cannot be installed
# for the user (Python >= 3.11, Terraform >= 1.10) and lists what will be installed
# (Debian packages), before anything is installed. Exits with every missing item named.

_version_at_least() {  # _version_at_least HAVE WANT: true when HAVE >= WANT (dotted numbers)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

check_prerequisites() {  # check_prerequisites [terraform [curl]]
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
  [ "${2:-}" != "curl" ] || command -v curl >/dev/null || will+=("curl")
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

# run_with_progress LOG PATTERN WHAT CMD...: runs CMD with its output in LOG and, every 10 s
# (IOTPM_PROGRESS_EVERY) while it runs, prints how many lines matched PATTERN so far (WHAT names them) and the last
# one, so a long install is never silent. Returns CMD's exit status; LOG is the caller's.
run_with_progress() {
  local log="$1" pattern="$2" what="$3" start=$SECONDS ticks=0 rc=0 pid last
  shift 3
  "$@" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    ticks=$((ticks + 1))
    if [ $((ticks % ${IOTPM_PROGRESS_EVERY:-10})) -eq 0 ]; then
      last="$(grep -E "$pattern" "$log" | tail -n 1 | cut -c1-70 || true)"
      echo "    $(grep -c -E "$pattern" "$log" || true) $what so far, $((SECONDS - start)) s${last:+ (last: $last)}"
    fi
  done
  wait "$pid" || rc=$?
  return "$rc"
}

apt_install() {  # apt_install PACKAGE...: from the distribution, reading the package lists first if needed
  local sudo="" log rc=0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log="$(mktemp "${TMPDIR:-/tmp}/iotpm-apt.XXXXXX")"
  export DEBIAN_FRONTEND=noninteractive
  if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
    echo "    apt-get update (this machine has no package lists yet)"
    run_with_progress "$log" '^(Get|Hit):' "package lists read" $sudo apt-get update -q || rc=$?
  fi
  if [ "$rc" -eq 0 ] && ! run_with_progress "$log" '^Setting up' "packages set up" $sudo apt-get install -y -q "$@"; then
    echo "    apt-get update (the package lists are out of date), then install again"
    run_with_progress "$log" '^(Get|Hit):' "package lists read" $sudo apt-get update -q \
      && run_with_progress "$log" '^Setting up' "packages set up" $sudo apt-get install -y -q "$@" || rc=$?
  fi
  [ "$rc" -eq 0 ] || { echo "apt-get failed (exit $rc); its last lines:" >&2; tail -n 20 "$log" >&2; }
  rm -f "$log"
  return "$rc"
}
