#!/usr/bin/env bash
# SC09 (Speech Commands digits, 16 kHz, 1 s): unconditional DiffWave as in the DiffWave paper.
# Stages: 1 download + prepare (2.3 GB), 2 evaluation digit classifier, 3 train,
# 4 generate, 5 evaluate (against the test split).
#   ./run.sh --ngpu 8 --conf conf/amp.yaml --tag amp
set -euo pipefail
cd "$(dirname "$0")"

stage=1  # first stage to run
stop_stage=5  # last stage to run
ngpu=0  # GPUs for training (torchrun when > 1)
tag=baseline  # run name: the experiment is $exp/$tag
conf=conf/baseline.yaml  # training config
data=data/sc09  # corpus folder
exp=exp  # experiments folder
seeds=0-255  # generate: one clip per seed
clf_epochs=20  # stage 2: classifier epochs
train_args=""  # the train stage: extra overrides, e.g. "train.steps=2000 regularizer.lam=1e-5"
log_dir=log  # stage logs (run.<time>.log)
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: download and prepare SC09 into $data"
    logged audiodiff prepare sc09 --out "$data"
fi

if stage_enabled 2; then
    if [ -f "$data/classifier/classifier.json" ]; then
        log "stage 2: $data/classifier exists, kept"
    else
        log "stage 2: train the digit classifier ($clf_epochs epochs) into $data/classifier"
        logged audiodiff train-classifier --train "$data/data/train" --valid "$data/data/valid" \
            --test "$data/data/test" --out "$data/classifier" --epochs "$clf_epochs"
    fi
fi

if stage_enabled 3; then
    log "stage 3: train $conf as $exp/$tag"
    logged "${launcher[@]}" train "$conf" --auto-resume --no-progress "name=$tag" "exp_dir=$exp" \
        "data.train=$data/data/train" "${train_overrides[@]}"
fi

if stage_enabled 4; then
    log "stage 4: generate clips for seeds $seeds from $exp/$tag"
    logged audiodiff generate --ckpt "$exp/$tag" --seeds "$seeds" --out "$exp/$tag/generated"
fi

if stage_enabled 5; then
    log "stage 5: evaluate $exp/$tag/generated against $data/data/test"
    logged audiodiff evaluate --ref "$data/data/test" --gen "$exp/$tag/generated" --out "$exp/$tag/eval" \
        --classifier "$data/classifier"
fi

log "done: stages $stage..$stop_stage"
