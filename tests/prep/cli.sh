#!/usr/bin/env bash
# CLI checks for `nsentry synth`, `nsentry prep` and `nsentry demo`.
# usage: cli.sh PATH/TO/nsentry
set -u
NS=${1:?nsentry binary}
T=$(mktemp -d /tmp/ns_prep_cli_XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# expect RC OUTFILE-PATTERN -- command...
expect() {
  local want=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$want" ]; then bad "$* -> rc $rc, want $want: $out"; return; fi
  if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then bad "$* -> output lacks /$pat/: $out"; return; fi
  ok
}

# Bad options are refused with a message naming the problem.
expect 2 "--format" "$NS" synth --nodes 2
expect 2 "unknown --format" "$NS" synth --format xml --out "$T/x"
expect 2 "needs --out" "$NS" synth --format ldms
expect 2 "--nodes" "$NS" synth --nodes 0 --format ldms --out "$T/x"
expect 2 "--anomaly-ratio" "$NS" synth --anomaly-ratio 2 --format ldms --out "$T/x"
expect 2 "--metrics" "$NS" synth --metrics 99999 --format ldms --out "$T/x"
expect 2 "not a time" "$NS" --db "sqlite:$T/a.db" prep --train-until yesterday
expect 2 "unexpected" "$NS" --db "sqlite:$T/a.db" prep extra
expect 0 "usage" "$NS" prep --help
expect 0 "usage" "$NS" synth --help
# Nothing imported: prep fails cleanly.
expect 1 "no (training|raw)|no data" "$NS" --db "sqlite:$T/a.db" prep --cluster none

# synth straight into a DB, then prep, twice (second run loads the parameters).
expect 0 "wrote" "$NS" --db "sqlite:$T/b.db" synth --nodes 3 --days 0.5 --cluster c --format db
expect 0 "segments +[1-9]" "$NS" --db "sqlite:$T/b.db" prep --cluster c --train-until 2026-01-05T08:00:00
out=$("$NS" --db "sqlite:$T/b.db" prep --cluster c --train-until 2026-01-05T08:00:00 2>&1)
if grep -q "parameters loaded" <<<"$out" && grep -qE "segments +[1-9]" <<<"$out"; then ok; else bad "second prep: $out"; fi

# Same seed, same files; another seed, other files.
"$NS" synth --nodes 2 --days 0.2 --seed 5 --format ldms --out "$T/s1" >/dev/null
"$NS" synth --nodes 2 --days 0.2 --seed 5 --format ldms --out "$T/s2" >/dev/null
"$NS" synth --nodes 2 --days 0.2 --seed 6 --format ldms --out "$T/s3" >/dev/null
if diff -r "$T/s1" "$T/s2" >/dev/null; then ok; else bad "same seed gave different LDMS files"; fi
if ! diff -q "$T/s1/ldms/procstat.csv" "$T/s3/ldms/procstat.csv" >/dev/null; then ok; else bad "seeds 5 and 6 gave the same data"; fi

# File formats can put their labels in the DB too.
expect 0 "stored [1-9][0-9]* labels" "$NS" --db "sqlite:$T/l.db" synth --nodes 2 --days 0.5 --anomaly-ratio 0.1 --format ldms --out "$T/l" --store-labels

# The demo runs end to end and says so.
expect 0 "nsentry demo: done" "$NS" demo --nodes 3 --days 0.5 --dir "$T/demo"
[ -f "$T/demo/nsentry.db" ] && ok || bad "demo --dir did not keep its database"
expect 2 "exists" "$NS" demo --dir "$T/demo"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
