#!/usr/bin/env bash
# `nsentry import sacct` on real sacct output from a throwaway Slurm lab with
# slurmdbd (tests/lab/slurmlab-up.sh): a finished job, an array, a running
# job and a cancelled heterogeneous job that never started.
#   test_sacct_live.sh NSENTRY
set -uo pipefail
nsentry=${1:?usage: test_sacct_live.sh NSENTRY}
here=$(cd "$(dirname "$0")" && pwd)
lab_up=$here/../lab/slurmlab-up.sh lab_down=$here/../lab/slurmlab-down.sh
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }
if [ "$(id -u)" -ne 0 ] || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  echo "skip: needs root, slurmdbd and mariadb-server (scripts/install-deps.sh)"; echo "0 passed, 0 failed"; exit 77
fi
LAB=$(mktemp -d /tmp/nsi.XXXXXX)
trap 'bash "$lab_down" --purge "$LAB" >/dev/null 2>&1' EXIT
base=
for b in $(shuf -i 30000-39000 -n 40); do
  busy=0; for p in $b $((b + 1)) $((b + 2)) $((b + 3)); do ss -ltn "( sport = :$p )" | grep -q LISTEN && busy=1; done
  [ $busy = 0 ] && { base=$b; break; }
done
if ! bash "$lab_up" --with-dbd --no-smoke --no-install --port-base "$base" "$LAB" 2>"$LAB/up.log"; then
  cat "$LAB/up.log"; bad "lab bring-up"; finish
fi
source "$LAB/env.sh"
submit() { (cd "$LAB/jobs" && sbatch --parsable -o /dev/null "$@"); }
state_of() { sacct -j "$1" -X -n -P -o State 2>/dev/null | sed 's/ by .*//' | sort -u | tr '\n' ' '; }
wait_state() { # JOB STATE: every line of the job in that state
  for _ in $(seq 1 300); do [ "$(state_of "$1")" = "$2 " ] && return 0; sleep 0.1; done
  return 1
}

j1=$(submit --wrap "sleep 1") && wait_state "$j1" COMPLETED || bad "job $j1 did not complete"
ja=$(submit --array=1-2 --wrap true) && wait_state "$ja" COMPLETED || bad "array $ja did not complete"
# The exclusive running job keeps the het job pending until it is cancelled.
jr=$(submit --exclusive --wrap "sleep 120") && wait_state "$jr" RUNNING || bad "job $jr is not running"
jh=$(submit -n1 : -n1 --wrap true) && wait_state "$jh" PENDING && scancel "$jh" && wait_state "$jh" CANCELLED ||
  bad "het job $jh not cancelled while pending"

out="$LAB/sacct.txt"
sacct -P -X -o JobID,NodeList,Start,End,State > "$out"
cat "$out"
grep -q "^${ja}_2|localhost|" "$out" && ok "array task ${ja}_2 listed" || bad "no array task in sacct output"
grep -q "^${jh}+1|None assigned|" "$out" && ok "het component ${jh}+1 listed" || bad "no het component in sacct output"
grep -q "^${jr}|localhost|.*|Unknown|RUNNING$" "$out" && ok "running job has End Unknown" || bad "running job line"

db="sqlite:$LAB/nsentry.db"
res=$(NSENTRY_CONF=/dev/null "$nsentry" --db "$db" import sacct "$out" --cluster lab 2>"$LAB/import.err")
rc=$?
echo "$res"
[ $rc -eq 0 ] && ok "import exit 0" || { bad "import failed: $(cat "$LAB/import.err")"; finish; }
echo "$res" | grep -q "jobs 4," && ok "4 jobs imported (job, 2 array tasks, running)" || bad "job count: $res"
echo "$res" | grep -q "skipped jobs 2" && ok "the 2 cancelled het components are skipped" || bad "skips: $res"
grep -q "job ${jh}+0 never started" "$LAB/import.err" && ok "skip logged with file:line" || bad "no skip warning"
# Re-import is an upsert: same counts, no error.
NSENTRY_CONF=/dev/null "$nsentry" --db "$db" import sacct "$out" --cluster lab 2>/dev/null | grep -q "jobs 4," &&
  ok "re-import upserts" || bad "re-import"
# A truncated copy (cut mid-line) fails and names the line.
head -c $(( $(stat -c %s "$out") - 9 )) "$out" > "$LAB/cut.txt"
err=$(NSENTRY_CONF=/dev/null "$nsentry" --db "$db" import sacct "$LAB/cut.txt" --cluster lab2 2>&1)
[ $? -eq 1 ] && echo "$err" | grep -qE "cut.txt:[0-9]+:[0-9]+: " && ok "cut file rejected: $err" || bad "cut file: $err"
scancel "$jr"
finish
