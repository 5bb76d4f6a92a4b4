#!/usr/bin/env bash
# End-to-end: `nsentry cluster` and `nsentry match` on a small SQLite store.
#   cli.sh NSENTRY CLUST_MKDB
set -u
nsentry=$1 mkdb=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }
check() { if grep -q -- "$2" "$3"; then ok "$1"; else bad "$1 (no '$2' in $3)"; sed 's/^/  | /' "$3"; fi; }

export NSENTRY_CONF=/dev/null
db="sqlite:$tmp/n.db"
"$mkdb" "$tmp/n.db" "$tmp" > "$tmp/ids" || { echo "0 passed, 1 failed"; exit 1; }
sine_id=$(awk '$4 == 0 {print $6; exit}' "$tmp/ids")

"$nsentry" --db "$db" -s clust_k_max=6 -s clust_representatives=3 cluster > "$tmp/c1" 2> "$tmp/e1"
[ $? -eq 0 ] && ok "cluster exits 0" || { bad "cluster exits 0"; cat "$tmp/e1"; }
check "job k chosen" "chosen k = 3" "$tmp/c1"
check "idle k chosen" "chosen k = 2" "$tmp/c1"
check "silhouette per k" "<- best" "$tmp/c1"
check "cluster sizes" "cluster job-0: 5 members" "$tmp/c1"
check "members listed" "representative 0 weight 1.000" "$tmp/c1"
check "saved" "saved cluster library version 1" "$tmp/c1"

"$nsentry" --db "$db" match -n 2 "$sine_id" "$tmp/sine.csv" > "$tmp/m1" 2> "$tmp/e2"
[ $? -eq 0 ] && ok "match exits 0" || { bad "match exits 0"; cat "$tmp/e2"; }
# The stored sine segment and the fresh sine CSV land in the same, matched cluster.
c_id=$(awk '/ 1\. cluster/ {print $3; exit}' "$tmp/m1")
c_csv=$(awk '/ 1\. cluster/ {n++; if (n == 2) {print $3; exit}}' "$tmp/m1")
[ -n "$c_id" ] && [ "$c_id" = "$c_csv" ] && ok "CSV matches the trained cluster" || { bad "CSV cluster '$c_csv' vs '$c_id'"; cat "$tmp/m1"; }
[ "$(grep -c ' 1\. .* matched ' "$tmp/m1")" = 2 ] && ok "both matched" || { bad "both matched"; cat "$tmp/m1"; }
check "second nearest shown" " 2\. cluster" "$tmp/m1"

"$nsentry" --db "$db" match "$tmp/short.csv" > /dev/null 2> "$tmp/e3"
[ $? -ne 0 ] && ok "short segment fails" || bad "short segment fails"
check "short segment says why" "features need" "$tmp/e3"
"$nsentry" --db "$db" match 999999 > /dev/null 2> "$tmp/e4"
[ $? -ne 0 ] && ok "unknown id fails" || bad "unknown id fails"
check "unknown id says why" "not found" "$tmp/e4"
printf 'cpu,mem\n1,2\n' > "$tmp/bad.csv"
"$nsentry" --db "$db" match "$tmp/bad.csv" > /dev/null 2> "$tmp/e5"
check "missing metric column named" "metric 'net'" "$tmp/e5"
"$nsentry" --db "sqlite:$tmp/empty.db" match 1 > /dev/null 2> "$tmp/e6"
check "no library yet" "nsentry cluster" "$tmp/e6"
"$nsentry" --db "sqlite:$tmp/empty.db" cluster > /dev/null 2> "$tmp/e7"
[ $? -ne 0 ] && ok "cluster on empty store fails" || bad "cluster on empty store fails"
check "empty store says why" "no stored segments" "$tmp/e7"
"$nsentry" --db "$db" match --library-id 7 1 > /dev/null 2> "$tmp/e9"
check "unknown model library" "model library 7 has no clusters" "$tmp/e9"
"$nsentry" --db "$db" match --version 1 -n 1 "$sine_id" > "$tmp/m2" 2>&1
check "explicit version" "library v1" "$tmp/m2"
"$nsentry" --db "$db" -s clust_k_min=9 -s clust_k_max=3 cluster > /dev/null 2> "$tmp/e8"
check "bad k range" "clust_k_min" "$tmp/e8"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
