#!/usr/bin/env bash
# The demo command: install dependencies, build, and run the main job on the
# embedded default (`nsentry demo`), in a fresh temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then bash scripts/install-deps.sh; fi
if [ -d build/meson-info ]; then meson setup --reconfigure build >/dev/null; else meson setup build; fi
ninja -C build
exec build/service/nsentry demo "$@"
