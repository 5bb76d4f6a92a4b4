#!/usr/bin/env bash
# Accuracy acceptance runs (docs/results.md): a D2-shaped synthetic set
# (30 nodes, 8 days at 15 s, 116 metrics, ~1,400 jobs, anomaly ratio 0.5 %),
# trained on the first 60 % of the time, evaluated on the rest with the
# paper's protocol and the fixed threshold rule.
#   bench/accuracy.sh NSENTRY_BINARY WORKDIR [ablation|baselines|contamination|all]
# baselines: the z-score and autoencoder baselines (--variant zscore|ae) on the
# ablation set, with the full method's clusters and thresholds.
# NS_MODEL_SEEDS="42 43 44": train every ablation variant once per model seed
# (the set stays the same) and print each variant's mean, min and max F1.
# NS_SYNTH_APPS=N: jobs come from N applications (nsentry synth --apps N)
# instead of the five archetypes as they are (default 0).
# NS_ABLATION_OPTS="--set K=V ...": global options added to every ablation run
# (e.g. the paper's method: --set train_robust=no --set train_calib_robust=no).
set -euo pipefail
N=$1
W=$2
what=${3:-all}
mkdir -p "$W"
SEED=${NS_SEED:-7}
APPS=${NS_SYNTH_APPS:-0}

make_set() {  # db contamination
  rm -f "$1"*
  "$N" --db "sqlite:$1" synth --nodes 30 --days 8 --metrics 116 --jobs 1400 --seed "$SEED" \
       --anomaly-ratio 0.005 --contamination "$2" --train-frac 0.6 --apps "$APPS" --format db --cluster d2 | tee "$1.synth"
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
  seeds=${NS_MODEL_SEEDS:-42}
  : > "$W/ablation.f1"
  for ms in $seeds; do
    for v in full c1 c2 c3 c4 c5; do
      e=""
      [ $v = c3 ] && e="--split test-c3"
      label="ablation-$v"
      [ "$seeds" = 42 ] || label="ablation-$v-s$ms"
      evaluate "$W/d2.db" "$label" "--set model_seed=$ms ${NS_ABLATION_OPTS:-}" "--variant $v" "$e" | tee "$W/$label.out"
      echo "$v $(sed -n 's/.* F1 \([0-9.]*\) .*/\1/p' "$W/$label.out" | head -1)" >> "$W/ablation.f1"
    done
  done
  echo "F1 over model seeds $seeds:"
  awk '{n[$1]++; s[$1]+=$2; if (!($1 in lo) || $2 < lo[$1]) lo[$1]=$2; if ($2 > hi[$1]) hi[$1]=$2}
       END {for (v in n) printf "  %-4s mean %.4f  min %.4f  max %.4f  (%d runs)\n", v, s[v]/n[v], lo[v], hi[v], n[v]}' \
      "$W/ablation.f1" | sort -k3 -r
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
