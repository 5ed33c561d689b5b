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
train_flags=--force  # the demo retrains from scratch
log_dir=log
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: synthesize the digits corpus into $data"
    audiodiff prepare digits --out "$data" "speakers=$speakers"
fi

model_stages  # 2 classifier, 3 train, 4 generate, 5 evaluate (recipes/common.sh)

log "done: stages $stage..$stop_stage"
