#!/bin/sh
# The runs behind docs/pruning.md, stage by stage (from the repository root):
#   sh docs/pruning_runs.sh prune       # amcee prune: the method and the baselines, fine-tuned alike
#   sh docs/pruning_runs.sh prune-k1    # the method alone at K = 1
#   sh docs/pruning_runs.sh early-exit  # exits on the method's pruned backbone (after its fine-tune)
#   sh docs/pruning_runs.sh early-exit-ft  # 4 more epochs of it at a lower learning rate
#   sh docs/pruning_runs.sh calibrate   # thresholds and temperatures, as docs/default-model/README.md
#                                       # (run for EARLY and for EARLY=$EARLY_FT)
#   sh docs/pruning_runs.sh snr-table   # optional: the SNR-conditioned exit table
#   sh docs/pruning_runs.sh eval        # amcee eval of the candidate
#   sh docs/pruning_runs.sh stem        # the paper backbone with a 16-channel stem and an exit at V0,
#                                       # trained from scratch like the reference (STEM, STEM_EXITS,
#                                       # STEM_EPOCHS; the 20-epoch run: STEM_EXITS="V0 V1"
#                                       # STEM_EPOCHS=20 STEM_RUN=runs/v2-stem16-v0v1-long);
#                                       # then calibrate with EARLY=$STEM_RUN, and TIGHT=0.15 for
#                                       # the 0.15 pp calibration; TEACHER (a checkpoint or model
#                                       # file) distils it from the start, EXIT_WEIGHTS sets the
#                                       # joint loss's weights (early exits first, final last)
#   sh docs/pruning_runs.sh stem-more   # STEM_RUN trained on at a lower learning rate, distilling the
#                                       # 20-epoch paper backbone (LONG, after the backbone stage's first
#                                       # run, or TEACHER) into its final exit (STEM_MORE_RUN,
#                                       # STEM_MORE_EPOCHS);
#                                       # calibrate with EARLY=$STEM_MORE_RUN (the shipped model:
#                                       # VERSION=amcee-default-7)
#   sh docs/pruning_runs.sh stem-alone  # the STEM-channel backbone trained alone like the reference
#                                       # (LONG_EPOCHS), then LONG_MORE_EPOCHS more distilling TEACHER
#                                       # (default: the shipped reference) (STEM_ALONE, STEM_ALONE_MORE)
#   sh docs/pruning_runs.sh frozen-exits  # exits STEM_EXITS trained on STEM_ALONE_MORE frozen
#                                       # (--freeze-backbone, FROZEN_EPOCHS, FROZEN_RUN); calibrate
#                                       # with EARLY=$FROZEN_RUN HIGH=0, then snr-table
#   sh docs/pruning_runs.sh stem-frozen  # exits STEM_EXITS on STEM_ALONE_MORE with its stem frozen
#                                       # (--freeze-backbone conv1, or through FREEZE): the later layers train jointly
#                                       # with the exits, the final exit distils TEACHER (default: the
#                                       # shipped reference) (STEM_FROZEN_EPOCHS, STEM_FROZEN_RUN);
#                                       # calibrate with EARLY=$STEM_FROZEN_RUN HIGH=0, then snr-table
#   sh docs/pruning_runs.sh backbone    # the paper backbone trained like the stem runs (LONG_EPOCHS),
#                                       # then LONG_MORE_EPOCHS more like stem-more: the reference the
#                                       # goals are measured against
#   sh docs/pruning_runs.sh reference   # the backbone stage's second run exported as the shipped
#                                       # reference, python/amcee/models/paper_backbone.pt
#   sh docs/pruning_runs.sh report      # docs/pruning.md and docs/pruning.json, one process
# Settings come from the environment (defaults below; THREADS: torch threads of a run, 1).  AMCEE is the command
# line of the CLI: `amcee` once installed, else a Python that puts
# build/pytest-pkgroot first on the path.
set -e
AMCEE=${AMCEE:-amcee}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-data/synth_v2.npz}
SOURCE=${SOURCE:-runs/v2-backbone/best.pt}        # the paper backbone's training checkpoint
REFERENCE=${REFERENCE:-$SOURCE}                    # what speed-ups are measured against
PRUNED=${PRUNED:-runs/v2-pruned}
PRUNED_K1=${PRUNED_K1:-runs/v2-pruned-k1}         # the method alone at K = 1, for the table
EARLY=${EARLY:-runs/v2-pruned-ee}
EARLY_FT=${EARLY_FT:-runs/v2-pruned-ee-ft}         # EARLY trained on, 4 epochs at lr 1e-3
BUDGET=${BUDGET:---segments 2}                     # or --macs FRACTION
EPOCHS=${EPOCHS:-2}                                # fine-tuning of every pruned backbone
FRACTION=${FRACTION:-0.3}                          # of the training split, for every pruned backbone
EXITS=${EXITS:-V0}
EARLY_EPOCHS=${EARLY_EPOCHS:-6}
EARLY_FRACTION=${EARLY_FRACTION:-1.0}
STEM=${STEM:-16}
STEM_EXITS=${STEM_EXITS:-V0}
STEM_RUN=${STEM_RUN:-runs/v2-stem$STEM-ee}
STEM_EPOCHS=${STEM_EPOCHS:-5}
STEM_MORE_RUN=${STEM_MORE_RUN:-runs/v2-stem16-v0v1-30t}
STEM_MORE_EPOCHS=${STEM_MORE_EPOCHS:-10}
STEM_ALONE=${STEM_ALONE:-runs/v4-stem$STEM-bb}
STEM_ALONE_MORE=${STEM_ALONE_MORE:-$STEM_ALONE-30}
FROZEN_RUN=${FROZEN_RUN:-$STEM_ALONE_MORE-exits}
FROZEN_EPOCHS=${FROZEN_EPOCHS:-8}
STEM_FROZEN_RUN=${STEM_FROZEN_RUN:-$STEM_ALONE_MORE-stem-frozen}
STEM_FROZEN_EPOCHS=${STEM_FROZEN_EPOCHS:-10}
LONG=${LONG:-runs/v2-backbone-long}                # the paper backbone, 20 epochs
LONG_EPOCHS=${LONG_EPOCHS:-20}
LONG_MORE=${LONG_MORE:-runs/v2-backbone-30}        # ... and 10 more at a lower learning rate
LONG_MORE_EPOCHS=${LONG_MORE_EPOCHS:-10}
MORE="--lr 1e-3 --schedule cosine --warmup-epochs 0 --threads ${THREADS:-1}"
FAST="--lr 3e-3 --schedule cosine --warmup-epochs 0.3 --threads ${THREADS:-1}"

