#!/usr/bin/env bash
# The test command: install dependencies, build, run every test, print totals.
#   scripts/test.sh           normal build in ./build
#   scripts/test.sh --asan    AddressSanitizer + UBSan build in ./build-asan
# The last line is "nsentry: N passed, N failed, N skipped" (Criterion cases
# are counted one by one; other test programs count as one each).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

build=build
setup_args=(-Dbuildtype=debugoptimized)
if [ "${1:-}" = "--asan" ]; then
  build=build-asan
  setup_args=(-Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false)
  shift
fi
build=${NS_BUILD_DIR:-$build}
case $build in /*) build_abs=$build ;; *) build_abs=$root/$build ;; esac

if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-deps.sh || { echo "nsentry: dependency install failed" >&2; exit 1; }
fi

if [ -d "$build/meson-info" ]; then
  meson setup --reconfigure "$build" "${setup_args[@]}" >/dev/null || exit 1
else
  meson setup "$build" "${setup_args[@]}" || exit 1
fi
ninja -C "$build" || { echo "nsentry: build failed" >&2; exit 1; }

# Throwaway servers shared by the suites (started here, stopped by PID on exit).
cleanup() { for h in scripts/test-hooks/*.down; do [ -x "$h" ] && "$h" "$build_abs"; done; true; }
trap cleanup EXIT
for h in scripts/test-hooks/*.up; do
  [ -x "$h" ] || continue
  # A hook prints KEY=VALUE lines to export (e.g. NS_TEST_PG_URI).
  while IFS= read -r kv; do [ -n "$kv" ] && export "$kv"; done < <("$h" "$build_abs")
done

meson test -C "$build" --print-errorlogs --num-processes "${NS_TEST_JOBS:-2}" "$@"
rc=$?

awk '
  function flush() {
    if (name == "") return
    if (crit) { p += cp; f += cf; s += cs }
    else if (res ~ /SKIP/) s++
    else if (res ~ /exit status 0$/ || res ~ /^OK/) p++
    else f++
    name = ""; crit = 0; cp = cf = cs = 0
  }
  /^test:/ { flush(); name = $2 }
  /^result:/ { sub(/^result:[ \t]*/, ""); res = $0 }
  /Synthesis: Tested:/ {
    crit = 1
    for (i = 1; i <= NF; i++) {
      if ($i == "Passing:") cp = $(i + 1)
      if ($i == "Failing:") cf += $(i + 1)
      if ($i == "Crashing:") cf += $(i + 1)
      if ($i == "Skipped:") cs = $(i + 1)
    }
  }
  END { flush(); printf "nsentry: %d passed, %d failed, %d skipped\n", p, f, s }
' "$build/meson-logs/testlog.txt" | tee "$build/meson-logs/summary.txt"
exit $rc
