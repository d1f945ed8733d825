"""Put what the GPU machine's runs produced into $OUT, within what one device call can bring back.

    python3 scripts/gpu_collect.py QUEUE_FILE --out "$OUT" [--log out/gpu_queue.log] [--half-best] [--last]

One call brings back at most 8 files of 16 MiB each, 64 MiB together, so $OUT gets:

- results.tar.gz: every queued run's small files (config.toml, history.csv, metrics.json, curves, the test
  report), the queue log and gpu_results.json (a summary) under _gpu/, and one manifest per checkpoint;
- as many parts (15 MiB each) of the checkpoints as still fit: each run's best.pt (in fp16 with
  --half-best: half the bytes, and ``load_model`` reads it as usual), then the last.pt of runs not finished
  yet (to resume elsewhere), most recently written first. A last.pt goes only whole, in one call (small
  models), unless --last lets it come in parts over several calls too. Parts that an earlier call of this
  machine already sent are not sent again (the ledger out/gpu_sent.json), so a large file comes back over
  several calls.

Here, ``python scripts/gpu_unpack.py --results FOLDER... --to .`` rebuilds the runs (docs/gpu.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import sys
import tarfile
from pathlib import Path

from gpu_unpack import EXTRAS_DIR, MANIFEST_FORMAT, PARTS_DIR, RESULTS  # scripts/ beside this file

MAX_FILES = 8
MAX_FILE = 16 * 2**20
MAX_TOTAL = 64 * 2**20
PART = 15 * 2**20
SLACK = 256 * 2**10  # for the summary, which is written last
LEDGER = "out/gpu_sent.json"


def queue_runs(queue: Path) -> list[Path]:
    """The run folders a queue file names (first word of each line that is not blank or a comment)."""
    lines = (line.strip() for line in queue.read_text().splitlines())
    return [Path(line.split()[0]) for line in lines if line and not line.startswith("#")]


def flat(path: Path) -> str:
    """``path`` as one file name of letters, digits, '.', '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(path.parts))


def fp16_copy(best: Path, work: Path) -> Path:
    """A copy of checkpoint ``best`` with floating-point weights in fp16 (remade when ``best`` is newer)."""
    out = work / (flat(best) + ".fp16")
    if out.is_file() and out.stat().st_mtime >= best.stat().st_mtime:
        return out
    import torch

    payload = torch.load(best, map_location="cpu", weights_only=True)
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    work.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, out)
    return out


