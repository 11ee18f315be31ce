# Sourced by scripts/test.sh and scripts/local-up.sh: Debian's C compilers, installed if missing.
# cc builds the detection kernel for this machine (pip install runs it); the cross compiler
# builds it for arm64 Lambda zips. Without them the numpy kernel runs: same results, slower.
# shellcheck source=scripts/lib/prereqs.sh
declare -F apt_install >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/prereqs.sh"
ensure_compilers() {
  local want=()
  command -v cc >/dev/null || want+=(gcc libc6-dev)
  if [ "${1:-}" = "cross" ] && [ "$(uname -m)" = "x86_64" ]; then
    command -v aarch64-linux-gnu-gcc >/dev/null || want+=(gcc-aarch64-linux-gnu)
  fi
  [ "${#want[@]}" -gt 0 ] || return 0
  local why="gcc and libc6-dev compile the detector's C kernel for this machine"
  [[ " ${want[*]} " == *" gcc "* ]] || why=""
  if [[ " ${want[*]} " == *" gcc-aarch64-linux-gnu "* ]]; then
    why="${why:+$why; }gcc-aarch64-linux-gnu is the cross compiler that builds that kernel for the arm64 Lambda zip"
  fi
  echo "==> installing ${want[*]} with apt ($why)"
  apt_install "${want[@]}"
}
