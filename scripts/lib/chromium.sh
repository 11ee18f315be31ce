# Sourced by scripts/test.sh: Debian's chromium and its chromedriver (the dashboard's
# browser test drives them with selenium), installed if missing.
ensure_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    return 0
  fi
  echo "==> installing Debian's chromium and chromium-driver (the dashboard's browser test)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
}
