#!/usr/bin/env bash
# Offline spoken digits (SC09-like, synthesized with espeak-ng): unconditional DiffWave on 1 s
# waveforms at 16 kHz, trained with or without a spectral regularizer.
#   ./run.sh                                   # all stages with conf/demo.yaml (a few CPU minutes)
# Stages: 1 prepare, 2 train the evaluation digit classifiers at 16 and 8 kHz (once per corpus), 3 train,
# 4 generate, 5 evaluate (FAD/KAD with the offline GE2E embedder; classifier-FID, IS, mIS, AM),
# 6 generate from the models shipped in audiodiff/pretrained/ (`audiodiff pretrained`); those trained
# on digits (digits_mel_cond: 8 kHz mels, Griffin-Lim) are evaluated with the classifier at their rate
# and put beside this run in $exp/pretrained/report.html.
#   ./run.sh --conf conf/amp.yaml --tag amp    # a regularized run
#   ./run.sh --stage 3 --stop_stage 4 --ngpu 4 # train on 4 GPUs (torchrun), then generate
set -euo pipefail
cd "$(dirname "$0")"

stage=1  # first stage to run
stop_stage=6  # last stage to run
ngpu=0  # GPUs for training (torchrun when > 1)
tag=demo  # run name: the experiment is $exp/$tag
conf=conf/demo.yaml  # training config
data=data/digits  # corpus folder
exp=exp  # experiments folder
speakers=60  # stage 1: synthetic speakers
seeds=0-15  # generate: one clip per seed
clf_epochs=20  # stage 2: classifier epochs
train_args=""  # the train stage: extra overrides, e.g. "train.steps=2000 regularizer.lam=1e-5"
log_dir=log  # stage logs (run.<time>.log)
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: synthesize the digits corpus into $data"
    logged audiodiff prepare digits --out "$data" "speakers=$speakers"
fi

if stage_enabled 2; then
    if [ -f "$data/classifier/classifier.json" ]; then
        log "stage 2: $data/classifier exists, kept"
    else
        log "stage 2: train the digit classifier ($clf_epochs epochs) into $data/classifier"
        logged audiodiff train-classifier --train "$data/data/train" --valid "$data/data/valid" \
            --test "$data/data/test" --out "$data/classifier" --epochs "$clf_epochs"
    fi
    if [ -f "$data/classifier8k/classifier.json" ]; then
        log "stage 2: $data/classifier8k exists, kept"
    else
        log "stage 2: train the 8 kHz digit classifier (scores the shipped 8 kHz mel model) into $data/classifier8k"
        logged audiodiff train-classifier --train "$data/data/train" --valid "$data/data/valid" \
            --test "$data/data/test" --out "$data/classifier8k" --epochs "$clf_epochs" --sample-rate 8000
    fi
fi

if stage_enabled 3; then
    log "stage 3: train $conf as $exp/$tag (continues it if it has a checkpoint)"
    logged "${launcher[@]}" train "$conf" --auto-resume --no-progress "name=$tag" "exp_dir=$exp" \
        "data.train=$data/data/train" "${train_overrides[@]}"
fi

if stage_enabled 4; then
    log "stage 4: generate clips for seeds $seeds from $exp/$tag"
    logged audiodiff generate --ckpt "$exp/$tag" --seeds "$seeds" --out "$exp/$tag/generated"
fi

if stage_enabled 5; then
    log "stage 5: evaluate $exp/$tag/generated against the unseen test voices of $data/data/test"
    logged audiodiff evaluate --ref "$data/data/test" --gen "$exp/$tag/generated" --out "$exp/$tag/eval" \
        --classifier "$data/classifier"
fi

if stage_enabled 6; then
    log "stage 6: generate from the shipped pretrained models; digits ones evaluated beside $exp/$tag"
    logged python ../../recipes/pretrained_demo.py --out "$exp/pretrained" --beside "$exp/$tag/eval" \
        --corpus digits --ref "$data/data/test" --classifier "$data/classifier" --classifier "$data/classifier8k" \
        --seeds "$seeds"
fi

log "done: stages $stage..$stop_stage"
