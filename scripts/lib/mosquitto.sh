# Sourced by scripts/test.sh and scripts/local-up.sh: Debian's mosquitto, installed if missing.
ensure_mosquitto() {
  if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
    return 0
  fi
  echo "==> installing Debian's mosquitto (the local IoT Core)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq mosquitto >/dev/null
}
