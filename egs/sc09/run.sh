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

model_stages  # 2 classifier, 3 train, 4 generate, 5 evaluate (recipes/common.sh)

log "done: stages $stage..$stop_stage"
