#!/bin/sh
# The training runs behind the shipped default model and docs/early-exit-comparison.md.
# They ran as two parallel queues of one thread each on a shared 2-core CPU:
#   sh docs/default-model/train_runs.sh a   and   sh docs/default-model/train_runs.sh b,
# then queue c (needs a's v0v1-joint) beside the end of queue a, then queue d
# (the conv-head models; needs c's v0v1-joint-distill).
# Usage: sh docs/default-model/train_runs.sh a|b|c|d [DATA] [RUNS_DIR]
set -e
QUEUE=$1
DATA=${2:-data/synth_all.npz}
RUNS=${3:-runs}
AMCEE=${AMCEE:-"env PYTHONPATH=build/pytest-pkgroot .venv/bin/python apps/amcee"}
FAST="--lr 3e-3 --schedule cosine --warmup-epochs 0.3 --threads 1 --quiet"
STUDY="--train-fraction 0.2 --val-fraction 0.25 --epochs 4"

if [ "$QUEUE" = a ]; then
  # The backbone of the shipped model: exits V0 + V1 (+ final) with the paper's heads, joint scheme, full data.
  $AMCEE train --data "$DATA" --out "$RUNS/v0v1-joint" --exits V0 V1 --scheme joint --epochs 10 $FAST
  # Full-data reference: the backbone alone.
  $AMCEE train --data "$DATA" --out "$RUNS/backbone" --exits none --epochs 5 $FAST
elif [ "$QUEUE" = b ]; then
  # Study on a 20 % stratified subset of the training split: V0..V3 x both schemes,
  # plus the backbone with the fast schedule and with the paper's (constant lr 1e-4).
  for v in V0 V1 V2 V3; do
    for s in paper joint; do
      $AMCEE train --data "$DATA" --out "$RUNS/study-$v-$s" --exits $v --scheme $s $STUDY $FAST
    done
  done
  $AMCEE train --data "$DATA" --out "$RUNS/study-backbone-fast" --exits none $STUDY $FAST
  $AMCEE train --data "$DATA" --out "$RUNS/study-backbone-paper" --exits none $STUDY --threads 1 --quiet
  # The paper's schedule to the end (50 epochs): does the fast one reach the same accuracy?
  $AMCEE train --data "$DATA" --out "$RUNS/study-backbone-paper50" --exits none \
    --train-fraction 0.2 --val-fraction 0.25 --epochs 50 --threads 1 --quiet
  # Full-data reference: V1 as in the paper (paper scheme).
  $AMCEE train --data "$DATA" --out "$RUNS/v1-paper" --exits V1 --scheme paper --epochs 5 $FAST

elif [ "$QUEUE" = c ]; then
  # Fine-tuning with self-distillation of the early exits
  # (run after queue b; started from queue a's v0v1-joint/best.pt).
  $AMCEE train --data "$DATA" --out "$RUNS/v0v1-joint-distill" --exits V0 V1 --scheme joint --distill 1 \
    --init-from "$RUNS/v0v1-joint/best.pt" --epochs 4 --lr 1e-3 --schedule cosine --warmup-epochs 0.2 \
    --threads 1 --quiet
elif [ "$QUEUE" = d ]; then
  # Conv exit heads (model.conv_exit_head), started from v0v1-joint-distill's backbone;
  # the first two ran in parallel, the third alone, the last two in parallel.
  FT="--scheme joint --distill 1 --schedule cosine --threads 1 --quiet"
  $AMCEE train --data "$DATA" --out "$RUNS/v0conv-joint-distill" --exits V0 --exit-head conv $FT \
    --init-from "$RUNS/v0v1-joint-distill/best.pt" --epochs 4 --lr 1e-3 --warmup-epochs 0.2
  $AMCEE train --data "$DATA" --out "$RUNS/v0conv-w2-joint-distill" --exits V0 --exit-head conv $FT \
    --exit-weights 2 1 --init-from "$RUNS/v0v1-joint-distill/best.pt" --epochs 4 --lr 1e-3 --warmup-epochs 0.2
  $AMCEE train --data "$DATA" --out "$RUNS/v0v1conv-joint-distill" --exits V0 V1 --exit-head conv $FT \
    --init-from "$RUNS/v0v1-joint-distill/best.pt" --epochs 4 --lr 1e-3 --warmup-epochs 0.2
  $AMCEE train --data "$DATA" --out "$RUNS/v0v1conv-joint-distill-more" --exits V0 V1 --exit-head conv $FT \
    --init-from "$RUNS/v0v1conv-joint-distill/best.pt" --epochs 4 --lr 5e-4 --warmup-epochs 0.1
  $AMCEE train --data "$DATA" --out "$RUNS/v0v1conv-joint-distill-8ep" --exits V0 V1 --exit-head conv $FT \
    --init-from "$RUNS/v0v1-joint-distill/best.pt" --epochs 8 --lr 1e-3 --warmup-epochs 0.2
else
  echo "usage: $0 a|b|c|d [DATA] [RUNS_DIR]" >&2
  exit 2
fi
