"""The Ray engine: one Recognizer per worker; photos through Ray Data in batches, videos one actor call each.

Photos go through ``ray.data`` ``map_batches`` with a callable class on an actor pool, so each
worker loads the model once and analyses ``photos_per_batch`` photos per call. A video's frames
must be tracked in order, so each video is one call on a pool of video actors (also one model
each); a worker process that dies on a video fails that video, not the job, and is replaced.
Results stream back to the driver, which writes every part (see :mod:`ferkit.batch.store`):
workers need to read the inputs at the same paths (a shared file system on a multi-node
cluster) and, for annotated copies, to write under ``OUT/media`` at the same path.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import FerkitError
from ..inference.sources import Source
from .analyze import BatchSettings, InputResult, analyze_source

log = logging.getLogger(__name__)

#: What a worker sends back for each input (:meth:`InputResult.to_wire`).
WIRE_SCHEMA = pa.schema([("source", pa.string()), ("kind", pa.string()), ("status", pa.string()),
                         ("frames", pa.int64()), ("faces", pa.int64()), ("seconds", pa.float64()),
                         ("error", pa.string()), ("rows", pa.binary())])


def import_ray():
    """The ``ray`` module, or a FerkitError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the photo path needs Ray Data
    except ImportError:
        raise FerkitError("the ray engine needs Ray Data: pip install 'ferkit[ray]' (or use --engine local)") from None
    return ray


class _Worker:
    """One model per worker process; ``threads`` torch and OpenCV threads (the worker's CPUs)."""

    def __init__(self, settings: dict[str, Any], media_dir: str, threads: int) -> None:
        import cv2
        import torch

        torch.set_num_threads(threads)  # this process is the worker's own
        cv2.setNumThreads(threads)
        self.settings = BatchSettings(**settings)
        self.media_dir = Path(media_dir)
        self.rec = self.settings.recognizer()

    def analyze(self, path: str, kind: str, name: str) -> dict[str, Any]:
        """The wire form of one input's result."""
        return analyze_source(self.rec, Source(path, kind, name), self.settings, self.media_dir).to_wire()


class PhotoWorker(_Worker):
    """A Ray Data callable class: a batch of photo sources (path, kind, name) in, their results out."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [self.analyze(r["path"], r["kind"], r["name"]) for r in batch.to_pylist()]
        return pa.Table.from_pylist(rows, schema=WIRE_SCHEMA)


class VideoWorker(_Worker):
    """A Ray actor analysing whole videos (and inputs of unknown kind), one call each."""


def _map_batches_without_restarts(dataset, options: dict[str, Any]):
    """``map_batches`` with ``max_restarts=0``: a dead worker fails the run (which resumes), and Ray's core
    does not print its "constructor arguments in the object store" error line on every clean run. Ray
    deprecates passing remote options this way; where a Ray refuses it, the default restarts apply."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return dataset.map_batches(PhotoWorker, **options, max_restarts=0)
        except TypeError:
            return dataset.map_batches(PhotoWorker, **options)


