#!/usr/bin/env bash
# Train the runs listed in a queue file one after another (one training at a time: two on 2 cores halve
# each other). Each line: OUT_DIR/NAME CONFIG [key=value ...]. A run with metrics.json is skipped, one with
# last.pt is resumed, so the same command continues the queue in the next session. A line whose second field
# is a Python script (OUT_DIR/NAME scripts/two_stage.py ARGS...) runs `python SCRIPT ARGS --resume` every time:
# the script itself reads back what is finished and continues the rest.
#   nohup bash scripts/train_queue.sh scripts/queues/systems_ab.txt > runs/queue.log 2>&1 &
# While the source is being edited, train from a frozen copy so a half-edited file cannot break a run:
#   git worktree add --detach ../train-snapshot HEAD
#   PYTHONPATH=../train-snapshot/src nohup bash scripts/train_queue.sh QUEUE > runs/queue.log 2>&1 &
# Several queue files run one after another: train_queue.sh FIRST SECOND ...
# A run parked by scripts/park_runs.sh (PARK_DIR/OUT_DIR/NAME, default parked/) and absent here is copied back
# first, so a run cut off by the end of a session resumes in the next one's fresh checkout.
# A run already published (PUBLISHED_DIR/NAME.json, default checkpoints/, by scripts/publish_run.py) is done too.
set -u
park=${FERKIT_PARK_DIR:-parked}
published=${FERKIT_PUBLISHED_DIR:-checkpoints}
[ $# -ge 1 ] || { echo "usage: train_queue.sh QUEUE_FILE [QUEUE_FILE ...]" >&2; exit 2; }
for queue in "$@"; do [ -f "$queue" ] || { echo "train_queue.sh: no queue file $queue" >&2; exit 2; }; done
grep -hvE '^\s*(#|$)' "$@" | while read -r run config overrides; do
  if [[ "$config" == *.py ]]; then
    echo "== $(date -u +%FT%TZ) script $run: $config $overrides --resume"
    # shellcheck disable=SC2086
    python "$config" $overrides --resume < /dev/null || echo "== FAILED: $run"
    continue
  fi
  if [ -f "$run/metrics.json" ]; then echo "== done: $run"; continue; fi
  name=$(basename "$run"); out=$(dirname "$run")
  if [ -f "$published/$name.json" ]; then echo "== published: $run ($published/$name.json)"; continue; fi
  if [ ! -f "$run/last.pt" ] && [ -f "$park/$run/last.pt" ]; then
    mkdir -p "$run" && cp "$park/$run"/* "$run"/ && echo "== unparked $park/$run"
  fi
  resume=""; [ -f "$run/last.pt" ] && resume="--resume"
  echo "== $(date -u +%FT%TZ) train $run $resume"
  # shellcheck disable=SC2086
  python -m ferkit.cli train "$config" name="$name" out_dir="$out" $overrides $resume < /dev/null || echo "== FAILED: $run"
done
echo "== $(date -u +%FT%TZ) queue finished"
