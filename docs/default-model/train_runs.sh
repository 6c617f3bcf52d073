#!/bin/sh
# The training runs behind the shipped default model and docs/early-exit-comparison.md.
# They ran as two parallel queues of one thread each on a shared 2-core CPU:
#   sh docs/default-model/train_runs.sh a   and   sh docs/default-model/train_runs.sh b
# Usage: sh docs/default-model/train_runs.sh a|b [DATA] [RUNS_DIR]
set -e
QUEUE=$1
DATA=${2:-data/synth_all.npz}
RUNS=${3:-runs}
AMCEE=${AMCEE:-"env PYTHONPATH=build/pytest-pkgroot .venv/bin/python apps/amcee"}
FAST="--lr 3e-3 --schedule cosine --warmup-epochs 0.3 --threads 1 --quiet"
STUDY="--train-fraction 0.2 --val-fraction 0.25 --epochs 4"

if [ "$QUEUE" = a ]; then
  # The shipped candidate: exits V0 + V1 (+ final), joint scheme, full data.
  $AMCEE train --data "$DATA" --out "$RUNS/v0v1-joint" --exits V0 V1 --scheme joint --epochs 10 $FAST
  # Full-data reference: the backbone alone.
  $AMCEE train --data "$DATA" --out "$RUNS/backbone" --exits none --epochs 5 $FAST
else
  # Study on a 20 % stratified subset of the training split: V0..V3 x both schemes,
  # plus the backbone with the fast schedule and with the paper's (constant lr 1e-4).
  for v in V0 V1 V2 V3; do
    for s in paper joint; do
      $AMCEE train --data "$DATA" --out "$RUNS/study-$v-$s" --exits $v --scheme $s $STUDY $FAST
    done
  done
  $AMCEE train --data "$DATA" --out "$RUNS/study-backbone-fast" --exits none $STUDY $FAST
  $AMCEE train --data "$DATA" --out "$RUNS/study-backbone-paper" --exits none $STUDY --threads 1 --quiet
  # Full-data reference: V1 as in the paper (paper scheme).
  $AMCEE train --data "$DATA" --out "$RUNS/v1-paper" --exits V1 --scheme paper --epochs 5 $FAST
fi