case "$1" in
prune)
    $AMCEE prune "$SOURCE" --data "$DATA" --out "$PRUNED" $BUDGET --baselines --random-seeds 0 1 2 \
        --epochs "$EPOCHS" --train-fraction "$FRACTION" --distill 1 $FAST ;;
prune-k1)
    $AMCEE prune "$SOURCE" --data "$DATA" --out "$PRUNED_K1" --segments 1 \
        --epochs "$EPOCHS" --train-fraction "$FRACTION" --distill 1 $FAST ;;
early-exit)
    while [ ! -f "$PRUNED/segments/summary.json" ]; do sleep 20; done   # the method's fine-tune is done
    $AMCEE train --data "$DATA" --out "$EARLY" --init-from "$PRUNED/segments/best.pt" --exits $EXITS \
        --exit-head conv --scheme joint --distill 1 $FAST --epochs "$EARLY_EPOCHS" \
        --train-fraction "$EARLY_FRACTION" --model-version v2-pruned-ee \
        --description "pruned backbone ($PRUNED/segments) with early exits $EXITS" ;;
early-exit-ft)
    $AMCEE train --data "$DATA" --out "$EARLY_FT" --init-from "$EARLY/best.pt" --exits $EXITS \
        --exit-head conv --scheme joint --distill 1 --lr 1e-3 --schedule cosine --warmup-epochs 0 \
        --threads 1 --epochs 4 --model-version v2-pruned-ee-ft ;;
