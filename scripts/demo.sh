#!/usr/bin/env bash
# The demo command: install dependencies, build, and run the main job on the
# embedded default (`nsentry demo`), in a fresh temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then bash scripts/install-deps.sh; fi
if [ -d build/meson-info ]; then meson setup --reconfigure build >/dev/null; else meson setup build; fi
ninja -C build
# 1. The analytics pipeline on a synthetic cluster: generate, import,
#    preprocess, train a model library, score, evaluate.
build/service/nsentry demo "$@"
# 2. The same on a real single-node Slurm cluster brought up on this machine
#    (munge, MariaDB, slurmdbd, slurmctld, slurmd on 127.0.0.1, state in a temp
#    dir, stopped by recorded PID): sampler, SPANK plugin and nsentryd; a model
#    library trained on the node's own jobs; a normal job and one with a CPU and
#    memory hog beside it; `nsentry sacct` shows the Anomaly column.
if [ "$(id -u)" -eq 0 ] && command -v slurmctld >/dev/null; then
  echo
  echo "nsentry demo: real Slurm cluster on this machine (about 5 minutes)"
  NSENTRY_E2E_DEMO=1 bash tests/e2e/run-e2e.sh "$(pwd)/build"
else
  echo "nsentry demo: skipping the Slurm part (needs root and the Slurm packages: run as root)"
fi
