#!/usr/bin/env bash
# LJSpeech vocoder (22.05 kHz): mel-conditioned DiffWave base, the paper's audio experiment.
# Stages: 1 download + prepare (2.6 GB), 2 train, 3 vocode the test mels, 4 evaluate against the test audio.
#   ./run.sh --stage 2 --conf conf/amp.yaml --tag amp_1e-4
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=4
ngpu=0
tag=baseline
conf=conf/baseline.yaml
data=data/ljspeech
exp=exp
seeds=0
log_dir=log
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: download and prepare LJSpeech-1.1 into $data"
    audiodiff prepare ljspeech --out "$data"
fi

if stage_enabled 2; then
    log "stage 2: train $conf as $exp/$tag"
    "${launcher[@]}" train "$conf" --no-progress "name=$tag" "exp_dir=$exp" "data.train=$data/data/train"
fi

if stage_enabled 3; then
    log "stage 3: vocode the mels of the held-out LJ001/LJ002 clips with $exp/$tag"
    audiodiff generate --ckpt "$exp/$tag" --seeds "$seeds" --mels-from "$data/data/test" --out "$exp/$tag/generated"
fi

if stage_enabled 4; then
    log "stage 4: evaluate $exp/$tag/generated against the test audio"
    audiodiff evaluate --ref "$data/data/test" --gen "$exp/$tag/generated" --out "$exp/$tag/eval"
fi

log "done: stages $stage..$stop_stage"
