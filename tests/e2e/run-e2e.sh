#!/usr/bin/env bash
# End-to-end test on a real single-node Slurm cluster on this machine: munge,
# MariaDB, slurmdbd, slurmctld, slurmd (tests/lab/slurmlab-up.sh), the nsentry
# SPANK plugin, nsentry-sampler and nsentryd. Everything listens on 127.0.0.1,
# state lives in a temp dir, and every process is stopped by its recorded PID.
#
#   tests/e2e/run-e2e.sh [BUILD_DIR]      (default $NS_BUILD_ROOT, then ./build)
#   NSENTRY_E2E_TRAIN=0   skip training a model library on 12 normal jobs of this node first
#   NSENTRY_E2E_KEEP=1    keep the logs in /tmp/nse.*/log
#   NSENTRY_E2E_DEMO=1    stop after the verdicts (the demo: scripts/demo.sh)
#
# Prints "ok - ..." / "not ok - ..." per check, "pending - ..." for checks that
# need a trained model library (detection area), and "N passed, N failed" last.
# Exit 77 (meson: skipped) when not root or the lab scripts are missing.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-${NS_BUILD_ROOT:-$SRC/build}}
LABUP=${NSENTRY_LAB_UP:-$SRC/tests/lab/slurmlab-up.sh}
LABDOWN=${NSENTRY_LAB_DOWN:-$SRC/tests/lab/slurmlab-down.sh}
# Free ports, so that the test can run beside other labs on this machine.
port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }
pick_base() { # first base whose ports base..base+$1-1 are all free
  local n=$1 b i ok; shift
  for b in "$@"; do
    ok=1; for ((i = 0; i < n; i++)); do port_free $((b + i)) || { ok=0; break; }; done
    [ "$ok" = 1 ] && { echo "$b"; return 0; }
  done
  return 1
}
PORT=${NSENTRY_E2E_PORT:-$(pick_base 1 18571 18671 18771 18871 18971)}                  # nsentryd
SLURM_PORTS=${NSENTRY_E2E_SLURM_PORTS:-$(pick_base 4 23817 24817 25817 26817 27817)} # slurmctld, slurmd, slurmdbd, MariaDB

