#!/usr/bin/env bash
# ar: DiffWave on Gaussian AR(3) noise whose power spectrum is known exactly (issue 16, problem 4).
# Stages: 1 prepare (offline), 2 train, 3 generate 2048-sample clips, 4 evaluate the per-band
# power-spectrum error against the analytic PSD, 5 learning curve (every checkpoint, same seeds).
#   ./run.sh                                           # EDM (conf/edm.yaml): band errors are the model's
#   ./run.sh --stage 2 --conf conf/baseline.yaml --tag ddpm   # DDPM: read against bench/sampler_bias.py
set -euo pipefail
cd "$(dirname "$0")"

stage=1  # first stage to run
stop_stage=5  # last stage to run
ngpu=0  # GPUs for training (torchrun when > 1)
tag=edm  # run name: the experiment is $exp/$tag
conf=conf/edm.yaml  # training config
data=data/ar  # corpus folder
exp=exp  # experiments folder
seeds=0-63  # generate: one clip per seed
seconds=0.256  # generate: clip length (2048 samples at 8 kHz; training crops are 512)
train_args=""  # the train stage: extra overrides, e.g. "train.steps=2000 regularizer.lam=1e-5"
log_dir=log  # stage logs (run.<time>.log)
. ../../recipes/common.sh

if stage_enabled 1; then
    log "stage 1: prepare ar into $data"
    logged audiodiff prepare ar --out "$data"
fi

if stage_enabled 2; then
    log "stage 2: train $conf as $exp/$tag"
    logged "${launcher[@]}" train "$conf" --auto-resume --no-progress "name=$tag" "exp_dir=$exp" \
        "data.train=$data/data/train" "${train_overrides[@]}"
fi

if stage_enabled 3; then
    log "stage 3: generate $seconds s clips for seeds $seeds from $exp/$tag"
    logged audiodiff generate --ckpt "$exp/$tag" --seeds "$seeds" --seconds "$seconds" --out "$exp/$tag/generated"
fi

if stage_enabled 4; then
    log "stage 4: evaluate $exp/$tag/generated against the analytic PSD of $data/data/test"
    logged audiodiff evaluate --ref "$data/data/test" --gen "$exp/$tag/generated" --out "$exp/$tag/eval" \
        --metrics band_psd
fi

if stage_enabled 5; then
    log "stage 5: learning curve of $exp/$tag into $exp/$tag/curve"
    logged python ../../recipes/learning_curve.py "$exp/$tag" --ref "$data/data/test" --seeds "$seeds" \
        --metrics psd_band_max_db_99,psd_band_rms_db,psd_band_low_db,psd_band_mid_db,psd_band_high_db --higher "" \
        --generate "--seconds $seconds" --evaluate "--metrics band_psd"
fi

log "done: stages $stage..$stop_stage"
