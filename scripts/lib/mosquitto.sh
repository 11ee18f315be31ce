# Sourced by scripts/test.sh and scripts/local-up.sh: Debian's mosquitto, installed if missing.
# shellcheck source=scripts/lib/prereqs.sh
declare -F apt_install >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/prereqs.sh"
ensure_mosquitto() {
  if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
    return 0
  fi
  echo "==> installing Debian's mosquitto (the local IoT Core)"
  apt_install mosquitto
}
