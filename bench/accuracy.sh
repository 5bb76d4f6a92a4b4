#!/usr/bin/env bash
# Accuracy acceptance runs (docs/results.md): a D2-shaped synthetic set
# (30 nodes, 8 days at 15 s, 116 metrics, ~1,400 jobs, anomaly ratio 0.5 %),
# trained on the first 60 % of the time, evaluated on the rest with the
# paper's protocol and the fixed threshold rule.
#   bench/accuracy.sh NSENTRY_BINARY WORKDIR [ablation|baselines|contamination|all]
# baselines: the z-score and autoencoder baselines (--variant zscore|ae) on the
# ablation set, with the full method's clusters and thresholds.
set -euo pipefail
N=$1
W=$2
what=${3:-all}
mkdir -p "$W"
SEED=${NS_SEED:-7}

make_set() {  # db contamination
  rm -f "$1"*
  "$N" --db "sqlite:$1" synth --nodes 30 --days 8 --metrics 116 --jobs 1400 --seed "$SEED" \
       --anomaly-ratio 0.005 --contamination "$2" --train-frac 0.6 --format db --cluster d2 | tee "$1.synth"
  local until
  until=$(sed -n 's/.*training period ends \([^ ]*\).*/\1/p' "$1.synth")
  "$N" --db "sqlite:$1" prep --fit --cluster d2 --train-until "$until" > "$1.prep"
}

evaluate() {  # db label global-option train-option [eval-option]
  local db=$1 label=$2 g=$3 t=$4 e=${5:-}
  local t0=$SECONDS
  "$N" --db "sqlite:$db" $g train --cluster d2 $t --notes "$label" > "$W/$label.train"
  "$N" --db "sqlite:$db" $g eval --cluster d2 $e --json > "$W/$label.json"
  "$N" --db "sqlite:$db" $g eval --cluster d2 $e | sed -n '2,3p' | sed "s/^/$label: /"
  echo "$label: $((SECONDS - t0)) s train+eval"
}

if [ "$what" = ablation ] || [ "$what" = all ]; then
  make_set "$W/d2.db" 0
  # C3 is scored on the test period cut the same way as its training data.
  for v in full c1 c2 c3 c4 c5; do
    e=""
    [ $v = c3 ] && e="--split test-c3"
    evaluate "$W/d2.db" "ablation-$v" "" "--variant $v" "$e"
  done
fi
if [ "$what" = baselines ] || [ "$what" = all ]; then
  [ "$what" = all ] || make_set "$W/d2.db" 0
  for v in zscore ae; do
    evaluate "$W/d2.db" "baseline-$v" "" "--variant $v"
  done
fi
if [ "$what" = contamination ] || [ "$what" = all ]; then
  for c in 0 0.01 0.05 0.10; do
    make_set "$W/c$c.db" "$c"
    evaluate "$W/c$c.db" "contam-$c-robust" "--set train_robust=yes" ""
    evaluate "$W/c$c.db" "contam-$c-plain" "--set train_robust=no" ""
  done
fi
