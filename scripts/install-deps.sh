#!/usr/bin/env bash
# Idempotent dependency installer for Debian 12: build tools, libraries, and the
# runtime servers the tests bring up (Slurm, MariaDB, PostgreSQL, Prometheus).
# Daemons are blocked from auto-starting while packages install: the project
# starts its own throwaway instances on loopback and must find the ports free.
set -euo pipefail

PKGS=(
  meson ninja-build pkg-config gcc libc6-dev make
  libcriterion-dev libsqlite3-dev sqlite3 libpq-dev libcurl4-openssl-dev
  libcjson-dev libopenblas-dev libfftw3-dev libmicrohttpd-dev libncurses-dev
  libmunge-dev libslurm-dev zlib1g-dev
  libdnnl-dev
  munge slurmctld slurmd slurm-client slurmdbd mariadb-server
  postgresql prometheus prometheus-node-exporter
  tmux curl stress-ng iproute2 procps
)

if [ "$(id -u)" -ne 0 ]; then
  echo "nsentry: install-deps.sh must run as root" >&2
  exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "nsentry: all ${#PKGS[@]} packages already installed"
  exit 0
fi
echo "nsentry: installing ${#missing[@]} packages: ${missing[*]}"

guard=/usr/sbin/policy-rc.d
made_guard=0
if [ ! -e "$guard" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$guard"
  chmod 755 "$guard"
  made_guard=1
fi
cleanup() { [ "$made_guard" = 1 ] && rm -f "$guard"; true; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
echo "nsentry: dependencies installed"
