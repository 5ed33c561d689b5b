#!/usr/bin/env bash
# Offline spoken digits (SC09-like, synthesized with espeak-ng): unconditional DiffWave on 1 s
# waveforms at 16 kHz, trained with or without a spectral regularizer.
#   ./run.sh                                   # all stages with conf/demo.yaml (a few CPU minutes)
# Stages: 1 prepare, 2 train the evaluation digit classifier (once per corpus), 3 train,
# 4 generate, 5 evaluate (FAD/KAD with the offline GE2E embedder; classifier-FID, IS, mIS, AM).
#   ./run.sh --conf conf/amp.yaml --tag amp    # a regularized run
#   ./run.sh --stage 3 --stop_stage 4 --ngpu 4 # train on 4 GPUs (torchrun), then generate
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=5
ngpu=0
tag=demo
conf=conf/demo.yaml
data=data/digits
exp=exp
speakers=60
seeds=0-15
clf_epochs=20
log_dir=log
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: synthesize the digits corpus into $data"
    audiodiff prepare digits --out "$data" "speakers=$speakers"
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
    log "stage 3: train $conf as $exp/$tag (--force: the demo retrains from scratch)"
    "${launcher[@]}" train "$conf" --force --no-progress "name=$tag" "exp_dir=$exp" "data.train=$data/data/train"
fi

if stage_enabled 4; then
    log "stage 4: generate clips for seeds $seeds from $exp/$tag"
    audiodiff generate --ckpt "$exp/$tag" --seeds "$seeds" --out "$exp/$tag/generated"
fi

if stage_enabled 5; then
    log "stage 5: evaluate $exp/$tag/generated against the unseen test voices of $data/data/test"
    audiodiff evaluate --ref "$data/data/test" --gen "$exp/$tag/generated" --out "$exp/$tag/eval" \
        --classifier "$data/classifier"
fi

log "done: stages $stage..$stop_stage"
