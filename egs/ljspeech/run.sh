#!/usr/bin/env bash
# LJSpeech vocoder (22.05 kHz): mel-conditioned DiffWave base, the paper's audio experiment.
# Stages: 1 download + prepare (2.6 GB), 2 train, 3 vocode the test mels, 4 evaluate against the test audio.
#   ./run.sh --stage 2 --conf conf/amp.yaml --tag amp_1e-4
set -euo pipefail
cd "$(dirname "$0")"

stage=1  # first stage to run
stop_stage=4  # last stage to run
ngpu=0  # GPUs for training (torchrun when > 1)
tag=baseline  # run name: the experiment is $exp/$tag
conf=conf/baseline.yaml  # training config
data=data/ljspeech  # corpus folder
exp=exp  # experiments folder
seeds=0  # generate: one clip per seed
train_args=""  # the train stage: extra overrides, e.g. "train.steps=2000 regularizer.lam=1e-5"
log_dir=log  # stage logs (run.<time>.log)
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: download and prepare LJSpeech-1.1 into $data"
    logged audiodiff prepare ljspeech --out "$data"
fi

if stage_enabled 2; then
    log "stage 2: train $conf as $exp/$tag"
    logged "${launcher[@]}" train "$conf" --auto-resume --no-progress "name=$tag" "exp_dir=$exp" \
        "data.train=$data/data/train" "${train_overrides[@]}"
fi

if stage_enabled 3; then
    log "stage 3: vocode the mels of the held-out LJ001/LJ002 clips with $exp/$tag"
    logged audiodiff generate --ckpt "$exp/$tag" --seeds "$seeds" --mels-from "$data/data/test" --out "$exp/$tag/generated"
fi

if stage_enabled 4; then
    log "stage 4: evaluate $exp/$tag/generated against the test audio"
    logged audiodiff evaluate --ref "$data/data/test" --gen "$exp/$tag/generated" --out "$exp/$tag/eval"
fi

log "done: stages $stage..$stop_stage"