def _photos(ray, photos: Sequence[Source], worker_args: dict[str, Any], workers: int, cpus: float,
            batch_size: int) -> Iterator[InputResult]:
    from ray.data import ActorPoolStrategy

    items = [{"path": s.path, "kind": s.kind, "name": s.name} for s in photos]
    batch_size = max(1, min(batch_size, -(-len(items) // workers)))  # few photos: still one batch per worker
    size = max(1, min(workers, -(-len(items) // batch_size)))
    options = {"fn_constructor_kwargs": worker_args, "batch_size": batch_size, "batch_format": "pyarrow",
               "compute": ActorPoolStrategy(size=size), "num_cpus": cpus}
    ds = _map_batches_without_restarts(ray.data.from_items(items), options)
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            yield InputResult.from_wire(row)


def _videos(ray, videos: Sequence[Source], worker_args: dict[str, Any], workers: int,
            cpus: float) -> Iterator[InputResult]:
    actor_class = ray.remote(num_cpus=cpus)(VideoWorker)
    idle = [actor_class.remote(**worker_args) for _ in range(max(1, min(workers, len(videos))))]
    queue = list(reversed(videos))
    running: dict[Any, tuple[Any, Source]] = {}
    try:
        while queue or running:
            while queue and idle:
                actor, source = idle.pop(), queue.pop()
                running[actor.analyze.remote(source.path, source.kind, source.name)] = (actor, source)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            actor, source = running.pop(ref)
            try:
                result = InputResult.from_wire(ray.get(ref))
                idle.append(actor)
            except ray.exceptions.RayActorError as exc:
                log.warning("%s: the worker died while analysing it; starting another", source.path)
                result = InputResult(source.path, source.kind, "failed", 0, 0, 0.0,
                                     f"the worker process died while analysing it ({type(exc).__name__})",
                                     pa.table({}))
                idle.append(actor_class.remote(**worker_args))
            yield result
    finally:
        for actor in idle + [a for a, _ in running.values()]:
            with contextlib.suppress(Exception):
                ray.kill(actor)


@contextlib.contextmanager
def quiet_ray() -> Iterator[None]:
    """Keep Ray Data's INFO lines and notices off the terminal for the block (failures still raise)."""
    data_log = logging.getLogger("ray.data")
    saved = data_log.level
    data_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        data_log.setLevel(saved)


def run_ray(sources: Sequence[Source], settings: BatchSettings, media_dir: Path, *, address: str | None = None,
            workers: int | None = None, cpus_per_worker: int = 1, photos_per_batch: int = 16) -> Iterator[InputResult]:
    """The result of each source, in the order they finish (a generator).

    Connects to the cluster at ``address`` (e.g. ``auto`` or ``ray://head:10001``), or starts a
    local one when None, unless this process is already connected (``ray.init`` done by the
    caller), and shuts down only what it started. ``workers`` model workers (default: the
    cluster's CPUs / ``cpus_per_worker``, and never more), each with ``cpus_per_worker`` CPUs and threads.
    """
    if cpus_per_worker < 1 or photos_per_batch < 1 or (workers is not None and workers < 1):
        raise ValueError("workers, cpus_per_worker and photos_per_batch must be at least 1")
    ray = import_ray()
    with quiet_ray():
        yield from _run_on_ray(ray, sources, settings, media_dir, address, workers, cpus_per_worker, photos_per_batch)


def _run_on_ray(ray, sources: Sequence[Source], settings: BatchSettings, media_dir: Path, address: str | None,
                workers: int | None, cpus_per_worker: int, photos_per_batch: int) -> Iterator[InputResult]:
    started = not ray.is_initialized()
    if started:
        kwargs = {"include_dashboard": False} if address is None else {}
        ray.init(address=address, logging_level=logging.ERROR, **kwargs)
    elif address is not None:
        log.info("already connected to Ray; address %s not used", address)
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars
    context.enable_progress_bars = False  # the command shows its own
    try:
        most = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))
        if workers is not None and workers > most:  # actors beyond the CPUs would wait for ever
            log.warning("%d workers asked for; the cluster has CPUs for %d", workers, most)
        n = min(workers or most, most)
        log.info("ray: %d worker(s) of %d CPU(s) on %d node(s)", n, cpus_per_worker, len(ray.nodes()))
        worker_args = {"settings": asdict(settings), "media_dir": str(media_dir), "threads": cpus_per_worker}
        photos = [s for s in sources if s.kind == "photo"]
        others = [s for s in sources if s.kind != "photo"]
        if photos:
            yield from _photos(ray, photos, worker_args, n, cpus_per_worker, photos_per_batch)
        if others:
            yield from _videos(ray, others, worker_args, n, cpus_per_worker)
    finally:
        context.enable_progress_bars = saved
        if started:
            ray.shutdown()