def manifest_of(source: Path, path: Path) -> dict:
    """The parts manifest for sending file ``source`` as ``path`` (its place in the repo)."""
    whole, parts = hashlib.sha256(), []
    with source.open("rb") as handle:
        while chunk := handle.read(PART):
            whole.update(chunk)
            parts.append({"size": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    sha = whole.hexdigest()
    for i, part in enumerate(parts):
        part["name"] = f"{flat(path)}.{sha[:10]}.{i:03d}"
    return {"format": MANIFEST_FORMAT, "file": path.name, "path": str(path), "size": source.stat().st_size,
            "sha256": sha, "compression": "none", "parts": parts, "source": str(source)}


def checkpoints(runs: list[Path], *, half_best: bool, work: Path) -> list[dict]:
    """Manifests of the checkpoints to send: best.pt of every run, then last.pt of the unfinished ones."""
    bests = [r / "best.pt" for r in runs if (r / "best.pt").is_file()]
    lasts = [r / "last.pt" for r in runs if (r / "last.pt").is_file() and not (r / "metrics.json").exists()]
    newest = sorted(bests, key=lambda p: -p.stat().st_mtime) + sorted(lasts, key=lambda p: -p.stat().st_mtime)
    return [manifest_of(fp16_copy(p, work) if half_best and p.name == "best.pt" else p, p) for p in newest]


def run_summary(run: Path) -> dict:
    """Epochs done, whether the run finished (metrics.json), and its metrics."""
    history = run / "history.csv"
    epochs = sum(1 for _ in csv.DictReader(history.open())) if history.is_file() else 0
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else None
    return {"run": str(run), "epochs_done": epochs, "finished": metrics is not None, "metrics": metrics}


def _tar(small: list[Path], manifests: list[dict], extra: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in small:
            tar.add(path, arcname=str(path))
        blobs = {f"{PARTS_DIR}/{m['parts'][0]['name'][:-4]}.manifest.json": json.dumps(m, indent=2).encode()
                 for m in manifests if m["parts"]}
        for name, data in {**blobs, **extra}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def collect(queue: Path, out: Path, *, log: Path | None = None, half_best: bool = False, last: bool = False,
            ledger: Path = Path(LEDGER)) -> dict:
    """Write results.tar.gz and the checkpoint parts that fit into ``out``; return the summary."""
    runs = [r for r in queue_runs(queue) if r.is_dir()]
    small = sorted(p for r in runs for p in r.rglob("*")
                   if p.is_file() and p.suffix != ".pt" and not p.name.endswith(".tmp"))
    extra = {f"{EXTRAS_DIR}/gpu_queue.log": log.read_bytes()} if log is not None and log.is_file() else {}
    manifests = checkpoints(runs, half_best=half_best, work=ledger.parent / "gpu_collect")
    sent = set(json.loads(ledger.read_text())) if ledger.is_file() else set()
    room = MAX_TOTAL - len(_tar(small, manifests, extra)) - SLACK
    files_left, todo = MAX_FILES - 1, []
    for m in manifests:
        parts = [part for part in m["parts"] if part["name"] not in sent]
        whole_only = m["file"] == "last.pt" and not last  # it changes every epoch: all of it or nothing
        if whole_only and (len(parts) > files_left or sum(part["size"] for part in parts) > room):
            continue
        for part in parts:
            if files_left and part["size"] <= min(room, MAX_FILE):
                todo.append((m, part))
                files_left, room = files_left - 1, room - part["size"]
    now_sent = sent | {part["name"] for _, part in todo}
    summary = {"runs": [run_summary(r) for r in runs],
               "checkpoints": [{"path": m["path"], "bytes": m["size"], "parts": len(m["parts"]),
                                "parts_sent": sum(p["name"] in now_sent for p in m["parts"]),
                                "fp16": m["source"] != m["path"]} for m in manifests]}
    extra[f"{EXTRAS_DIR}/gpu_results.json"] = (json.dumps(summary, indent=2) + "\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_bytes(_tar(small, manifests, extra))
    for m, part in todo:
        with Path(m["source"]).open("rb") as handle:
            handle.seek(PART * int(part["name"][-3:]))
            (out / part["name"]).write_bytes(handle.read(part["size"]))
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.write_text(json.dumps(sorted(now_sent)))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("queue", help="the queue file the runs came from")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="where to write (default: $OUT)")
    parser.add_argument("--log", help="the queue's log, sent inside results.tar.gz")
    parser.add_argument("--half-best", action="store_true", help="send best.pt with fp16 weights (half the bytes)")
    parser.add_argument("--last", action="store_true", help="send last.pt of unfinished runs in parts too (by "
                                                                "default only whole, when it fits in this call)")
    parser.add_argument("--ledger", default=LEDGER, help="parts already sent by this machine (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.out:
        parser.error("no --out and no $OUT")
    summary = collect(Path(args.queue), Path(args.out), log=Path(args.log) if args.log else None,
                      half_best=args.half_best, last=args.last, ledger=Path(args.ledger))
    for run in summary["runs"]:
        state = "finished" if run["finished"] else "unfinished"
        print(f"{run['run']}: {run['epochs_done']} epoch(s), {state}")
    for c in summary["checkpoints"]:
        print(f"{c['path']}: {c['parts_sent']}/{c['parts']} part(s) sent ({c['bytes'] / 2**20:.1f} MiB"
              f"{', fp16' if c['fp16'] else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
