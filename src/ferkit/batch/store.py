"""The output folder of a batch job: a Parquet dataset of faces that a re-run continues.

Layout of ``OUT/``:

- ``faces/part-<run>-<n>.parquet``: the face rows (see :mod:`ferkit.batch.analyze`), each part
  holding the rows of a group of finished inputs. A part is written to a hidden temporary file
  and renamed into place, and its Parquet metadata lists the inputs it finishes (done or
  failed), so the rename is the one moment at which those inputs become finished: an
  interrupted job loses at most the inputs not yet in a part, and never leaves a partial file or
  a row twice. ``faces/`` is a Parquet dataset: ``pyarrow.dataset.dataset("OUT/faces")`` or
  ``pandas.read_parquet("OUT/faces")`` read it.
- ``inputs.parquet``: one row per finished input (status, frames, faces, seconds, error, part);
  ``errors.parquet``: the failed ones with the reason. Both are rebuilt from the parts at the
  end of every run.
- ``batch.json``: the model, its sha256, detector, stride and labels; a re-run with other
  settings is refused rather than mixing results.
- ``media/``: annotated copies, when asked for.

Only one job may write to a folder at a time (a lock file, ``.lock``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import FerkitError
from ..inference.rows import SORT_KEYS
from ..io import atomic_open, atomic_write_text, output_folder
from .analyze import InputResult

try:
    import fcntl
except ImportError:  # not on Windows: no lock there
    fcntl = None

log = logging.getLogger(__name__)

FACES_DIR = "faces"
MEDIA_DIR = "media"
SETTINGS_FILE = "batch.json"
INPUTS_FILE = "inputs.parquet"
ERRORS_FILE = "errors.parquet"
#: Parquet metadata key of a part: JSON ``{"inputs": [record, ...]}`` of the inputs it finishes.
META_KEY = b"ferkit.batch"

INPUT_SCHEMA = pa.schema([("source", pa.string()), ("kind", pa.string()), ("status", pa.string()),
                          ("frames", pa.int64()), ("faces", pa.int64()), ("seconds", pa.float64()),
                          ("error", pa.string()), ("part", pa.string())])


def _part_records(path: Path) -> list[dict[str, Any]]:
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[META_KEY])["inputs"]
    except Exception as exc:  # noqa: BLE001 - any unreadable part is reported the same way
        raise FerkitError(f"{path}: not a readable ferkit batch part ({type(exc).__name__}: {exc}); "
                          "move it away and re-run to redo its inputs") from None


class BatchStore:
    """The state of ``out``: which inputs are finished, and the writing of new parts (a context manager).

    ``settings`` (model, detector, stride, labels, ...) must equal those of the job that started
    the folder, if any. ``labels`` fix the face table's probability columns.
    """

    def __init__(self, out: str | os.PathLike, schema: pa.Schema, settings: dict[str, Any]) -> None:
        self.out = Path(out)
        self.faces_dir = self.out / FACES_DIR
        self.media_dir = self.out / MEDIA_DIR
        self.schema = schema
        self.settings = dict(settings)
        self.records: dict[str, dict[str, Any]] = {}
        self._run = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
        self._seq = 0
        self._lock = None

    def __enter__(self) -> BatchStore:
        output_folder(self.out, what="--out folder")
        output_folder(self.faces_dir, what="--out folder")
        self._acquire_lock()
        try:
            self._check_settings()
            self._remove_leftovers()
            self._load()
        except BaseException:
            self._release_lock()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._release_lock()

    def _acquire_lock(self) -> None:
        self._lock = open(self.out / ".lock", "a")  # noqa: SIM115 - held until __exit__
        if fcntl is None:
            return
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._release_lock()
            raise FerkitError(f"{self.out}: another ferkit batch job is writing to this folder") from None

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None

    def _check_settings(self) -> None:
        path = self.out / SETTINGS_FILE
        if not path.exists():
            atomic_write_text(path, json.dumps(self.settings, indent=2) + "\n")
            return
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FerkitError(f"{path}: cannot read the settings of the earlier job ({exc})") from None
        differ = {k: (stored.get(k), v) for k, v in self.settings.items() if stored.get(k) != v}
        if differ:
            what = "; ".join(f"{k}: {old!r} before, {new!r} now" for k, (old, new) in differ.items())
            raise FerkitError(f"{self.out} holds results of other settings ({what}); re-run with the same "
                              "options, or choose another --out")

    def _remove_leftovers(self) -> None:
        """Delete temporary files of an interrupted job (hidden ``.*.tmp*`` files)."""
        for folder in (self.faces_dir, self.media_dir):
            if folder.is_dir():
                for tmp in folder.rglob(".*.tmp*"):
                    log.debug("removing %s (left by an interrupted job)", tmp)
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()

    def _load(self) -> None:
        for part in self.parts():
            for record in _part_records(part):
                known = self.records.get(record["source"])
                if known is None or known["status"] != "done":  # done wins; a later failure replaces an earlier one
                    self.records[record["source"]] = {**record, "part": part.name}
        log.info("%s: %d input(s) finished before (%d failed)", self.out, len(self.records),
                 sum(r["status"] != "done" for r in self.records.values()))

    def parts(self) -> list[Path]:
        """The committed part files, oldest first."""
        return sorted(self.faces_dir.glob("part-*.parquet"))

    def finished(self, source: str, *, retry_failed: bool = False) -> bool:
        """Whether ``source`` needs no work: done, or failed (unless ``retry_failed``)."""
        record = self.records.get(source)
        return record is not None and (record["status"] == "done" or not retry_failed)

    def commit(self, results: Iterable[InputResult]) -> Path | None:
        """Write the rows of ``results`` as one new part, atomically; they are finished once it returns."""
        results = list(results)
        if not results:
            return None
        self._seq += 1
        path = self.faces_dir / f"part-{self._run}-{self._seq:05d}.parquet"
        tables = [r.rows.cast(self.schema) for r in results if r.rows.num_columns]  # failures may carry none
        table = pa.concat_tables([self.schema.empty_table(), *tables])
        table = table.sort_by([(k, "ascending") for k in SORT_KEYS])
        records = [r.record() for r in results]
        table = table.replace_schema_metadata({META_KEY: json.dumps({"inputs": records}).encode()})
        with atomic_open(path, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
        for record in records:
            self.records[record["source"]] = {**record, "part": path.name}
        log.debug("%s: %d input(s), %d row(s)", path.name, len(records), table.num_rows)
        return path

    def write_tables(self) -> None:
        """Rewrite ``inputs.parquet`` and ``errors.parquet`` from the finished inputs (atomically)."""
        records = [self.records[s] for s in sorted(self.records)]
        inputs = pa.Table.from_pylist(records, schema=INPUT_SCHEMA)
        errors = inputs.filter(pc.equal(inputs["status"], "failed")).select(["source", "kind", "error"])
        for name, table in ((INPUTS_FILE, inputs), (ERRORS_FILE, errors)):
            with atomic_open(self.out / name, "wb") as handle:
                pq.write_table(table, handle)


def read_faces(out: str | os.PathLike) -> pa.Table:
    """Every face row of a batch output folder, sorted by source, frame and face (all in memory)."""
    parts = sorted((Path(out) / FACES_DIR).glob("part-*.parquet"))
    if not parts:
        raise FerkitError(f"{out}: no results (no {FACES_DIR}/part-*.parquet)")
    table = pa.concat_tables([pq.read_table(p).replace_schema_metadata(None) for p in parts])
    return table.sort_by([(k, "ascending") for k in SORT_KEYS])


def read_inputs(out: str | os.PathLike) -> pa.Table:
    """The inputs table of a batch output folder (one row per finished input)."""
    return pq.read_table(Path(out) / INPUTS_FILE)


def read_errors(out: str | os.PathLike) -> pa.Table:
    """The errors table of a batch output folder (source, kind, error)."""
    return pq.read_table(Path(out) / ERRORS_FILE)
