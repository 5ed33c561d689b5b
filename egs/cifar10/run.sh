#!/usr/bin/env bash
# cifar10 images (3 x 32 x 32) through the shared loss core (2-D transforms).
# Stages: 1 download + prepare (163 MB), 2 evaluation class classifier, 3 train,
# 4 generate PNGs, 5 evaluate (power spectrum, pixel histogram).
#   ./run.sh --stage 3 --conf conf/baseline.yaml --tag base
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=5
ngpu=0
tag=baseline
conf=conf/baseline.yaml
data=data/cifar10
exp=exp
seeds=0-63
clf_epochs=20
log_dir=log
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: download and prepare cifar10 into $data"
    audiodiff prepare cifar10 --out "$data"
fi

model_stages  # 2 classifier, 3 train, 4 generate, 5 evaluate (recipes/common.sh)

log "done: stages $stage..$stop_stage"