pass=0 fail=0 pending=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
pend() { echo "pending - $*"; pending=$((pending + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else nok "$what"; fi; }
summary() { echo "$pass passed, $fail failed"; }

if [ "$(id -u)" -ne 0 ]; then echo "e2e: needs root (Slurm daemons)"; echo "0 passed, 0 failed"; exit 77; fi
for f in "$LABUP" "$LABDOWN"; do
  [ -f "$f" ] || { echo "e2e: $f missing (service area's lab scripts)"; echo "0 passed, 0 failed"; exit 77; }
done
for f in spank/nsentry_spank.so epilog/nsentry-epilog epilog/nsentry-sampler service/nsentryd service/nsentry; do
  [ -x "$B/$f" ] || { echo "e2e: $B/$f not built"; nok "build: $f"; summary; exit 1; }
done

# A sanitizer build of the plugin cannot load into Slurm's unsanitized
# slurmstepd (the ASan runtime must come first): this test runs on normal builds.
if nm -D "$B/spank/nsentry_spank.so" 2>/dev/null | grep -q '__asan_'; then
  echo "e2e: skipped for a sanitizer build (Slurm cannot load an ASan plugin)"; echo "0 passed, 0 failed"; exit 77
fi
[ -n "$PORT" ] && [ -n "$SLURM_PORTS" ] || { echo "e2e: no free ports"; nok "free ports"; summary; exit 1; }
LAB=$(mktemp -d /tmp/nse.XXXX)   # short: unix socket paths must stay under 108 bytes
chmod 0755 "$LAB"                 # munge and mysql users must reach their sockets inside
SL=$LAB/s
NS=$LAB/ns
mkdir -p "$NS" "$LAB/log" "$LAB/jobs"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  [ -d "$SL" ] && bash "$LABDOWN" --purge "$SL" >"$LAB/log/down.log" 2>&1
  if [ "$fail" -gt 0 ] || [ -n "${NSENTRY_E2E_KEEP:-}" ]; then
    echo "e2e: logs kept in $LAB/log"
    for f in "$LAB"/log/epilog.log "$LAB"/log/nsentryd.log "$LAB"/log/sampler.log "$LAB"/log/doctor.log; do
      [ -f "$f" ] && { echo "---- $f (tail)"; tail -n 20 "$f"; }
    done
  else
    rm -rf "$LAB"
  fi
}
trap cleanup EXIT

# The plugin is 'required' here so that a broken plugin fails loudly (sites use 'optional').
cat >"$LAB/plugstack.conf" <<EOF
required $B/spank/nsentry_spank.so spool_dir=$NS epilog=$B/epilog/nsentry-epilog conf=$LAB/nsentry.conf log=$LAB/log/epilog.log
EOF
if ! bash "$LABUP" --with-dbd --no-install --fix-hosts --no-smoke --port-base "$SLURM_PORTS" \
    --plugstack "$LAB/plugstack.conf" "$SL" \
    >"$LAB/log/up.log" 2>&1; then
  nok "slurm lab up (see $LAB/log/up.log)"
  tail -n 30 "$LAB/log/up.log"
  summary
  exit 1
fi
ok "slurm lab up (slurmdbd, slurmctld, slurmd, plugin loaded)"
# shellcheck disable=SC1091
source "$SL/env.sh"
MUNGE_SOCK=${SLURMLAB_MUNGE_SOCKET:-$(sed -n 's/^AuthInfo=socket=//p' "$SLURM_CONF" | head -n1)}

write_conf() { # $1 = epilog_source, $2 = prometheus_url
  cat >"$LAB/nsentry.conf" <<EOF
cluster_name = lab
db = sqlite:$LAB/nsentry.db
listen_addr = 127.0.0.1
listen_port = $PORT
slurm_conf = $SLURM_CONF
spool_dir = $NS
sampler_interval = 1s
service_url = http://127.0.0.1:$PORT
munge_socket = $MUNGE_SOCK
epilog_timeout = 5s
epilog_source = ${1:-spool}
prometheus_url = ${2:-http://127.0.0.1:19090}
# short jobs at 1 s: preprocessing and model sized for them
prep_interval = 1s
prep_max_gap = 5s
prep_min_segment = 8s
match_len = 20s
model_window = 8
model_batch = 8
model_epochs = 15
clust_k_max = 3
detect_window = 60s
detect_level_min_duration = 2s
# at 1 s sampling a single-sample blip is noise, not a verdict
detect_min_interval = 3s
# nsentryd, the DB and the Slurm daemons share this one node: node-wide state
# they move (commit charge, load averages that still carry the previous job,
# hypervisor steal) describes the lab, not the job being judged
prep_exclude = load*,mem_committed,cpu_steal
EOF
}
write_conf spool

"$B/epilog/nsentry-sampler" -c "$LAB/nsentry.conf" --flush-every 2s >"$LAB/log/sampler.log" 2>&1 &
SAMPLER=$!
PIDS+=("$SAMPLER")
NSD=
start_nsentryd() {
  "$B/service/nsentryd" -c "$LAB/nsentry.conf" >>"$LAB/log/nsentryd.log" 2>&1 &
  NSD=$!
  PIDS+=("$NSD")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done
  return 1
}
stop_nsentryd() {
  kill "$NSD" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$NSD" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$NSD" 2>/dev/null
}
check "nsentryd up on 127.0.0.1:$PORT" start_nsentryd
sleep 2 # a couple of sampler ticks before the first job
check "sampler running and spooling" test -n "$(ls -A "$NS/ring" 2>/dev/null)"
doctor() { "$B/service/nsentry" -c "$LAB/nsentry.conf" doctor "$@" >>"$LAB/log/doctor.log" 2>&1; }
check "nsentry doctor --node: plugin loaded in slurmd, sampler, spool all fine" \
  doctor --node --plugstack "$SL/etc/plugstack.conf"
check "nsentry doctor --site: MUNGE, nsentryd, DB, verdict writer all fine" doctor --site

node_idle() { local s; s=$(sinfo -h -n localhost -o %T); [ "$s" = idle ] || [ "$s" = mixed ] || [ "$s" = allocated ]; }
not_drained() { ! sinfo -h -n localhost -o %T | grep -qiE 'drain|down|fail'; }
wait_done() { # job id -> 0 when it left squeue (60 s)
  for _ in $(seq 600); do [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0; sleep 0.1; done
  return 1
}
submit() { (cd "$LAB/jobs" && sbatch --parsable --exclusive "$@"); }
job_json() { curl -sf "http://127.0.0.1:$PORT/v1/jobs/lab/$1"; }
has_segment() { # job id -> nsentryd knows the job with node localhost reported (30 s)
  for _ in $(seq 300); do job_json "$1" 2>/dev/null | grep -q '"node":[[:space:]]*"localhost"' && return 0; sleep 0.1; done
  return 1
}
epilog_line() { grep -E "job $1 on localhost: (shipped|\[)" "$LAB/log/epilog.log" | tail -n1; }
window_of() { epilog_line "$1" | grep -oE '\[[0-9]+, [0-9]+\]' | tr -d '[],'; }
sacct_epoch() { # job field -> epoch seconds
  local v; v=$(sacct -j "$1" -X -n -P -o "$2" | head -n1)
  date -d "$v" +%s 2>/dev/null
}
marks_match_sacct() { # start/end marks within 1 s of sacct Start/End
  local j=$1 w s e ss se
  w=$(window_of "$j"); s=${w% *}; e=${w#* }
  [ -n "$s" ] && [ -n "$e" ] || { echo "  no window logged for job $j"; return 1; }
  for _ in $(seq 50); do ss=$(sacct_epoch "$j" Start); se=$(sacct_epoch "$j" End); [ -n "$se" ] && break; sleep 0.1; done
  local ds=$(((s / 1000) - ss)) de=$(((e / 1000) - se))
  echo "  job $j: marks $s..$e ms, sacct $ss..$se s (diff ${ds#-} s, ${de#-} s)"
  [ "${ds#-}" -le 1 ] && [ "${de#-}" -le 1 ]
}
verdict_of() { sacct -j "$1" -X -n -P -o AdminComment | head -n1; }

# ---- 0. train a model library on 12 of this node's own normal jobs (NSENTRY_E2E_TRAIN=0
# skips it); the verdict checks below run whenever nsentryd has a library.
# As in production, the library is trained from history recorded while the
# service already ran with an earlier library: nsentryd shares this node, and
# loading a library and scoring change node-wide memory (mapped, anonymous)
# that the jobs judged afterwards see. So a warm-up library from 4 jobs comes
# first, and the real one is trained on the 12 jobs that ran beside it.
train_library() { # [--from TIME] -> 0 when trained and loaded by nsentryd
  local want
  "$B/service/nsentry" -c "$LAB/nsentry.conf" prep --from-ingest --cluster lab >>"$LAB/log/train.log" 2>&1 &&
    "$B/service/nsentry" -c "$LAB/nsentry.conf" train --cluster lab "$@" >>"$LAB/log/train.log" 2>&1 || return 1
  want=$("$B/service/nsentry" -c "$LAB/nsentry.conf" library 2>/dev/null | awk '$3 == "yes" {print $2; exit}')
  kill -HUP "$NSD"
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" | grep -q "\"library\":[[:space:]]*\"${want:-r}" && return 0
    sleep 0.1
  done
  return 1
}
run_normal() { # n jobs of 20-24 s
  local i T
  for i in $(seq "$1"); do T=$(submit --wrap "sleep $((20 + i % 3 * 2))"); wait_done "$T"; has_segment "$T" || true; done
}
LEN=6
if [ "${NSENTRY_E2E_TRAIN:-1}" != 0 ]; then
  LEN=22
  run_normal 4
  train_library || echo "  warm-up library not trained (see $LAB/log/train.log); going on"
  FROM=$(date -u +%Y-%m-%dT%H:%M:%S)
  run_normal 12
  # The shipped segments become raw telemetry, preprocessing is fitted on
  # them, and the library is trained on the job segments since $FROM.
  if train_library --from "$FROM"; then
    ok "trained a model library on 12 normal jobs"
  else
    nok "training a model library (see $LAB/log/train.log)"
  fi
fi

# ---- 1. a normal job, an injected job (CPU and memory hog beside the workload), a skipped job
J1=$(submit --nsentry-tag=e2e-normal --wrap "sleep $LEN")
wait_done "$J1"
J2=$(submit --nsentry-tag=e2e-hog --wrap "stress-ng --cpu 0 --vm 1 --vm-bytes 25% --hdd 1 --hdd-bytes 128M --timeout ${LEN}s --quiet & sleep $LEN; wait")
wait_done "$J2"
J3=$(submit --nsentry-skip --wrap 'sleep 2')
wait_done "$J3"
check "job $J1 (normal) segment arrived in nsentryd" has_segment "$J1"
check "job $J2 (injected) segment arrived in nsentryd" has_segment "$J2"
check "job $J1 SPANK marks within 1 s of sacct Start/End" marks_match_sacct "$J1"
check "job $J2 SPANK marks within 1 s of sacct Start/End" marks_match_sacct "$J2"
sleep 1
check "--nsentry-skip job $J3: no marks, no epilog run" bash -c "[ ! -e '$NS/marks/$J3' ] && ! grep -q 'job $J3 ' '$LAB/log/epilog.log'"
check "--nsentry-skip job $J3: nsentryd has no segment" bash -c "! curl -sf http://127.0.0.1:$PORT/v1/jobs/lab/$J3 | grep -q localhost"
check "--nsentry-skip job $J3: no verdict in AdminComment" test -z "$(verdict_of "$J3")"
check "node not drained after normal jobs" not_drained

# ---- verdicts (need a trained model library loaded by nsentryd)
if curl -sf "http://127.0.0.1:$PORT/healthz" | grep -q '"library":[[:space:]]*"'; then
  wait_verdict() { for _ in $(seq 600); do v=$(verdict_of "$1"); [ -n "$v" ] && { echo "$v"; return; }; sleep 0.1; done; }
  v1=$(wait_verdict "$J1"); v2=$(wait_verdict "$J2")
  echo "  AdminComment: $J1='$v1' $J2='$v2'"
  # token: nsentry:v1;verdict=<normal|anomalous>;score=...
  check "job $J1 verdict normal in sacct AdminComment" bash -c "echo '$v1' | grep -qi 'verdict=normal'"
  check "job $J2 verdict anomalous in sacct AdminComment" bash -c "echo '$v2' | grep -qi 'verdict=anomalous'"
  s1=$(echo "$v1" | grep -o 'score=[0-9.]*' | cut -d= -f2); s2=$(echo "$v2" | grep -o 'score=[0-9.]*' | cut -d= -f2)
  check "injected job $J2 scores above normal job $J1 ($s2 > $s1)" awk -v a="$s2" -v b="$s1" 'BEGIN { exit !(a > b) }'
  "$B/service/nsentry" -c "$LAB/nsentry.conf" sacct -X -P -j "$J1,$J2" -o JobID >"$LAB/log/nsentry-sacct.txt" 2>&1
  check "nsentry sacct: job $J1 normal" grep -qiE "^$J1\|.*normal" "$LAB/log/nsentry-sacct.txt"
  check "nsentry sacct: job $J2 anomalous" grep -qiE "^$J2\|.*anomalous" "$LAB/log/nsentry-sacct.txt"
  echo "  nsentry sacct -X -j $J1,$J2,$J3 (normal, injected CPU+memory hog, --nsentry-skip):"
  "$B/service/nsentry" -c "$LAB/nsentry.conf" sacct -X -j "$J1,$J2,$J3" -o JobID,JobName%12,State,Elapsed 2>&1 |
    sed 's/^/    /'
else
  pend "verdict normal/anomalous in sacct AdminComment and nsentry sacct: nsentryd has no trained model library"
fi
# The demo (scripts/demo.sh) stops here; the test goes on with failure cases.
if [ "${NSENTRY_E2E_DEMO:-0}" = 1 ]; then
  summary
  [ "$fail" -eq 0 ]
  exit
fi

# ---- 2. service down at job end: the segment is spooled, then delivered after restart
stop_nsentryd
J4=$(submit --wrap "sleep $LEN")
wait_done "$J4"
queued() { compgen -G "$NS/outbox/*-lab.$1.localhost.json" >/dev/null; }
for _ in $(seq 100); do queued "$J4" && break; sleep 0.1; done
check "service down: job $J4 segment queued in the outbox" queued "$J4"
check "service down: node not drained" not_drained
check "service down: marks consumed (nothing left behind)" test ! -e "$NS/marks/$J4"
check "service down: nsentry doctor --site reports it" bash -c "! '$B/service/nsentry' -c '$LAB/nsentry.conf' doctor --site | tee -a '$LAB/log/doctor.log' | grep -q '^ok   service'"
check "nsentryd restarted" start_nsentryd
# the sampler retries the outbox every 2 s here (60 s by default)
check "after restart: job $J4 segment delivered by the sampler's retry" has_segment "$J4"
check "after restart: outbox empty, nothing dropped" \
  bash -c "! compgen -G '$NS/outbox/*.json' >/dev/null && [ ! -s '$NS/outbox/dropped' ]"
if curl -sf "http://127.0.0.1:$PORT/healthz" | grep -q '"library":[[:space:]]*"'; then
  for _ in $(seq 300); do [ -n "$(verdict_of "$J4")" ] && break; sleep 0.1; done
  check "after restart: job $J4 has a verdict" test -n "$(verdict_of "$J4")"
else
  pend "after restart: job $J4 verdict (needs a trained model library)"
fi

# ---- 3. telemetry source down (Prometheus unreachable): nothing shipped, node fine
write_conf prometheus http://127.0.0.1:9
J5=$(submit --wrap 'sleep 2')
wait_done "$J5"
for _ in $(seq 80); do grep -q "job $J5: cutting" "$LAB/log/epilog.log" && break; sleep 0.1; done
check "telemetry source down: epilog logged the failure for job $J5" grep -q "job $J5: cutting" "$LAB/log/epilog.log"
check "telemetry source down: node not drained" not_drained
write_conf spool

# ---- 4. accounting DB down (slurmdbd stopped): jobs still run, node fine
DBD=$(awk '$1 == "slurmdbd" {print $2}' "$SL/run/pids" 2>/dev/null | tail -n1)
if [ -n "$DBD" ] && kill -0 "$DBD" 2>/dev/null; then
  kill "$DBD"
  for _ in $(seq 100); do kill -0 "$DBD" 2>/dev/null || break; sleep 0.1; done
  J6=$(submit --wrap 'sleep 2')
  wait_done "$J6"
  check "slurmdbd down: job $J6 segment still arrives in nsentryd" has_segment "$J6"
  check "slurmdbd down: node not drained" not_drained
else
  nok "slurmdbd pid not found in $SL/run/pids"
fi

check "no 'Epilog error' or SPANK failure in slurmd's log" bash -c "! grep -qiE 'epilog error|spank.*(fail|error).*nsentry_spank' '$SL/log/slurmd.log'"
check "node idle at the end" node_idle
check "sampler still running" kill -0 "$SAMPLER"
summary
[ "$fail" -eq 0 ]
