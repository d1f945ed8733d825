"""Time the FER2013 reader: parse, cache write and cache load (goals: parse < 30 s, cache load < 2 s).

Usage: python benchmarks/data_load.py [path/to/fer2013.csv.gz]
The cache goes to a temporary folder that is removed afterwards; the file is parsed once.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ferkit.data.fer2013 import read_fer2013
from ferkit.io import file_sha256

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fer2013" / "fer2013.csv.gz"
PARSE_GOAL_S, LOAD_GOAL_S = 30.0, 2.0


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    if not path.is_file():
        print(f"FER2013 CSV not found: {path}", file=sys.stderr)
        return 2
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    with tempfile.TemporaryDirectory(prefix="ferkit-bench-") as tmp:
        cache = Path(tmp) / "cache"
        # first read: hash + parse + cache write (the reader's cold path)
        data, t_cold = _timed(lambda: read_fer2013(path, cache_dir=cache))
        # the pieces of the cold path that are not parsing, timed on their own
        _, t_hash = _timed(lambda: file_sha256(path))
        arrays = {name: getattr(data, name) for name in ("images", "labels", "splits", "sources")}
        _, t_write = _timed(lambda: np.savez(Path(tmp) / "write-probe.npz", **arrays))
        t_parse = max(t_cold - t_hash - t_write, 0.0)
        # second read: hash + load from the cache
        again, t_load = _timed(lambda: read_fer2013(path, cache_dir=cache))
        assert "cache" in again.meta, "the second read did not use the cache"
        assert np.array_equal(again.images, data.images) and np.array_equal(again.labels, data.labels)
        size_mb = sum(f.stat().st_size for f in cache.glob("*.npz")) / 1e6
    print(f"rows: {len(data)}  images: {data.images.shape} {data.images.dtype}")
    print(f"cold read (hash + parse + cache write): {t_cold:6.2f} s")
    verdict = "ok" if t_parse < PARSE_GOAL_S else "SLOW"
    print(f"  parse:       {t_parse:6.2f} s   goal < {PARSE_GOAL_S:.0f} s   {verdict}")
    print(f"  cache write: {t_write:6.2f} s   ({size_mb:.0f} MB .npz)")
    print(f"  sha256:      {t_hash:6.2f} s")
    print(
        f"cache load (hash + load): {t_load:6.2f} s   goal < {LOAD_GOAL_S:.0f} s   "
        f"{'ok' if t_load < LOAD_GOAL_S else 'SLOW'}"
    )
    return 0 if t_parse < PARSE_GOAL_S and t_load < LOAD_GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