stem)
    $AMCEE train --data "$DATA" --out "$STEM_RUN" --exits $STEM_EXITS --exit-head conv --scheme joint --distill 1 \
        --stem-channels "$STEM" --epochs "$STEM_EPOCHS" --batch-size 500 $FAST --model-version "$(basename "$STEM_RUN")" \
        ${TEACHER:+--teacher "$TEACHER" --teacher-weight 1} ${EXIT_WEIGHTS:+--exit-weights $EXIT_WEIGHTS} \
        --description "paper backbone with a $STEM-channel stem and early exits $STEM_EXITS" ;;
stem-more)
    $AMCEE train --data "$DATA" --out "$STEM_MORE_RUN" --init-from "$STEM_RUN/best.pt" --exits $STEM_EXITS \
        --exit-head conv --scheme joint --distill 1 --stem-channels "$STEM" --epochs "$STEM_MORE_EPOCHS" \
        --teacher "${TEACHER:-$LONG/best.pt}" --teacher-weight 1 ${EXIT_WEIGHTS:+--exit-weights $EXIT_WEIGHTS} \
        --batch-size 500 $MORE --model-version "${VERSION:-$(basename "$STEM_MORE_RUN")}" \
        --description "paper backbone with a $STEM-channel stem and early exits $STEM_EXITS, trained on with the paper backbone as teacher" ;;
stem-alone)
    $AMCEE train --data "$DATA" --out "$STEM_ALONE" --exits none --stem-channels "$STEM" --epochs "$LONG_EPOCHS" \
        --batch-size 500 $FAST --model-version "$(basename "$STEM_ALONE")" \
        --description "paper backbone with a $STEM-channel stem, alone" --quiet
    $AMCEE train --data "$DATA" --out "$STEM_ALONE_MORE" --init-from "$STEM_ALONE/best.pt" --exits none \
        --stem-channels "$STEM" --epochs "$LONG_MORE_EPOCHS" --batch-size 500 $MORE \
        --teacher "${TEACHER:-python/amcee/models/paper_backbone.pt}" --teacher-weight 1 --quiet \
        --model-version "$(basename "$STEM_ALONE_MORE")" \
        --description "paper backbone with a $STEM-channel stem, alone, trained on with the reference as teacher" ;;
frozen-exits)
    $AMCEE train --data "$DATA" --out "$FROZEN_RUN" --init-from "$STEM_ALONE_MORE/best.pt" --freeze-backbone \
        --exits $STEM_EXITS --exit-head conv --scheme joint --distill 1 --epochs "$FROZEN_EPOCHS" --batch-size 500 \
        $FAST --quiet --model-version "${VERSION:-$(basename "$FROZEN_RUN")}" \
        --description "paper backbone with a $STEM-channel stem trained alone, early exits $STEM_EXITS trained on it frozen" ;;
stem-frozen)
    $AMCEE train --data "$DATA" --out "$STEM_FROZEN_RUN" --init-from "$STEM_ALONE_MORE/best.pt" \
        --freeze-backbone "${FREEZE:-conv1}" --exits $STEM_EXITS --exit-head conv --scheme joint --distill 1 \
        --teacher "${TEACHER:-python/amcee/models/paper_backbone.pt}" --teacher-weight 1 \
        --epochs "$STEM_FROZEN_EPOCHS" --batch-size 500 $MORE --quiet \
        --model-version "${VERSION:-$(basename "$STEM_FROZEN_RUN")}" \
        --description "paper backbone with a $STEM-channel stem, $STEM_ALONE_MORE kept through ${FREEZE:-conv1}, the later layers trained on with early exits $STEM_EXITS" ;;
backbone)  # the first run with two threads alone; the second with one, beside stem-more
    $AMCEE train --data "$DATA" --out "$LONG" --exits none --epochs "$LONG_EPOCHS" --batch-size 500 \
        $FAST --threads 2 --model-version "$(basename "$LONG")" --description "paper backbone"
    $AMCEE train --data "$DATA" --out "$LONG_MORE" --init-from "$LONG/best.pt" --exits none \
        --epochs "$LONG_MORE_EPOCHS" --batch-size 500 $MORE \
        --model-version "$(basename "$LONG_MORE")" --description "paper backbone, trained on" ;;
