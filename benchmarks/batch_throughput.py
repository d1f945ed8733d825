"""ferkit batch throughput, local vs Ray: faces/s, engine overhead, per-worker rate, and what N nodes would give.

    nice -n 19 python benchmarks/batch_throughput.py [--data ../shared/data] [--loops 3] [--workers 2] [--stride 1]

Inputs: the shared photos, each linked ``--loops`` times into a temporary folder (distinct paths,
so every copy is an input of its own), and the two shared videos. For each engine the photos
and the videos are two jobs, each into a fresh output folder. The Ray cluster is started here
(``ray.init(num_cpus=--workers)``, timed on its own) and each job starts its own workers.

For each job: wall seconds, faces, faces/s and inputs/s (photos) or frames/s (videos); "work"
is the sum of the per-input analysis seconds that the inputs table records (time inside
``analyze_source``: decode, detect, classify, track); "overhead" is ``wall - work / workers``,
the time not spent analysing inputs in parallel: starting workers and loading their models,
scheduling, sending rows to the driver, Parquet writes. One worker's rate is faces per
work-second. The driver's ceiling is measured apart: rows per second through
``InputResult.to_wire``/``from_wire`` and ``BatchStore.commit``. The load average is printed
before and after: on a shared machine the figures are pessimistic.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def looped_photos(photos: Path, loops: int, into: Path) -> Path:
    """``into`` with ``loops`` symbolic links to every photo of ``photos``."""
    into.mkdir(parents=True, exist_ok=True)
    for i in range(loops):
        for photo in sorted(photos.glob("*.jpg")):
            os.symlink(photo.resolve(), into / f"{i:03d}_{photo.name}")
    return into


def job(inputs, out: Path, engine: str, workers: int, stride: int) -> dict:
    """Run one job; return its figures."""
    from ferkit.batch import BatchSettings, read_inputs, run_batch

    cpu = time.process_time()
    summary = run_batch(inputs, out, BatchSettings(stride=stride), engine=engine, workers=workers)
    cpu = time.process_time() - cpu
    work = float(np.sum(read_inputs(out)["seconds"].to_numpy()))
    parallel = workers if engine == "ray" else 1
    return {"engine": engine, "inputs": summary.inputs, "faces": summary.faces, "frames": summary.frames,
            "wall": summary.seconds, "work": work, "driver_cpu": cpu, "workers": parallel,
            "overhead": summary.seconds - work / parallel, "faces_per_s": summary.faces_per_second,
            "units_per_s": summary.frames / summary.seconds, "worker_faces_per_s": summary.faces / work}


def driver_ceiling(rows_per_input: int = 20, inputs: int = 2000) -> float:
    """Rows per second the driver can take in: wire decode + commit of synthetic results."""
    from ferkit.batch import BatchStore, InputResult, face_schema
    from ferkit.labels import EMOTIONS

    schema = face_schema(EMOTIONS)
    row = {"source": "/data/x" * 8, "kind": "video", "frame": 1, "time_s": 0.1, "face": 0, "track": 0, "x": 10,
           "y": 20, "w": 30, "h": 40, "detector_score": 0.9, "label": "happy", "confidence": 0.8,
           **dict.fromkeys(EMOTIONS, 0.1)}
    wires = []
    for i in range(inputs):
        rows = pa.Table.from_pylist([{**row, "source": f"/data/{i}.mp4", "frame": f} for f in range(rows_per_input)],
                                    schema=schema)
        wires.append(InputResult(f"/data/{i}.mp4", "video", "done", rows_per_input, rows_per_input, 1.0, None,
                                 rows).to_wire())
    with tempfile.TemporaryDirectory() as tmp, BatchStore(tmp, schema, {}) as store:
        start = time.perf_counter()
        results = [InputResult.from_wire(w) for w in wires]
        for k in range(0, len(results), 256):
            store.commit(results[k:k + 256])
        return rows_per_input * inputs / (time.perf_counter() - start)


def table(rows: list[dict]) -> str:
    head = ("| job | engine | workers | inputs | faces | photos or frames | wall s | work s | overhead s | faces/s "
            "| photos or frames /s | one worker's faces/s |\n" + "| --- " * 4 + "| ---: " * 8 + "|")
    lines = [f"| {r['job']} | {r['engine']} | {r['workers']} | {r['inputs']} | {r['faces']} | {r['frames']} "
             f"| {r['wall']:.1f} | {r['work']:.1f} | {r['overhead']:.1f} | {r['faces_per_s']:.2f} "
             f"| {r['units_per_s']:.2f} | {r['worker_faces_per_s']:.2f} |" for r in rows]
    return "\n".join([head, *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--loops", type=int, default=3, help="copies of each shared photo (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs and workers (default 2)")
    parser.add_argument("--stride", type=int, default=1, help="videos: every Nth frame (default 1)")
    parser.add_argument("--engines", default="local,ray")
    args = parser.parse_args()
    import torch

    print(f"cores {os.cpu_count()}, torch {torch.__version__} ({torch.get_num_threads()} threads in the local "
          f"engine), load average before {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = looped_photos(args.data / "photos", args.loops, tmp / "photos")
        videos = args.data / "videos"
        for engine in args.engines.split(","):
            if engine == "ray":
                import ray

                start = time.perf_counter()
                ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
                print(f"ray.init(num_cpus={args.workers}): {time.perf_counter() - start:.1f} s")
            try:
                for name, inputs in (("photos", photos), ("videos", videos)):
                    r = job(inputs, tmp / f"out-{engine}-{name}", engine, args.workers, args.stride)
                    rows.append({"job": name, **r})
                    print(f"{engine} {name}: {r}", flush=True)
            finally:
                if engine == "ray":
                    ray.shutdown()
    print(f"load average after {os.getloadavg()}")
    print(table(rows))
    print(f"driver ceiling: {driver_ceiling():,.0f} rows/s (wire decode + Parquet commit)")


if __name__ == "__main__":
    main()
