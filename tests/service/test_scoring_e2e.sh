#!/usr/bin/env bash
# Scoring end to end with a real, trained model library: `nsentry demo` trains
# one on a synthetic cluster; nsentryd (private munged) scores the demo jobs'
# raw telemetry posted as the epilog ships it. Then the crash test with
# scoring: kill -9 during a burst of ingests, restart, and every segment that
# got 201 must end up in a final, scored job verdict.
#   test_scoring_e2e.sh NSENTRY NSENTRYD SVC_TOOL
set -uo pipefail
nsentry=${1:?} nsentryd=${2:?} tool=${3:?}
pass=0 fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }
if [ "$(id -u)" -ne 0 ] || ! command -v munged >/dev/null; then
  echo "skip: needs root and munge"; echo "0 passed, 0 failed"; exit 77
fi
W=$(mktemp -d /tmp/nse2e.XXXXXX)
chmod 755 "$W"
mpid='' dpid=''
cleanup() {
  [ -n "$dpid" ] && kill -9 "$dpid" 2>/dev/null
  [ -n "$mpid" ] && kill "$mpid" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
export NSENTRY_CONF=/dev/null

if ! "$nsentry" demo --nodes 4 --days 1 --dir "$W/demo" --keep >"$W/demo.log" 2>&1; then
  tail -5 "$W/demo.log"
  if ldd "$nsentry" 2>/dev/null | grep -q libasan; then
    # Known: the sanitizer build of `nsentry demo` fails in prep ("out of memory"),
    # outside this area; the service parts here still run under ASan with a normal build's demo.
    echo "skip: nsentry demo failed in this sanitizer build; no library to score with"
    echo "$pass passed, $fail failed"; exit 77
  fi
  bad "nsentry demo could not train a library"; finish
fi
db="sqlite:$W/demo/nsentry.db"
"$nsentry" --db "$db" library | grep -q ' yes ' && ok "a model library is active" || { bad "no active library"; finish; }

mkdir -p "$W/m" && mungekey -c -k "$W/m/munge.key" && chown -R munge:munge "$W/m" && chmod 0755 "$W/m" &&
  chmod 0400 "$W/m/munge.key"
runuser -u munge -- munged --socket="$W/m/munge.socket" --key-file="$W/m/munge.key" --pid-file="$W/m/munged.pid" \
  --log-file="$W/m/munged.log" --seed-file="$W/m/munged.seed" || { bad "munged"; finish; }
for _ in $(seq 1 100); do [ -s "$W/m/munged.pid" ] && break; sleep 0.05; done
mpid=$(cat "$W/m/munged.pid")

# Bodies as the epilog ships them, for every job-node of the demo cluster.
mkdir -p "$W/bodies"
n=0
while IFS='|' read -r job nodes; do
  IFS=, read -ra list <<<"$nodes"
  for node in "${list[@]}"; do
    "$tool" rawjson "$db" demo "$job" "$node" "${#list[@]}" >"$W/bodies/$job.$node.json" 2>/dev/null && n=$((n + 1))
  done
done < <(sqlite3 "$W/demo/nsentry.db" "SELECT job_id, nodelist FROM jobs WHERE cluster = 'demo' ORDER BY job_id")
[ "$n" -ge 4 ] && ok "$n job-node bodies cut from the demo's raw telemetry" || { bad "only $n bodies"; finish; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start() {
  "$nsentryd" -s db="$db" -s listen_port="$port" -s munge_socket="$W/m/munge.socket" -s verdict_field=none -s job_grace=2s \
    >>"$W/nsentryd.log" 2>&1 &
  dpid=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.05; done
  return 1
}
post() { # FILE -> HTTP code
  local h c
  h=$(sha256sum "$1" | cut -d' ' -f1)
  c=$(printf %s "$h" | munge -S "$W/m/munge.socket")
  curl -s -o /dev/null -w '%{http_code}' -H "X-Munge-Credential: $c" --data-binary @"$1" \
    "http://127.0.0.1:$port/v1/segments"
}
job_json() { curl -s "http://127.0.0.1:$port/v1/jobs/demo/$1"; }
wait_final() { # JOB -> 0 when final
  for _ in $(seq 1 600); do job_json "$1" | grep -q '"status":"final"' && return 0; sleep 0.1; done
  return 1
}

start || { bad "nsentryd did not start"; cat "$W/nsentryd.log"; finish; }
curl -s "http://127.0.0.1:$port/healthz" | grep -q '"library":"r' && ok "nsentryd loaded the library" || bad "healthz: $(curl -s "http://127.0.0.1:$port/healthz")"

# 1. One job, all its nodes: a final verdict with a token from the model.
# (New job ids: the demo's own segments of these jobs are already stored.)
first=$(ls "$W/bodies" | head -1); orig=${first%%.*}; job=e-$orig
for f in "$W"/bodies/"$orig".*.json; do
  sed "s/\"job_id\":\"$orig\"/\"job_id\":\"$job\"/" "$f" >"$W/one.json"
  [ "$(post "$W/one.json")" = 201 ] || bad "post $f"
done
if wait_final "$job"; then
  j=$(job_json "$job")
  echo "$j" | grep -qE '"verdict":"(normal|anomalous)"' && echo "$j" | grep -q '"token":"nsentry:v1;verdict=' &&
    echo "$j" | grep -q '"model_version":"r' && ok "job $job scored: $(echo "$j" | grep -o '"token":"[^"]*"')" ||
    bad "job $job: $j"
else
  bad "job $job never became final: $(job_json "$job")"
fi

# 2. Crash with scoring: a burst of copies of every body, kill -9 half way.
mkdir -p "$W/burst" "$W/codes"
for rep in 1 2 3 4; do
  for f in "$W"/bodies/*.json; do
    b=$(basename "$f")
    sed "s/\"job_id\":\"\([0-9]*\)\"/\"job_id\":\"c$rep-\1\"/" "$f" >"$W/burst/c$rep-$b"
  done
done
total=$(ls "$W/burst" | wc -l)
export -f post
export W port
(cd "$W/burst" && find . -name '*.json' -printf '%f\0' | xargs -0 -P 6 -I{} bash -c 'post "$W/burst/{}" > "$W/codes/{}"') &
burst=$!
for _ in $(seq 1 400); do [ "$(grep -l 201 "$W"/codes/* 2>/dev/null | wc -l)" -ge $((total / 3)) ] && break; sleep 0.02; done
kill -9 "$dpid"; wait "$dpid" 2>/dev/null; dpid=
wait "$burst"
acked=$(grep -l 201 "$W"/codes/* 2>/dev/null | wc -l)
echo "burst: $total sent, $acked acknowledged before kill -9"
[ "$acked" -gt 0 ] && [ "$acked" -lt "$total" ] && ok "kill -9 landed mid-burst ($acked/$total acknowledged)" ||
  bad "kill -9 timing: $acked/$total acknowledged"
start || { bad "restart after kill -9"; finish; }
lost=0 unscored=0
for c in $(grep -l 201 "$W"/codes/*); do
  b=$(basename "$c"); job=${b%%.*}; node=${b#*.}; node=${node%.json}
  if ! wait_final "$job"; then
    # Jobs whose other nodes were never acknowledged finalise after job_grace;
    # the acknowledged node itself must be scored already.
    j=$(job_json "$job")
    echo "$j" | grep -q "\"node\":\"$node\",\"queue_state\":\"done\",\"verdict\":\"" || { unscored=$((unscored + 1)); echo "unscored: $j"; }
    continue
  fi
  j=$(job_json "$job")
  echo "$j" | grep -q "\"node\":\"$node\"" || { lost=$((lost + 1)); echo "lost: $job $node"; }
  echo "$j" | grep -q "\"node\":\"$node\",\"queue_state\":\"done\",\"verdict\":\"" || { unscored=$((unscored + 1)); echo "unscored: $j"; }
done
[ "$lost" -eq 0 ] && ok "every acknowledged segment is present after kill -9 + restart" || bad "$lost acknowledged segments lost"
[ "$unscored" -eq 0 ] && ok "every acknowledged segment was scored after restart" || bad "$unscored acknowledged segments not scored"
kill "$dpid"; wait "$dpid"; rc=$?; dpid=
[ $rc -eq 0 ] && ok "clean stop" || bad "exit status $rc"

# 3. Two nsentryd processes on one PostgreSQL split the queue, each segment scored once.
if [ -z "${NS_TEST_PG_URI:-}" ] || ! command -v psql >/dev/null; then
  echo "skip: NS_TEST_PG_URI not set (scripts/test-hooks/pg.up): no two-process PostgreSQL check"
  finish
fi
pgname="nse2e_$$"
pguri="${NS_TEST_PG_URI%/*}/$pgname"
psql -q "$NS_TEST_PG_URI" -c "CREATE DATABASE $pgname" || { bad "create database"; finish; }
pgdrop() { psql -q "$NS_TEST_PG_URI" -c "DROP DATABASE IF EXISTS $pgname WITH (FORCE)" >/dev/null 2>&1; }
trap 'for p in $dpids; do kill -9 "$p" 2>/dev/null; done; pgdrop; cleanup' EXIT
dpids=
{ "$nsentry" --db "$pguri" -s cluster_name=demo synth --format db --nodes 4 --days 1 &&
  "$nsentry" --db "$pguri" -s cluster_name=demo prep --cluster demo &&
  "$nsentry" --db "$pguri" -s cluster_name=demo train --cluster demo --split any; } >"$W/pgtrain.log" 2>&1 ||
  { bad "training a library on PostgreSQL"; tail -5 "$W/pgtrain.log"; finish; }
mkdir -p "$W/pgb"
while IFS='|' read -r job nodes; do
  IFS=, read -ra list <<<"$nodes"
  for node in "${list[@]}"; do
    for rep in 1 2 3; do
      "$tool" rawjson "$pguri" demo "$job" "$node" "${#list[@]}" 2>/dev/null |
        sed "s/\"job_id\":\"$job\"/\"job_id\":\"p$rep-$job\"/" >"$W/pgb/p$rep-$job.$node.json"
    done
  done
done < <(psql -At -F'|' "$pguri" -c "SELECT job_id, nodelist FROM jobs WHERE cluster = 'demo' ORDER BY job_id")
ports=()
for i in 1 2; do
  p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$nsentryd" -s db="$pguri" -s listen_port="$p" -s munge_socket="$W/m/munge.socket" -s verdict_field=none \
    -s job_grace=2s -s workers=2 >>"$W/nsentryd-pg$i.log" 2>&1 &
  dpids="$dpids $!"
  ports+=("$p")
done
for p in "${ports[@]}"; do
  for _ in $(seq 1 200); do curl -s "http://127.0.0.1:$p/healthz" | grep -q '"library":"r' && break; sleep 0.05; done
done
sent=0 i=0
for f in "$W"/pgb/*.json; do
  port=${ports[$((i % 2))]}; i=$((i + 1))
  [ "$(post "$f")" = 201 ] && sent=$((sent + 1))
done
[ "$sent" -eq "$i" ] && ok "$sent segments accepted by two nsentryd processes" || bad "$sent of $i accepted"
port=${ports[0]}
pending=1
for _ in $(seq 1 600); do
  pending=$(psql -At "$pguri" -c "SELECT COUNT(*) FROM score_queue WHERE state IN ('pending', 'leased')")
  [ "$pending" = 0 ] && break; sleep 0.1
done
scored=0 each=
for p in "${ports[@]}"; do
  c=$(curl -s "http://127.0.0.1:$p/metrics" | awk '/^nsentry_scoring_seconds_count/{print $2}')
  scored=$((scored + c)); each="$each $c"
done
done_n=$(psql -At "$pguri" -c "SELECT COUNT(*) FROM score_queue WHERE state = 'done'")
[ "$pending" = 0 ] && [ "$scored" -eq "$sent" ] && [ "$done_n" -eq "$sent" ] &&
  ok "each of $sent segments scored exactly once (per process:$each)" ||
  bad "pending=$pending scored=$scored done=$done_n sent=$sent (per process:$each)"
for p in $dpids; do kill "$p"; wait "$p" || bad "nsentryd $p exit status"; done
dpids=
finish
