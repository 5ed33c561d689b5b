#!/usr/bin/env bash
# Learning curves of issue 18: our vocoder (conf/baseline.yaml) and lmnt's trainer (local/lmnt_train.py:
# the `diffwave` package's model and training step at our sizes) on the same train split, one thread
# each, each checkpoint scored on the same 8 test prompts (conf/curve8.txt) with MR-STFT, LSD and
# wide-band PESQ, against training steps and wall time. Stages: 1 the fixed 8-prompt subset
# ($curve_set), 2 train ours, 3 train lmnt's, 4 our curve, 5 lmnt's curve drawn beside ours.
# Stages 2 and 3 are the long ones: run them side by side, then 4-5 (they can also run while the
# trainings go on: scored checkpoints are kept, so a later call adds only the new ones):
#   ./curve.sh --stop_stage 1
#   ./curve.sh --stage 2 --stop_stage 2 & ./curve.sh --stage 3 --stop_stage 3 & wait
#   ./curve.sh --stage 4
# The EDM run (conf/edm.yaml) is sampled with Heun at its config's 18 steps: give stage 4 --sampler heun,
#   ./curve.sh --stage 2 --stop_stage 2 --conf conf/edm.yaml --tag edm_curve
#   ./curve.sh --stage 4 --stop_stage 4 --tag edm_curve --sampler heun
set -euo pipefail
cd "$(dirname "$0")"

stage=1  # first stage to run
stop_stage=5  # last stage to run
data=data/asterisk_en  # corpus folder (run.sh stage 1 prepares it)
curve_set=data/curve8  # the 8 test prompts of conf/curve8.txt (stage 1 makes it)
exp=exp  # experiments folder
tag=baseline_curve  # our run: $exp/$tag
conf=conf/baseline.yaml  # our training config; lmnt's run takes its sizes from it too
minutes=120  # training time of each run
steps=100000  # at most this many steps (the minutes end both runs first on a CPU)
ckpt_every=500  # checkpoint (and curve point) every this many steps, both runs
sampler=fast  # stage 4's generate --sampler: fast (DiffWave's 6 steps) for DDPM runs, heun for EDM (its sample.steps)
seeds=0  # the sampling seeds (clip k gets seed k mod their number), the same at every checkpoint
metrics=mrstft,lsd_db,pesq_wb  # curve columns: metrics.json keys of evaluate --metrics mrstft,lsd,pesq
log_dir=log  # stage logs (run.<time>.log)
. ../../recipes/common.sh
# One thread each, whatever the caller's environment: lmnt_train.py sets torch to 1 thread itself, our
# trainer takes torch's default (all cores) unless OMP_NUM_THREADS says otherwise.
export OMP_NUM_THREADS=1

if stage_enabled 1; then
    log "stage 1: $curve_set, the test prompts listed in conf/curve8.txt"
    mkdir -p "$curve_set"
    awk 'NR == FNR {keep[$1]; next} $1 in keep' conf/curve8.txt "$data/data/test/wav.scp" > "$curve_set/wav.scp"
    awk 'NR == FNR {keep[$1]; next} $1 in keep' conf/curve8.txt "$data/data/test/utt2spk" > "$curve_set/utt2spk"
    [ "$(wc -l < "$curve_set/wav.scp")" -eq "$(wc -l < conf/curve8.txt)" ] ||
        { log "stage 1: $data/data/test lacks prompts of conf/curve8.txt"; exit 1; }
    logged audiodiff validate-data-dir "$curve_set"
fi

if stage_enabled 2; then
    log "stage 2: train $conf as $exp/$tag for $minutes minutes (continues it if it has a checkpoint)"
    logged audiodiff train "$conf" --auto-resume --no-progress "name=$tag" "exp_dir=$exp" \
        "data.train=$data/data/train" "train.steps=$steps" "train.ckpt_every=$ckpt_every" "train.max_minutes=$minutes"
fi

if stage_enabled 3; then
    log "stage 3: train lmnt's DiffWave at the sizes of $conf as $exp/lmnt for $minutes minutes (continues it)"
    logged python local/lmnt_train.py train --train "$data/data/train" --out "$exp/lmnt" --conf "$conf" \
        --steps "$steps" --minutes "$minutes" --ckpt_every "$ckpt_every"
fi

if stage_enabled 4; then
    log "stage 4: score every checkpoint of $exp/$tag on $curve_set into $exp/$tag/curve"
    logged python ../../recipes/learning_curve.py "$exp/$tag" --ref "$curve_set" --seeds "$seeds" \
        --generate "--mels-from $curve_set --sampler $sampler" --evaluate "--metrics mrstft,lsd,pesq" \
        --metrics "$metrics" --label "audiodiff ($tag)"
fi

if stage_enabled 5; then
    log "stage 5: score every checkpoint of $exp/lmnt the same way, drawn beside $exp/$tag/curve"
    logged python local/lmnt_train.py curve "$exp/lmnt" --ref "$curve_set" --seeds "$seeds" \
        --generate "--mels-from $curve_set" --evaluate "--metrics mrstft,lsd,pesq" --metrics "$metrics" \
        --label "lmnt trainer" --compare "$exp/$tag/curve/curve.json"
fi

log "done: stages $stage..$stop_stage"