reference)
    $AMCEE export "$LONG_MORE/best.pt" --out python/amcee/models/paper_backbone.pt --overwrite \
        --model-version paper-backbone-30 \
        --description "the paper's backbone without early exits, trained like amcee-default-7 on synth_v2: 20 epochs at lr 3e-3, then 10 at lr 1e-3" ;;
calibrate)  # EARLY=$EARLY_FT for the continued run; TIGHT=0.15 writes model-tight.pt at that budget;
            # HIGH=0 writes model-high.pt with no accuracy lost at >= 10 dB (the shipped model:
            # EARLY=$STEM_MORE_RUN HIGH=0, then snr-table with MODEL=model-high.pt)
    # Exported afresh from best.pt: the model file's code is checked against this checkout's at load.
    $AMCEE export "$EARLY/best.pt" --out "$EARLY/model-uncalibrated.pt" --overwrite
    $AMCEE calibrate "$EARLY/model-uncalibrated.pt" --data "$DATA" --max-loss "${TIGHT:-0.4}" --temperature \
        --give-up --favour-snr 20 --class-thresholds ${HIGH:+--max-loss-high-snr "$HIGH"} \
        --out "$EARLY/model${TIGHT:+-tight}${HIGH:+-high}.pt" --overwrite ;;
snr-table)  # the SNR-conditioned exit table on top of the thresholds, as the shipped model has
    $AMCEE calibrate "$EARLY/${MODEL:-model.pt}" --data "$DATA" --snr-aware --max-loss 0.4 \
        --min-speedup "${MIN_SPEEDUP:-1.0}" --out "$EARLY/${MODEL:-model.pt}" --overwrite ;;
eval)
    $AMCEE eval "$EARLY/model.pt" --data "$DATA" --out "$EARLY/eval" --repeats 5 --max-batch 256 --threads 1 ;;
report)
    PYTHONPATH=${PYTHONPATH:-build/pytest-pkgroot} $PYTHON docs/pruning_report.py --data "$DATA" \
        --reference "$REFERENCE" --reference-name "paper backbone, 5 epochs" \
        --backbone "paper backbone, 20 epochs=$LONG/best.pt" "paper backbone, 30 epochs=$LONG_MORE/best.pt" \
        --goal-reference "paper backbone, 30 epochs" --prune-report "$PRUNED/report.json" "$PRUNED_K1/report.json" \
        --early-exit "pruned early exit=$EARLY/model.pt" "pruned early exit, 4 more epochs=$EARLY_FT/model.pt" \
        "16-channel stem, early exit=runs/v2-stem16-ee/model.pt" \
        "16-channel stem, early exit, 0.15 pp calibration=runs/v2-stem16-ee/model-tight.pt" \
        "32-channel stem, early exit=runs/v2-stem32-ee/model.pt" \
        "16-channel stem, exits V0 V1=runs/v2-stem16-v0v1/model.pt" \
        "16-channel stem, exits V0 V1, 0.15 pp calibration=runs/v2-stem16-v0v1/model-tight.pt" \
        "16-channel stem, exits V0 V1, 20 epochs=runs/v2-stem16-v0v1-long/model.pt" \
        "16-channel stem, exits V0 V1, 20 epochs, no loss at >= 10 dB=runs/v2-stem16-v0v1-long/model-high.pt" \
        "16-channel stem, exits V0 V1, 30 epochs, no loss at >= 10 dB=$STEM_MORE_RUN/model-high.pt" \
        ${CURRENT:+"amcee-default-6 (trained on synth_all)=$CURRENT"} \
        --repeats 10 --threads 1 --out docs/pruning.md ;;
*)
    echo "usage: $0 prune|prune-k1|early-exit|early-exit-ft|stem|stem-more|stem-alone|frozen-exits|backbone|reference|calibrate|snr-table|eval|report" >&2
    exit 2 ;;
esac
