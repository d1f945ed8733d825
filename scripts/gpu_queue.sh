#!/usr/bin/env bash
# One device call of a GPU session (docs/gpu.md): rebuild the data pack if needed, train the queue on CUDA for at
# most SECONDS (each run stops cleanly after an epoch: train.time_limit_s; a hard timeout backs it up, last.pt
# is written after every epoch), then put the results into $OUT (scripts/gpu_collect.py).
#   bash scripts/gpu_queue.sh QUEUE_FILE SECONDS [gpu_collect options: --half-best --last]
# Queue lines as for `ferkit queue`: OUT_DIR/NAME CONFIG [key=value ...]. A run with metrics.json is
# skipped and one with last.pt resumed, so the same command in the next call continues the queue. Each run
# gets train.device=$DEVICE and data.path=$PACK (the line's own key=value pairs win).
# Environment: PACK (out/gpu_pack/fer2013.npz), DEVICE (cuda), PYTHON (python3), COLLECT_S (seconds kept for
# collecting, 45), EPOCH_S (guessed seconds per epoch of a run without history.csv, 120).
set -u -o pipefail
usage="usage: gpu_queue.sh QUEUE_FILE SECONDS [gpu_collect options]"
queue=${1:?$usage}
budget=${2:?$usage}
shift 2
PYTHON=${PYTHON:-python3}; PACK=${PACK:-out/gpu_pack/fer2013.npz}; DEVICE=${DEVICE:-cuda}
COLLECT_S=${COLLECT_S:-45}; EPOCH_S=${EPOCH_S:-120}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export FERKIT_RUNS_DIR=${FERKIT_RUNS_DIR:-runs}  # on the device the runs stay in the copied tree, for gpu_collect
mkdir -p out
log=out/gpu_queue.log
deadline=$(( $(date +%s) + budget - COLLECT_S ))
say() { echo "== $(date -u +%FT%TZ) $*" | tee -a "$log"; }

# seconds of a run's last epoch (history.csv's "seconds" column), else $EPOCH_S
epoch_seconds() {
  local s=""
  [ -f "$1/history.csv" ] && s=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "seconds") c = i }
                                          NR > 1 && c { s = $c } END { if (s != "") printf "%d", s + 1 }' "$1/history.csv")
  echo "${s:-$EPOCH_S}"
}

gpu=$(nvidia-smi -L 2>/dev/null | head -1)
say "call of ${budget}s, train.device=$DEVICE${gpu:+ on $gpu}"
if ! $PYTHON scripts/gpu_unpack.py "${PACK%.npz}.manifest.json" --out "$PACK" 2>&1 | tee -a "$log" \
   || [ ! -f "$PACK" ]; then
  say "no data pack at $PACK: carry the parts and the manifest (docs/gpu.md)"
  exit 2
fi

while read -r run config overrides; do
  if [ -f "$run/metrics.json" ]; then say "done: $run"; continue; fi
  left=$(( deadline - $(date +%s) ))
  epoch=$(epoch_seconds "$run")
  limit=$(( left - epoch - 20 ))  # the epoch in which the limit passes must end before the deadline
  if [ "$limit" -lt 1 ]; then say "stop: ${left}s left, an epoch of $run takes about ${epoch}s"; break; fi
  resume=""; [ -f "$run/last.pt" ] && resume="--resume"
  say "train $run $resume (train.time_limit_s=$limit, hard stop in ${left}s)"
  # shellcheck disable=SC2086
  timeout -k 20 "$left" $PYTHON -m ferkit.cli train "$config" name="$(basename "$run")" out_dir="$(dirname "$run")" \
    train.device="$DEVICE" data.path="$PACK" $overrides train.time_limit_s="$limit" $resume < /dev/null 2>&1 \
    | tee -a "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then say "killed at the deadline: $run (resumes from last.pt)"; break; fi
  if [ "$rc" -ne 0 ]; then say "FAILED ($rc): $run"; continue; fi
  if [ ! -f "$run/metrics.json" ]; then say "paused: $run (time limit; the next call resumes it)"; break; fi
done < <(grep -vE '^\s*(#|$)' "$queue")

if [ -n "${OUT:-}" ]; then
  say "collecting into \$OUT"
  $PYTHON scripts/gpu_collect.py "$queue" --out "$OUT" --log "$log" "$@" 2>&1 | tee -a "$log"
fi
say "call finished"
