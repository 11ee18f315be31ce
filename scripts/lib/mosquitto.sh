# Sourced by scripts/test.sh and scripts/local-up.sh: Debian's mosquitto (and, for local-up.sh, curl),
# installed if missing.
# shellcheck source=scripts/lib/prereqs.sh
declare -F apt_install >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/prereqs.sh"
ensure_mosquitto() {
  if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
    return 0
  fi
  echo "==> installing mosquitto with apt (the MQTT broker that stands in for IoT Core locally)"
  apt_install mosquitto
}

# The twin's summary ends with curl examples against its API; a minimal Debian has no curl.
ensure_curl() {
  command -v curl >/dev/null && return 0
  echo "==> installing curl with apt (the run's summary shows how to query the API with it)"
  apt_install curl
}
