"""``run_batch``: expand the inputs, skip the finished ones, run an engine, commit its results in parts."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..inference.shipped import shipped_file, shipped_label, shipped_name
from ..inference.sources import Source, expand_inputs
from ..io import file_sha256, interrupts_held
from .analyze import BatchSettings, InputResult, face_schema
from .engine_local import run_local
from .engine_ray import run_ray
from .store import ERRORS_FILE, FACES_DIR, BatchStore

log = logging.getLogger(__name__)

#: The engines, the default first.
ENGINES = ("local", "ray")


@dataclass(slots=True)
class BatchSummary:
    """What one run did: inputs analysed now, skipped (finished before) and failed now; faces; wall time."""

    out: Path
    engine: str
    inputs: int
    done: int
    skipped: int
    failed: int
    faces: int
    frames: int
    seconds: float
    failed_total: int = 0

    @property
    def faces_per_second(self) -> float:
        """Faces found per second of wall time in this run (engine start-up included)."""
        return self.faces / self.seconds if self.seconds > 0 else 0.0

    def to_text(self) -> str:
        """One line, plus where to look for the failures."""
        text = (f"{self.inputs} input(s): {self.done} analysed, {self.skipped} skipped (finished before), "
                f"{self.failed} failed; {self.faces} face(s) in {self.frames} photo(s)/frame(s), {self.seconds:.1f} s, "
                f"{self.faces_per_second:.1f} faces/s ({self.engine} engine); results in {self.out / FACES_DIR}/")
        if self.failed_total:
            text += f"\n{self.failed_total} failed input(s) listed with the reason in {self.out / ERRORS_FILE}"
        return text


#: The face table's layout; a folder written with another one is refused (its parts could not be read together).
ROWS_VERSION = 3  # 3: turn and tilt after detector_score


def _model_sha256(model: str | None) -> str:
    """The hash of the model file (a shipped model's float checkpoint for a name or None)."""
    name = shipped_name(model)
    if name is None:
        return file_sha256(model)
    with shipped_file(name) as path:
        return file_sha256(path)


class _PartBuffer:
    """Finished results waiting to be committed as one part: at ``inputs`` inputs, ``rows`` rows or ``seconds``."""

    def __init__(self, store: BatchStore, *, inputs: int, rows: int = 200_000, seconds: float = 60.0) -> None:
        self.store, self.max_inputs, self.max_rows, self.max_seconds = store, inputs, rows, seconds
        self.results: list[InputResult] = []
        self.rows = 0
        self.since = time.monotonic()

    def add(self, result: InputResult) -> None:
        self.results.append(result)
        self.rows += result.rows.num_rows
        if (len(self.results) >= self.max_inputs or self.rows >= self.max_rows
                or time.monotonic() - self.since >= self.max_seconds):
            self.flush()

    def flush(self) -> None:
        """Commit the buffered results as one part and empty the buffer, uninterrupted: an interruption in between
        would leave the part out of ``inputs.parquet``, or commit its rows a second time."""
        with interrupts_held():
            self.store.commit(self.results)
            self.results, self.rows, self.since = [], 0, time.monotonic()


@dataclass(frozen=True, slots=True)
class BatchEngine:
    """Where the analysis runs: ``local`` (this process) or ``ray`` (the cluster at ``address``, or a local one
    started for the job when None, with ``workers`` model workers, each given ``photos_per_batch`` photos a call;
    see :func:`~ferkit.batch.engine_ray.run_ray`)."""

    name: str = "local"
    address: str | None = None
    workers: int | None = None
    photos_per_batch: int = 16

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ValueError(f"unknown engine {self.name!r}; valid engines: {', '.join(ENGINES)}")

    def results(self, pending: Sequence[Source], settings: BatchSettings, store: BatchStore,
                recognizer) -> Iterator[InputResult]:
        """Each pending source's result, in the order they finish."""
        if self.name == "local":
            return run_local(pending, settings, store.media_dir, recognizer=recognizer)
        return run_ray(pending, settings, store.media_dir, address=self.address, workers=self.workers,
                       photos_per_batch=self.photos_per_batch)


def _fingerprint(recognizer) -> dict:
    """What makes a dataset's rows what they are (rows version, model file and hash, labels, the resolved
    options): a later run into the same folder must match it."""
    used = recognizer.options  # the backend resolved ("auto" -> what runs here)
    name = shipped_name(used.model)
    return {"rows": ROWS_VERSION, "model": used.model if name is None else shipped_label(name),
            "model_sha256": _model_sha256(used.model), "labels": list(recognizer.labels),
            **{k: v for k, v in used.to_dict().items() if k not in ("model", "threads")}}


def _tally(summary: BatchSummary, result: InputResult) -> None:
    summary.done += result.status == "done"
    summary.failed += result.status != "done"
    summary.faces += result.faces
    summary.frames += result.frames


def run_batch(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    settings: BatchSettings | None = None,
    *,
    engine: BatchEngine = BatchEngine(),
    part_inputs: int = 256,
    retry_failed: bool = False,
    progress: bool = False,
) -> BatchSummary:
    """Analyse every photo and video named by ``inputs`` into the Parquet dataset ``out/faces``.

    Inputs finished by an earlier run into ``out`` are skipped (failed ones too, unless
    ``retry_failed``); bad inputs are recorded in ``out/errors.parquet``, never stop the job.
    ``engine`` says where the work runs (:class:`BatchEngine`). Results are committed every
    ``part_inputs`` inputs (and at least every minute). Layout: :mod:`ferkit.batch.store`.
    """
    if part_inputs < 1:
        raise ValueError(f"part_inputs must be at least 1, got {part_inputs}")
    settings = settings or BatchSettings()
    out = Path(out)
    sources = expand_inputs(inputs, exclude=out)
    recognizer = settings.recognizer()  # checks the model before any work; the ray engine needs only its labels
    start = time.perf_counter()
    with BatchStore(out, face_schema(recognizer.labels), _fingerprint(recognizer)) as store:
        pending = [s for s in sources if not store.finished(s.path, retry_failed=retry_failed)]
        summary = BatchSummary(out=out, engine=engine.name, inputs=len(sources), done=0,
                               skipped=len(sources) - len(pending), failed=0, faces=0, frames=0, seconds=0.0)
        log.info("%d input(s) to analyse, %d finished before", len(pending), summary.skipped)
        buffer = _PartBuffer(store, inputs=part_inputs)
        try:
            if pending:
                _consume(engine.results(pending, settings, store, recognizer), buffer, summary, progress=progress)
            buffer.flush()
        finally:
            if buffer.results:  # interrupted: keep what is finished
                try:
                    buffer.flush()
                except Exception as exc:  # noqa: BLE001 - the first error is the one to report
                    log.warning("could not save the finished inputs: %s", exc)
            store.write_tables()
        summary.seconds = time.perf_counter() - start
        summary.failed_total = sum(r["status"] != "done" for r in store.records.values())
    log.debug("%s", summary.to_text())
    return summary


def _consume(results: Iterator[InputResult], buffer: _PartBuffer, summary: BatchSummary, *, progress: bool) -> None:
    """Buffer and count each result as it comes, with a progress bar when ``progress``."""
    bar = tqdm(total=summary.inputs - summary.skipped, desc="batch", unit="input", dynamic_ncols=True,
               disable=None if progress else True)
    with contextlib.closing(results), bar:  # on an interruption, the engine stops what it started now
        for result in results:
            buffer.add(result)
            _tally(summary, result)
            bar.update()
            bar.set_postfix(faces=summary.faces, failed=summary.failed, refresh=False)
