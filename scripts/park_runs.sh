#!/usr/bin/env bash
# Park the resumable state of unfinished runs where git can carry it to the next session's fresh checkout.
# A session's checkout starts without runs/ (ignored), so a run cut off by the session's end would start
# over. For every RUNS_DIR/**/last.pt whose run has no metrics.json yet, this copies last.pt, best.pt and
# config.toml to PARK_DIR/<same path> (atomically: a copy, then a rename); parked copies of runs that have
# since finished are removed. train_queue.sh copies a parked run back before resuming it.
#   bash scripts/park_runs.sh && git add -A parked && git commit -m "park unfinished runs"
# Only small models belong here (a last.pt of a few tens of MB: weights, optimiser state, history).
set -eu
runs=${1:-runs}
park=${2:-${FERKIT_PARK_DIR:-parked}}
limit_mb=${FERKIT_PARK_LIMIT_MB:-45}
[ -d "$runs" ] || { echo "park_runs.sh: no runs folder $runs" >&2; exit 2; }
find "$runs" -name last.pt -print | sort | while read -r last; do
  run=$(dirname "$last")
  dest="$park/$run"
  if [ -f "$run/metrics.json" ]; then
    [ -d "$dest" ] && rm -rf "$dest" && echo "unparked (finished): $run"
    continue
  fi
  size_mb=$(( $(stat -c %s "$last") / 1048576 ))
  if [ "$size_mb" -gt "$limit_mb" ]; then
    echo "not parked: $run (last.pt is $size_mb MB, over $limit_mb MB)" >&2
    continue
  fi
  mkdir -p "$dest"
  for file in last.pt best.pt config.toml; do
    [ -f "$run/$file" ] || continue
    cp "$run/$file" "$dest/.$file.tmp" && mv "$dest/.$file.tmp" "$dest/$file"
  done
  echo "parked: $run -> $dest"
done
# parked runs whose folder is gone and that did not finish stay parked; ones finished elsewhere are dropped above
# a device call carries the working tree (tracked + untracked-not-ignored files), 64 MiB at most: parked states count
if tree=$(git ls-files -z --cached --others --exclude-standard 2>/dev/null | xargs -0 -r stat -c %s 2>/dev/null \
          | awk '{s += $1} END {print s + 0}') && [ "${tree:-0}" -gt 67108864 ]; then
  echo "note: the working tree is $((tree / 1048576)) MiB with the parked runs, over a device call's 64 MiB:" \
       "finish or drop parked runs before using the device" >&2
fi
