#!/usr/bin/env bash
# The verdict writer against a real slurmdbd + MariaDB (tests/lab/slurmlab-up.sh):
# slurmdb_job_modify keeps case, merges with foreign AdminComment text, never
# writes unsafe content, reports unknown jobs, and nsentryd's outbox writer puts
# a queued verdict into `sacct -j ID -o AdminComment%80`; with slurmdbd down the
# write fails as retryable.
#   test_slurm_writer.sh NSENTRYD SVC_TOOL NSENTRY
set -uo pipefail
nsentryd=${1:?} tool=${2:?} nsentry=${3:?}
here=$(cd "$(dirname "$0")" && pwd)
lab_up=$here/../lab/slurmlab-up.sh lab_down=$here/../lab/slurmlab-down.sh
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }
if [ "$(id -u)" -ne 0 ] || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  echo "skip: needs root, slurmdbd and mariadb-server (scripts/install-deps.sh)"; echo "0 passed, 0 failed"; exit 77
fi
LAB=$(mktemp -d /tmp/nsl.XXXXXX)
dpid=
cleanup() { [ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null; bash "$lab_down" --purge "$LAB"; }
trap cleanup EXIT
# A port block nobody listens on (labs of other suites may run beside this one).
base=
for b in $(shuf -i 20000-29000 -n 40); do
  busy=0; for p in $b $((b + 1)) $((b + 2)) $((b + 3)); do ss -ltn "( sport = :$p )" | grep -q LISTEN && busy=1; done
  [ $busy = 0 ] && { base=$b; break; }
done
if ! bash "$lab_up" --with-dbd --no-smoke --no-install --port-base "$base" "$LAB"; then
  bad "lab bring-up"; finish
fi
source "$LAB/env.sh"
submit() { (cd "$LAB/jobs" && sbatch --parsable -o /dev/null --wrap true); }
wait_done() { # JOB: wait until sacct shows it finished
  for _ in $(seq 1 300); do sacct -j "$1" -X -n -P -o State 2>/dev/null | grep -q COMPLETED && return 0; sleep 0.1; done
  return 1
}
field() { sacct -j "$1" -X -n -P -o AdminComment; }

j1=$(submit) && wait_done "$j1" || { bad "job did not complete"; finish; }
sacctmgr -i modify job where jobid="$j1" set AdminComment="Reviewed-By-Ops" >/dev/null
[ "$(field "$j1")" = "reviewed-by-ops" ] && ok "foreign AdminComment set (sacctmgr lower-cases it)" || bad "foreign value: '$(field "$j1")'"

"$tool" write lab "$j1" admincomment "nsentry:v1;verdict=normal;score=0.5;model=R1" >/dev/null
got=$(field "$j1")
[ "$got" = "reviewed-by-ops nsentry:v1;verdict=normal;score=0.5;model=R1" ] &&
  ok "token merged after foreign text, case kept" || bad "after write: '$got'"

"$tool" write lab "$j1" systemcomment "nsentry:v1;verdict=normal;score=0.5;model=Sys1" >/dev/null
got=$(sacct -j "$j1" -X -n -P -o SystemComment)
[ "$got" = "nsentry:v1;verdict=normal;score=0.5;model=Sys1" ] && ok "SystemComment target works" || bad "SystemComment: '$got'"

# The daemon path: a finalised verdict sits in slurm_outbox; nsentryd writes it.
db="sqlite:$LAB/nsentry.db"
"$tool" seed "$db" lab "$j1" localhost 4.7 >/dev/null || bad "seeding the outbox"
port=$(( base + 4 ))
NSENTRY_CONF=/dev/null "$nsentryd" -s db="$db" -s listen_port=$port -s munge_socket="$SLURMLAB_MUNGE_SOCKET" \
  -s verdict_field=admincomment -s slurm_conf="$SLURM_CONF" >"$LAB/log/nsentryd.log" 2>&1 &
dpid=$!
want="reviewed-by-ops nsentry:v1;verdict=anomalous;score=4.7;nodes=localhost;model=r3"
for _ in $(seq 1 150); do [ "$(field "$j1")" = "$want" ] && break; sleep 0.2; done
out=$(sacct -j "$j1" -o AdminComment%80)
echo "$out"
if echo "$out" | grep -qF "$want"; then ok "nsentryd wrote the token: sacct -j $j1 -o AdminComment%80"; else bad "sacct shows '$(field "$j1")'"; cat "$LAB/log/nsentryd.log"; fi
grep -o 'nsentry_slurm_writes_total{result="ok"} [0-9]*' <(curl -s "http://127.0.0.1:$port/metrics") | grep -q ' 1$' &&
  ok "metrics count the write" || bad "slurm write metric"
kill "$dpid"; wait "$dpid"; rc=$?; dpid=
# nsentry sacct: the Anomaly column comes from the nsentry DB.
out=$(NSENTRY_CONF=/dev/null "$nsentry" --db "$db" sacct -j "$j1" -P -o JobID,State)
echo "$out"
echo "$out" | grep -qx "$j1|COMPLETED|ANOMALOUS score=4.7" && ok "nsentry sacct -P adds the Anomaly column" || bad "nsentry sacct -P: $out"
out=$(NSENTRY_CONF=/dev/null "$nsentry" --db "$db" sacct -j "$j1")
echo "$out" | head -1 | grep -q "Anomaly$" && echo "$out" | grep -q "ANOMALOUS score=4.7" &&
  ok "nsentry sacct table has the Anomaly column" || bad "nsentry sacct table: $out"
NSENTRY_CONF=/dev/null "$nsentry" --db "$db" sacct -j "$j1" --no-such-option >/dev/null 2>&1 &&
  bad "nsentry sacct must fail when sacct fails" || ok "nsentry sacct passes sacct's failure on"
[ $rc -eq 0 ] && ok "nsentryd stopped cleanly on SIGTERM" || bad "nsentryd exit status $rc"

# Unsafe foreign content (sacctmgr turns ' into `): never rewritten.
j2=$(submit) && wait_done "$j2"
sacctmgr -i modify job where jobid="$j2" set AdminComment="it's" >/dev/null
before=$(field "$j2")
"$tool" write lab "$j2" admincomment "nsentry:v1;verdict=normal;score=1;model=r1" >/dev/null; rc=$?
[ $rc -eq 4 ] && [ "$(field "$j2")" = "$before" ] && ok "unsafe existing content refused (permanent), field untouched" ||
  bad "unsafe content: rc=$rc field='$(field "$j2")'"

"$tool" write lab 999999 admincomment "nsentry:v1;verdict=normal;score=1;model=r1" >/dev/null; rc=$?
[ $rc -eq 5 ] && ok "unknown job reported as not found" || bad "unknown job rc=$rc"

# slurmdbd down: the write fails as retryable (the outbox keeps it).
dbd=$(awk '$1=="slurmdbd"{print $2}' "$LAB/run/pids")
kill "$dbd"; for _ in $(seq 1 100); do kill -0 "$dbd" 2>/dev/null || break; sleep 0.1; done
LSAN_OPTIONS=suppressions=$here/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS} timeout 120 "$tool" write lab "$j2" admincomment "nsentry:v1;verdict=normal;score=1;model=r1" >/dev/null; rc=$?
[ $rc -eq 3 ] && ok "slurmdbd down: retryable failure" || bad "slurmdbd down: rc=$rc"
finish
