#!/usr/bin/env bash
# Continue the training queues at the start of a session (a fresh checkout: runs/ is empty, parked runs come back).
# Freezes the source in a worktree (so editing src/ cannot break a run) and starts train_queue.sh in the
# background under nice (FERKIT_NICE, default 19); the log goes to runs/queue.log.
#   bash scripts/resume_training.sh                    # issue 4's queues, in order
#   bash scripts/resume_training.sh QUEUE [QUEUE ...]  # others
# Before the session ends: bash scripts/park_runs.sh && git add -A parked && git commit -m "park unfinished runs"
set -eu
cd "$(dirname "$0")/.."
parent=$(cd .. && pwd)
# One queue at a time: the lock is taken here and held by the background queue (it inherits fd 9) until the
# queue ends, so a second start, even one at the same moment, is refused.
exec 9>>"$parent/.train-queue.lock"
if ! flock -n 9; then
  echo "resume_training.sh: a training queue holding $parent/.train-queue.lock is already running" >&2
  exit 1
fi
if [ $# -gt 0 ]; then queues=("$@"); else queues=(scripts/queues/systems_ab.txt scripts/queues/systems_ab_seeds.txt); fi
snapshot="$parent/train-snapshot-$(git rev-parse --short HEAD)"
[ -d "$snapshot" ] || git worktree add --detach "$snapshot" HEAD >/dev/null
mkdir -p runs
PYTHONPATH="$snapshot/src" nohup nice -n "${FERKIT_NICE:-19}" bash "$snapshot/scripts/train_queue.sh" "${queues[@]}" \
  >> runs/queue.log 2>&1 < /dev/null &
echo "training queue started (pid $!, source frozen in $snapshot): tail -f runs/queue.log"
