#!/usr/bin/env bash
# Shared helper sourced by every egs/<dataset>/run.sh (Kaldi/ESPnet style): option parsing and
# logging only; the stages themselves are written out in each run.sh.
# - the recipe's options are the `name=default` lines before it sources this file; "--name value"
#   sets one (an unknown option is an error; stage, stop_stage and ngpu must be whole numbers),
#   --help lists them with their defaults under the recipe's header comment;
# - train_args (when declared): extra `key=value` overrides for `audiodiff train`, space-separated
#   (ESPnet's --train_args), split into the array train_overrides;
# - stage_enabled N: true when stage <= N <= stop_stage;
# - log MESSAGE: timestamped line on stderr and in $log_file;
# - logged CMD...: log the exact command, run it, and append its output to $log_file too;
# - launcher: "audiodiff" or, with --ngpu N > 1, "torchrun --nproc_per_node N -m audiodiff.cli".
set -euo pipefail

recipe="./$(basename "$0")"  # each run.sh cd's to its own folder before sourcing this file
recipe_options="$(awk '/recipes\/common\.sh/ {exit} /^[a-z_][a-z0-9_]*=/ {print}' "$recipe")"
option_names=" $(sed 's/=.*//' <<<"$recipe_options" | tr '\n' ' ')"

args=("$@")
for ((i = 0; i < ${#args[@]}; i += 2)); do  # option positions only: "--train_args --help" is a value
    if [ "${args[i]}" = "--help" ] || [ "${args[i]}" = "-h" ]; then
        echo "Usage: $0 [--option value ...]"
        awk 'NR > 1 && /^#/ {sub(/^# ?/, "  "); print; next} NR > 1 {exit}' "$recipe"
        echo "Options (--name value; default after the name):"
        sed -E 's/^([a-z_0-9]+)=("[^"]*"|[^ ]*)(.*)$/  --\1 \2\3/' <<<"$recipe_options"
        exit 0
    fi
done

while [ $# -gt 0 ]; do
    case "$1" in
        --*)
            name="${1#--}"
            name="${name//-/_}"
            if [[ "$option_names" != *" $name "* ]]; then
                echo "$0: unknown option $1 (options:${option_names% }; --help lists them)" >&2
                exit 2
            fi
            [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 2; }
            printf -v "$name" '%s' "$2"
            shift 2
            ;;
        *) echo "$0: unexpected argument $1 (options look like --name value; --help lists them)" >&2; exit 2 ;;
    esac
done

for name in stage stop_stage ngpu; do  # numbers, or `[ -le ]` would fail quietly and skip every stage
    if declare -p "$name" >/dev/null 2>&1 && ! [[ "${!name}" =~ ^[0-9]+$ ]]; then
        echo "$0: --$name must be a whole number, got '${!name}'" >&2
        exit 2
    fi
done

train_overrides=()
if declare -p train_args >/dev/null 2>&1; then
    read -ra train_overrides <<<"$train_args"
fi

mkdir -p "${log_dir:-log}"
log_file="${log_dir:-log}/run.$(date +%Y%m%d-%H%M%S).log"

log() {
    local line
    line="$(date '+%Y-%m-%d %H:%M:%S') [$(basename "$0")] $*"
    echo "$line" >&2
    echo "$line" >>"$log_file"
}

logged() {
    log "\$ $(printf '%q ' "$@")"
    "$@" 2>&1 | tee -a "$log_file"
}

stage_enabled() {
    [ "$stage" -le "$1" ] && [ "$1" -le "$stop_stage" ]
}

if [ "${ngpu:-0}" -gt 1 ]; then
    launcher=(torchrun --nproc_per_node "$ngpu" -m audiodiff.cli)
else
    launcher=(audiodiff)
fi
