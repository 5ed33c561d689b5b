#!/usr/bin/env bash
# Shared helper sourced by every egs/<dataset>/run.sh (Kaldi/ESPnet style): option parsing and
# logging only; the stages themselves are written out in each run.sh.
# - parses "--name value" options into the variables the recipe declared before sourcing this file
#   (an unknown option is an error; stage, stop_stage and ngpu must be whole numbers);
# - stage_enabled N: true when stage <= N <= stop_stage;
# - log MESSAGE: timestamped line on stderr and in $log_file;
# - launcher: "audiodiff" or, with --ngpu N > 1, "torchrun --nproc_per_node N -m audiodiff.cli".
set -euo pipefail

while [ $# -gt 0 ]; do
    case "$1" in
        --*)
            name="${1#--}"
            name="${name//-/_}"
            if ! declare -p "$name" >/dev/null 2>&1; then
                echo "$0: unknown option $1 (declared options: stage stop_stage ngpu tag and the recipe's own)" >&2
                exit 2
            fi
            [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 2; }
            printf -v "$name" '%s' "$2"
            shift 2
            ;;
        *) echo "$0: unexpected argument $1" >&2; exit 2 ;;
    esac
done

for name in stage stop_stage ngpu; do  # numbers, or `[ -le ]` would fail quietly and skip every stage
    if declare -p "$name" >/dev/null 2>&1 && ! [[ "${!name}" =~ ^[0-9]+$ ]]; then
        echo "$0: --$name must be a whole number, got '${!name}'" >&2
        exit 2
    fi
done

mkdir -p "${log_dir:-log}"
log_file="${log_dir:-log}/run.$(date +%Y%m%d-%H%M%S).log"

log() {
    local line
    line="$(date '+%Y-%m-%d %H:%M:%S') [$(basename "$0")] $*"
    echo "$line" >&2
    echo "$line" >>"$log_file"
}

stage_enabled() {
    [ "$stage" -le "$1" ] && [ "$1" -le "$stop_stage" ]
}

if [ "${ngpu:-0}" -gt 1 ]; then
    launcher=(torchrun --nproc_per_node "$ngpu" -m audiodiff.cli)
else
    launcher=(audiodiff)
fi
