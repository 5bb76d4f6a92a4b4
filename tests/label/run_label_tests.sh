#!/usr/bin/env bash
# nsentry-label end-to-end tests: headless keystroke scripts compared with
# golden screens (tests/label/golden/*.screen), database checks after edits,
# bad-input cases, and the real binary in tmux.
#   run_label_tests.sh LABEL_EXE MKDB_EXE
# NS_UPDATE_GOLDEN=1 rewrites the golden screens instead of comparing.
set -uo pipefail
LABEL=$1
MKDB=$2
HERE=$(cd "$(dirname "$0")" && pwd)
GOLD=$HERE/golden
TMP=$(mktemp -d /tmp/nslabel.XXXXXX)
trap 'tmux -L nslabel kill-server 2>/dev/null; rm -rf "$TMP"' EXIT
export USER=tester LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm NSENTRY_CONF=/dev/null
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

fresh_db() { rm -f "$TMP/l.db"*; "$MKDB" "sqlite:$TMP/l.db" "$@" || { echo "mkdb failed"; exit 1; }; }
run_script() {  # name, size, script text
  local name=$1 size=$2
  mkdir -p "$TMP/out/$name"
  printf '%s\n' "$3" > "$TMP/$name.keys"
  timeout 60 "$LABEL" --db "sqlite:$TMP/l.db" --script "$TMP/$name.keys" --size "$size" --dump-dir "$TMP/out/$name"
}
compare() {  # script name, screen name
  local got=$TMP/out/$1/$2.screen want=$GOLD/$1-$2.screen
  if [ "${NS_UPDATE_GOLDEN:-0}" = 1 ]; then cp "$got" "$want"; ok "golden $1/$2 updated"; return; fi
  if [ ! -f "$got" ]; then bad "screen $1/$2 was not dumped"; return; fi
  if diff -u "$want" "$got" > "$TMP/diff"; then ok "screen $1/$2 matches golden"
  else bad "screen $1/$2 differs from golden:"; head -40 "$TMP/diff"; fi
}
q() { sqlite3 "$TMP/l.db" "$1"; }

# --- main views ---
fresh_db
run_script views 100x30 '
:dump jobs
f
:dump jobs-anomalous
f
:dump jobs-unlabelled
ff
s
:dump jobs-by-time
s
s
<Enter>
:dump nodes
<Enter>
:dump segment
m
j<Space>
:dump metrics
q
:dump segment-more
q
q
?
:dump help
q
C
:dump clusters
<Enter>
:dump members
Q'
check "views script exits 0" "[ $? -eq 0 ]"
for s in jobs jobs-anomalous jobs-unlabelled jobs-by-time nodes segment metrics segment-more help clusters members; do
  compare views $s
done

# --- labelling: next interval, mark a range, label it, then delete a label ---
fresh_db
run_script labelling 100x30 '
x
:dump next
v
lll
a
disk full<Enter>
:dump labelled
hhhhhhhhhh
n<Esc>
:dump cancelled
Q'
check "labelling script exits 0" "[ $? -eq 0 ]"
compare labelling next
compare labelling labelled
compare labelling cancelled
check "one expert label written" "[ \"\$(q \"SELECT COUNT(*) FROM labels WHERE source='expert'\")\" = 1 ]"
row=$(q "SELECT node, job_id, label, author, note, end_ms - start_ms FROM labels WHERE source='expert'")
check "label row has node, job, value, author, note and a 3-step range ($row)" "[ \"$row\" = 'cn01|101|1|tester|disk full|45000' ]"

run_script unlabel 100x30 '
<Enter>
<Enter>
x
d
:dump deleted
Q'
check "label deleted" "[ \"\$(q \"SELECT COUNT(*) FROM labels WHERE source='expert'\")\" = 0 ]"
compare unlabel deleted

# --- cluster adjustment ---
fresh_db
seg=$(q "SELECT segment_id FROM cluster_members WHERE cluster_id=1 ORDER BY distance DESC LIMIT 1")
run_script move 100x30 '
C
<Enter>
j
M
2<Enter>
:dump moved
q
:dump clusters-after
Q'
check "move script exits 0" "[ $? -eq 0 ]"
check "segment $seg now in cluster 2" "[ \"\$(q \"SELECT cluster_id FROM cluster_members WHERE segment_id=$seg\")\" = 2 ]"
check "sizes recomputed" "[ \"\$(q 'SELECT size FROM clusters ORDER BY id' | tr '\n' ' ')\" = '1 2 ' ]"
check "both models marked for retraining" "[ \"\$(q 'SELECT SUM(needs_retrain) FROM models')\" = 2 ]"
check "centroids recomputed" "[ \"\$(q 'SELECT COUNT(*) FROM clusters WHERE centroid IS NOT NULL')\" = 2 ]"
compare move moved
fresh_db
run_script move-bad 100x30 '
C
<Enter>
M
999<Enter>
:dump unknown-target
M
abc<Enter>
:dump not-a-number
Q'
compare move-bad unknown-target
compare move-bad not-a-number
run_script move-new 100x30 '
C
<Enter>
M
new<Enter>
:dump new-cluster
Q'
check "move to a new cluster creates it with a model to train" "[ \"\$(q \"SELECT COUNT(*) FROM clusters c JOIN models m ON m.cluster_id=c.id WHERE c.label LIKE 'manual-%' AND m.needs_retrain=1\")\" = 1 ]"

