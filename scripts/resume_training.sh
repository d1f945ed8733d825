#!/usr/bin/env bash
# Continue training queues in the background at the start of a session: `ferkit queue` from a frozen copy of
# the source (so editing src/ cannot break a run), pinned to one core with one thread (the other core stays
# free for work), its log in the run store. Runs live in the run store (~/.local/share/ferkit/runs unless
# FERKIT_RUNS_DIR says otherwise), so after a fresh checkout on the same machine the queue resumes where it was.
#   bash scripts/resume_training.sh QUEUE [QUEUE ...]        # e.g. scripts/queues/transfer_random70_30.txt
# Environment: FERKIT_CORE (the core to pin to, default 1; "all" for no pinning), FERKIT_TIME_LIMIT (minutes).
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: resume_training.sh QUEUE [QUEUE ...]" >&2; exit 2; }
store=$(python -c "from ferkit.training.store import run_store; print(run_store())")
mkdir -p "$store"
# ferkit queue holds this lock while it trains; refuse now rather than in the background log
if ! flock -n "$store/.trainer.lock" true; then
  echo "resume_training.sh: a training queue is already running (it holds $store/.trainer.lock)" >&2
  exit 1
fi
snapshot="$(cd .. && pwd)/train-snapshot-$(git rev-parse --short HEAD)"
[ -d "$snapshot" ] || git worktree add --detach "$snapshot" HEAD >/dev/null
pin=(); [ "${FERKIT_CORE:-1}" = all ] || pin=(taskset -c "${FERKIT_CORE:-1}")
OMP_NUM_THREADS=1 PYTHONPATH="$snapshot/src" nohup "${pin[@]}" python -m ferkit.cli queue "$@" \
  --time-limit "${FERKIT_TIME_LIMIT:-0}" >> "$store/queue.log" 2>&1 < /dev/null &
echo "training queue started (pid $!, source frozen in $snapshot): tail -f $store/queue.log"
