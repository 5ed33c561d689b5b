#!/usr/bin/env bash
# Asterisk prompts (real studio speech, 16 kHz, offline): a mel-conditioned DiffWave vocoder against
# Griffin-Lim on the same mels (issue 18). Stages: 1 prepare (apt-get download, or --archive),
# 2 Griffin-Lim the test mels, 3 evaluate it, 4 train the vocoder, 5 vocode the test mels,
# 6 evaluate the vocoder (MR-STFT, LSD, wide-band PESQ paired by name; FAD/KAD with GE2E),
# 7 the listening report (Griffin-Lim beside the vocoder, clips aligned by utterance).
#   ./run.sh                                        # everything, conf/baseline.yaml (CPU-sized)
#   ./run.sh --stage 4 --train_args "train.max_minutes=60"   # one more hour of training, then 5-7
#   ./gpu.sh                                        # DiffWave base on a GPU, in 10-minute slices
set -euo pipefail
cd "$(dirname "$0")"

stage=1  # first stage to run
stop_stage=7  # last stage to run
ngpu=0  # GPUs for training (torchrun when > 1)
tag=baseline  # run name: the experiment is $exp/$tag
conf=conf/baseline.yaml  # training config
data=data/asterisk_en  # corpus folder
archive=""  # stage 1: the .deb or a folder it was extracted into (empty: apt-get download it)
test_set=""  # the clips to vocode and score (empty: $data/data/test, the 47 test prompts)
exp=exp  # experiments folder
sampler=fast  # stage 5: fast (DiffWave's 6 steps) or ddpm (the 50-step schedule)
gl_iters=64  # stage 2: Griffin-Lim iterations
metrics=mrstft,lsd,pesq,fad,kad  # stages 3 and 6: evaluate --metrics
train_args=""  # the train stage: extra overrides, e.g. "train.steps=2000 regularizer.lam=1e-5"
log_dir=log  # stage logs (run.<time>.log)
. ../../recipes/common.sh

[ -n "$test_set" ] || test_set="$data/data/test"

if stage_enabled 1; then
    if [ -f "$data/asterisk_en.json" ]; then
        log "stage 1: $data is prepared, kept (remove it to prepare again)"
    else
        log "stage 1: prepare the Asterisk prompts into $data"
        logged audiodiff prepare asterisk_en --out "$data" "archive=$archive"
    fi
fi

if stage_enabled 2; then
    if [ -f "$exp/griffin_lim/generated/settings.json" ]; then
        log "stage 2: $exp/griffin_lim/generated exists, kept (remove it to redo)"
    else
        log "stage 2: Griffin-Lim ($gl_iters iterations) from the mels of $test_set"
        logged audiodiff griffin-lim --mels-from "$test_set" --out "$exp/griffin_lim/generated" --iters "$gl_iters"
    fi
fi

if stage_enabled 3; then
    if [ -f "$exp/griffin_lim/eval/metrics.json" ]; then
        log "stage 3: $exp/griffin_lim/eval exists, kept (remove it to redo)"
    else
        log "stage 3: evaluate Griffin-Lim against $test_set"
        logged audiodiff evaluate --ref "$test_set" --gen "$exp/griffin_lim/generated" --out "$exp/griffin_lim/eval" \
            --metrics "$metrics" --csv "$exp/results.csv"
    fi
fi

if stage_enabled 4; then
    log "stage 4: train $conf as $exp/$tag (continues it if it has a checkpoint)"
    logged "${launcher[@]}" train "$conf" --auto-resume --no-progress "name=$tag" "exp_dir=$exp" \
        "data.train=$data/data/train" "${train_overrides[@]}"
fi

if stage_enabled 5; then
    log "stage 5: vocode the mels of $test_set with $exp/$tag ($sampler sampler)"
    logged audiodiff generate --ckpt "$exp/$tag" --mels-from "$test_set" --sampler "$sampler" \
        --out "$exp/$tag/generated"
fi

if stage_enabled 6; then
    log "stage 6: evaluate $exp/$tag/generated against $test_set"
    logged audiodiff evaluate --ref "$test_set" --gen "$exp/$tag/generated" --out "$exp/$tag/eval" \
        --metrics "$metrics" --csv "$exp/results.csv"
fi

if stage_enabled 7; then
    log "stage 7: listening report of Griffin-Lim and $exp/$tag into $exp/$tag/report.html"
    logged audiodiff report "$exp/griffin_lim/eval" "$exp/$tag/eval" --out "$exp/$tag/report.html"
fi

log "done: stages $stage..$stop_stage"