# --- bad input ---
fresh_db empty
run_script empty 100x30 '
:dump jobs
<Enter>
C
:dump clusters
Q'
check "empty database handled" "[ $? -eq 0 ]"
compare empty jobs
compare empty clusters
fresh_db
run_script nosegments 100x30 '
jj
<Enter>
:dump nodes
<Enter>
:dump still-nodes
Q'
compare nosegments nodes
check "job without segments: Enter stays on the list" "cmp -s $TMP/out/nosegments/nodes.screen $TMP/out/nosegments/still-nodes.screen"
run_script tiny 40x10 '
:dump tiny
<Enter>
:resize 100x30
:dump resized
Q'
check "tiny terminal handled" "[ $? -eq 0 ]"
compare tiny tiny
compare tiny resized
"$LABEL" --db "sqlite:$TMP/missing.db" --script /dev/null 2>"$TMP/err"
check "missing database: exit 1 with a message" "[ $? -eq 1 ] && grep -q 'does not exist' $TMP/err"
printf 'j<Bogus>\n' > "$TMP/bad.keys"
"$LABEL" --db "sqlite:$TMP/l.db" --script "$TMP/bad.keys" 2>"$TMP/err"
check "bad script: exit 1 naming line and column" "[ $? -eq 1 ] && grep -q 'line 1 column 2' $TMP/err"
"$LABEL" --db "sqlite:$TMP/l.db" --size 10 2>"$TMP/err"
check "bad --size rejected" "[ $? -eq 2 ] && grep -q COLSxROWS $TMP/err"

# --- the same screens on PostgreSQL (when the test server is up) ---
if [ -n "${NS_TEST_PG_URI:-}" ] && command -v psql >/dev/null; then
  pgdb=nslabel_$$
  psql -q "$NS_TEST_PG_URI" -c "DROP DATABASE IF EXISTS $pgdb" -c "CREATE DATABASE $pgdb" >/dev/null
  pguri="${NS_TEST_PG_URI%/*}/$pgdb"
  if "$MKDB" "$pguri"; then
    printf '%s\n' ':dump jobs' '<Enter>' ':dump nodes' '<Enter>' ':dump segment' 'q' 'q' 'C' '<Enter>' ':dump members' 'Q' \
      > "$TMP/pg.keys"
    mkdir -p "$TMP/out/pg"
    timeout 60 "$LABEL" --db "$pguri" --script "$TMP/pg.keys" --size 100x30 --dump-dir "$TMP/out/pg"
    check "postgres: script exits 0" "[ $? -eq 0 ]"
    for s in jobs nodes segment members; do
      check "postgres: screen $s equals the SQLite golden" "cmp -s $GOLD/views-$s.screen $TMP/out/pg/$s.screen"
    done
    printf '%s\n' '<Enter>' '<Enter>' 'x' 'v' 'a' 'pg note<Enter>' 'Q' > "$TMP/pg2.keys"
    timeout 60 "$LABEL" --db "$pguri" --script "$TMP/pg2.keys" --size 100x30
    n=$(psql -qtA "$pguri" -c "SELECT COUNT(*) FROM labels WHERE source='expert' AND note='pg note'")
    check "postgres: label written ($n)" "[ \"$n\" = 1 ]"
  else
    bad "postgres: fixture database could not be built"
  fi
  psql -q "$NS_TEST_PG_URI" -c "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1
else
  echo "skip - postgres variant (NS_TEST_PG_URI not set; scripts/test.sh starts a server)"
fi

# --- the real binary in tmux: drive, lose the database, quit cleanly ---
if command -v tmux >/dev/null; then
  fresh_db
  T="tmux -L nslabel"
  $T new-session -d -s t -x 100 -y 30 "stty -g > $TMP/stty.before; $LABEL --db sqlite:$TMP/l.db; echo rc=\$? > $TMP/rc; stty -g > $TMP/stty.after; sleep 30"
  sleep 1
  $T capture-pane -p -t t > "$TMP/pane1"
  check "tmux: jobs list drawn" "grep -q 'nsentry-label  jobs (3 of 3)' $TMP/pane1"
  $T send-keys -t t Enter; sleep 0.5; $T send-keys -t t Enter; sleep 0.5
  $T capture-pane -p -t t > "$TMP/pane2"
  check "tmux: segment chart drawn with braille" "grep -q 'anomaly score' $TMP/pane2 && LC_ALL=C grep -q \$'\\xe2[\\xa0-\\xa3]' $TMP/pane2"
  mv "$TMP/l.db" "$TMP/gone.db"
  $T send-keys -t t v a; sleep 0.5; $T send-keys -t t Enter; sleep 0.5
  $T capture-pane -p -t t > "$TMP/pane3"
  check "tmux: vanished database reported, no crash" "grep -q 'has disappeared' $TMP/pane3"
  $T send-keys -t t Q; sleep 1
  check "tmux: exits 0" "grep -q 'rc=0' $TMP/rc"
  check "tmux: terminal settings restored" "cmp -s $TMP/stty.before $TMP/stty.after"
  $T kill-server 2>/dev/null
else
  bad "tmux missing (scripts/install-deps.sh installs it)"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
