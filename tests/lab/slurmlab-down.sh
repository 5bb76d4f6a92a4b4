#!/usr/bin/env bash
# Stop a lab started by slurmlab-up.sh: only the PIDs recorded in DIR/run/pids,
# newest first, and only while /proc/PID/comm still names the recorded daemon.
#   slurmlab-down.sh [--purge] DIR     (--purge also deletes DIR)
set -uo pipefail
purge=0
[ "${1:-}" = --purge ] && { purge=1; shift; }
[ $# -eq 1 ] || { echo "usage: slurmlab-down.sh [--purge] DIR" >&2; exit 2; }
LAB=$1
[ -d "$LAB" ] || exit 0
pids=$LAB/run/pids
alive() { # PID NAME: alive and still that daemon (zombies count as stopped)
  local st comm
  [ -r "/proc/$1/stat" ] || return 1
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
  [ "$st" = Z ] && return 1
  comm=$(cat "/proc/$1/comm" 2>/dev/null)
  case "$2" in
    mariadbd) [ "$comm" = mariadbd ] || [ "$comm" = mysqld ] ;;
    *) [ "$comm" = "$2" ] ;;
  esac
}
if [ -s "$pids" ]; then
  tac "$pids" | while read -r name pid; do
    [ -n "$pid" ] || continue
    alive "$pid" "$name" || continue
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 300); do alive "$pid" "$name" || break; sleep 0.1; done
    if alive "$pid" "$name"; then echo "slurmlab-down: $name ($pid) ignored TERM, killing" >&2; kill -KILL "$pid" 2>/dev/null; fi
  done
  : > "$pids"
fi
if [ -f "$LAB/run/hosts-fixed" ]; then
  sed -i '/ # slurmlab-added$/d' /etc/hosts
  rm -f "$LAB/run/hosts-fixed"
fi
if [ "$purge" = 1 ]; then
  case "$(readlink -f "$LAB")" in
    /|/etc|/usr|/var|/root|/home|/tmp) echo "slurmlab-down: refusing to purge $LAB" >&2; exit 1 ;;
  esac
  rm -rf "$LAB"
fi
exit 0
