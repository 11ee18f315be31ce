# Sourced by scripts/test.sh: Debian's chromium and its chromedriver (the dashboard's
# browser test drives them with selenium), installed if missing.
# shellcheck source=scripts/lib/prereqs.sh
declare -F apt_install >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/prereqs.sh"
ensure_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    return 0
  fi
  echo "==> installing chromium and chromium-driver with apt (the dashboard's browser test; ~100 MB, a few minutes)"
  apt_install chromium chromium-driver
}
