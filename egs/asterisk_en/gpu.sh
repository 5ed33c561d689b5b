#!/usr/bin/env bash
# One GPU slice of the Asterisk vocoder (conf/gpu.yaml: DiffWave base at 16 kHz): run.sh's stages
# 1-7 with training capped at $minutes (train.max_minutes: a checkpoint, then exit 0). Stages 1-3
# keep what an earlier slice made, stage 4 resumes the run, and stages 5-7 vocode the test mels with
# the checkpoint just saved, score it (one row per slice in $exp/results.csv) and write the report:
# every call is a point of the learning curve. Sized for 10-minute device sessions (8 minutes of
# training, about 1 for start-up, vocoding and scoring); call it again to go on.
#   ./gpu.sh --archive asterisk-core-sounds-en-g722_1.6.1-1_all.deb   # first slice, without apt
#   ./gpu.sh                                                           # every later slice
set -euo pipefail
cd "$(dirname "$0")"

minutes=8  # training time of this slice (train.max_minutes)
ngpu=1  # GPUs for training (torchrun when > 1)
tag=gpu_base  # run name: the experiment is $exp/$tag
conf=conf/gpu.yaml  # training config
data=data/asterisk_en  # corpus folder
archive=""  # the first slice's stage 1: the .deb or its extracted folder (empty: apt-get download)
test_set=""  # the clips to vocode and score (empty: $data/data/test, the 47 test prompts)
exp=exp  # experiments folder
log_dir=log  # stage logs (run.<time>.log)
. ../../recipes/common.sh

log "gpu slice: $minutes minutes of $conf as $exp/$tag, then vocode, evaluate, report"
./run.sh --ngpu "$ngpu" --tag "$tag" --conf "$conf" --data "$data" --archive "$archive" --test_set "$test_set" \
    --exp "$exp" --log_dir "$log_dir" --train_args "train.max_minutes=$minutes"
