#!/usr/bin/env bash
# mnist images through the shared loss core (2-D transforms).
# Stages: 1 prepare (offline), 2 evaluation digit classifier, 3 train,
# 4 generate PNGs, 5 evaluate (power spectrum, pixel histogram).
#   ./run.sh --stage 3 --conf conf/baseline.yaml --tag base
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=5
ngpu=0
tag=baseline
conf=conf/baseline.yaml
data=data/mnist
exp=exp
seeds=0-63
clf_epochs=20
log_dir=log
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: prepare mnist into $data"
    audiodiff prepare mnist --out "$data"
fi

model_stages  # 2 classifier, 3 train, 4 generate, 5 evaluate (recipes/common.sh)

log "done: stages $stage..$stop_stage"
