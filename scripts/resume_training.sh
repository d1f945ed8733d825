#!/usr/bin/env bash
# Continue training queues in the background at the start of a session: `ferkit queue` from a frozen copy of
# the source (so editing src/ cannot break a run), pinned to one core with one thread (the other core stays
# free for work), its log in the run store (queue-coreN.log; queue.log unpinned); one queue per core. Runs live in
# the run store (~/.local/share/ferkit/runs unless FERKIT_RUNS_DIR says otherwise), so after a fresh checkout on the
# same machine the queue resumes where it was.
#   bash scripts/resume_training.sh QUEUE [QUEUE ...]        # e.g. scripts/queues/transfer_random70_30.txt
# Environment: FERKIT_CORE (the core to pin to, default 1; "all" for no pinning), FERKIT_TIME_LIMIT (minutes).
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: resume_training.sh QUEUE [QUEUE ...]" >&2; exit 2; }
store=$(python -c "from ferkit.training.store import run_store; print(run_store())")
mkdir -p "$store"
# ferkit queue holds a lock per core it may run on while it trains; refuse now rather than in the background log
if [ "${FERKIT_CORE:-1}" = all ]; then
  cores=$(python -c "import os; print(*sorted(os.sched_getaffinity(0)))"); log="$store/queue.log"
else
  cores=${FERKIT_CORE:-1}; log="$store/queue-core$cores.log"
fi
for core in $cores; do
  if ! flock -n "$store/.trainer-core$core.lock" true; then
    echo "resume_training.sh: a training queue is already running on core $core (it holds $store/.trainer-core$core.lock)" >&2
    exit 1
  fi
done
snapshot="$(cd .. && pwd)/train-snapshot-$(git rev-parse --short HEAD)"
[ -d "$snapshot" ] || git worktree add --detach "$snapshot" HEAD >/dev/null
pin=(); [ "${FERKIT_CORE:-1}" = all ] || pin=(taskset -c "${FERKIT_CORE:-1}")
OMP_NUM_THREADS=1 PYTHONPATH="$snapshot/src" nohup "${pin[@]}" python -m ferkit.cli queue "$@" \
  --time-limit "${FERKIT_TIME_LIMIT:-0}" >> "$log" 2>&1 < /dev/null &
echo "training queue started (pid $!, source frozen in $snapshot): tail -f $log"
