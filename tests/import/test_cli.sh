#!/usr/bin/env bash
# `nsentry import` and `nsentry segments` end to end on the fixtures.
#   test_cli.sh NSENTRY_BINARY
set -u
bin=${1:?usage: test_cli.sh NSENTRY}
fx="${NS_SOURCE_ROOT:?}/tests/import/fixtures"
tmp=$(mktemp -d /tmp/ns_impcli_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
db="sqlite:$tmp/t.db"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/     /'; }
# expect NAME RC PATTERN CMD...: exit status RC and output matching PATTERN
expect() {
  local name=$1 rc=$2 pat=$3
  shift 3
  local out
  out=$("$@" 2>&1)
  local got=$?
  if [ "$got" -eq "$rc" ] && grep -qE -- "$pat" <<<"$out"; then ok "$name"; else bad "$name (rc $got)" "$out"; fi
}

expect "nodesentry fixture" 0 "^imported nodesentry into cluster ns: files 4, rows 12, points 36, nodes 2, jobs 3, segments 3, labels 3, .* repairs 0$" \
  "$bin" --db "$db" import nodesentry "$fx/nodesentry" --cluster ns
expect "segments --split test" 0 "^1 segments, 5 rows$" "$bin" --db "$db" segments --split test
expect "segments row" 0 " n2 +2 +2024-07-15T11:39:30Z +2024-07-15T11:40:30Z +5 +3 +15.0 +2$" \
  "$bin" --db "$db" segments --node n2
expect "segments --job" 0 "^2 segments, 7 rows$" "$bin" --db "$db" segments --job 1
expect "segments bad kind" 2 "--kind must be job or idle" "$bin" --db "$db" segments --kind foo
expect "segments --limit" 0 "^3 segments \(1 listed, 4 rows in those; --limit 0 lists all\)$" "$bin" --db "$db" segments --limit 1
expect "segments bad limit" 2 "--limit must be a number" "$bin" --db "$db" segments --limit x
expect "sacct" 0 "jobs 7, .*repairs 3 \(skipped jobs 1, shared jobs 2\)" \
  "$bin" --db "$db" import sacct "$fx/sacct/basic.txt" --cluster lab --utc
expect "ldms" 0 "rows 14, points 44, nodes 2, .*repairs 4 \(duplicate rows 1, truncated lines 1, repeated headers 1, missing values 1\)" \
  "$bin" --db "$db" import ldms "$fx/ldms/ok/meminfo" "$fx/ldms/ok/vmstat" "$fx/ldms/ok/procstat" --cluster lab
expect "sacct unknown node" 1 "import sacct: not found: .*noheader.txt:1:5: job 200: unknown node 'n1'" \
  "$bin" --db "$db" import sacct "$fx/sacct/noheader.txt" --cluster lab
expect "sacct allow unknown" 0 "unknown nodes 3" \
  "$bin" --db "$db" import sacct "$fx/sacct/noheader.txt" --cluster lab --allow-unknown-nodes
expect "csv" 0 "rows 4, points 12, nodes 1" "$bin" --db "$db" import csv "$fx/csv/wide.csv" --node cn1 --cluster lab
expect "csv needs --node" 2 "--node NAME is required" "$bin" --db "$db" import csv "$fx/csv/wide.csv"
printf 't,a\n1700000000,1\n1700000001,inf\n' > "$tmp/bad.csv"
expect "csv inf" 1 "import csv: non-finite value .*: $tmp/bad.csv:3:12: inf value for metric a" \
  "$bin" --db "$db" import csv "$tmp/bad.csv" --node cn2 --cluster lab
cp -r "$fx/nodesentry" "$tmp/ns" && printf 'timestamp,Metric1\n2024-07-16 00:00:00,1\n2024-07-16 00:00:15,1\n2024-07-16 00:00:45,1\n' > "$tmp/ns/Test/n3_Job-3.csv"
expect "bad folder" 1 "import nodesentry: unsupported or malformed format: .*n3_Job-3.csv:4:1: irregular sampling" \
  "$bin" --db "$db" import nodesentry "$tmp/ns" --cluster broken
expect "bad folder stored nothing" 0 "^0 segments, 0 rows$" "$bin" --db "$db" segments --cluster broken
expect "unknown format" 2 "unknown format 'foo'" "$bin" --db "$db" import foo x
expect "missing input" 2 "missing input" "$bin" --db "$db" import ldms
expect "help" 0 "nsentry import nodesentry DIR" "$bin" import --help
expect "no such dir" 1 "import nodesentry: I/O error: /nonexistent: not a directory" \
  "$bin" --db "$db" import nodesentry /nonexistent
expect "bad db" 1 "open database" "$bin" --db "sqlite:/nonexistent/dir/x.db" import csv "$fx/csv/wide.csv" --node n

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
