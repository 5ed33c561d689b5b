#!/usr/bin/env bash
# SC09 (Speech Commands digits, 16 kHz, 1 s): unconditional DiffWave as in the DiffWave paper.
# Stages: 1 download + prepare (2.3 GB), 2 evaluation digit classifier, 3 train,
# 4 generate, 5 evaluate (against the test split).
#   ./run.sh --ngpu 8 --conf conf/amp.yaml --tag amp
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=5
ngpu=0
tag=baseline
conf=conf/baseline.yaml
data=data/sc09
exp=exp
seeds=0-255
clf_epochs=20
log_dir=log
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: download and prepare SC09 into $data"
    audiodiff prepare sc09 --out "$data"
fi

if stage_enabled 2; then
    if [ -f "$data/classifier/classifier.json" ]; then
        log "stage 2: $data/classifier exists, kept"
    else
        log "stage 2: train the digit classifier ($clf_epochs epochs) into $data/classifier"
        audiodiff train-classifier --train "$data/data/train" --valid "$data/data/valid" \
            --test "$data/data/test" --out "$data/classifier" --epochs "$clf_epochs"
    fi
fi

if stage_enabled 3; then
    log "stage 3: train $conf as $exp/$tag"
    "${launcher[@]}" train "$conf" --no-progress "name=$tag" "exp_dir=$exp" "data.train=$data/data/train"
fi

if stage_enabled 4; then
    log "stage 4: generate clips for seeds $seeds from $exp/$tag"
    audiodiff generate --ckpt "$exp/$tag" --seeds "$seeds" --out "$exp/$tag/generated"
fi

if stage_enabled 5; then
    log "stage 5: evaluate $exp/$tag/generated against $data/data/test"
    audiodiff evaluate --ref "$data/data/test" --gen "$exp/$tag/generated" --out "$exp/$tag/eval" \
        --classifier "$data/classifier"
fi

log "done: stages $stage..$stop_stage"
