"""The inference pool: worker threads sharing one loaded model, each with its own face detector."""

from __future__ import annotations

import asyncio
import copy
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from ..inference import Recognizer
from .errors import ApiError

log = logging.getLogger(__name__)

T = TypeVar("T")


def clone_recognizer(recognizer: Recognizer) -> Recognizer:
    """A recognizer sharing ``recognizer``'s model (read-only at inference) with a detector of its own.

    Detectors keep per-call state (OpenCV objects), so threads must not share one.
    """
    twin = copy.copy(recognizer)
    twin.detector = copy.deepcopy(recognizer.detector)
    return twin


class Engine:
    """Runs ``fn(recognizer, ...)`` on a pool of ``workers`` threads, refusing work past ``max_pending``.

    ``pending`` counts calls queued or running; past the limit :meth:`run` answers 429 at once
    instead of queueing without bound, and a call that outlives its timeout answers 408 (a call
    not yet started is then dropped).
    """

    def __init__(self, recognizer: Recognizer, workers: int = 1, max_pending: int = 32) -> None:
        self.recognizer = recognizer
        copies = [recognizer]
        for _ in range(workers - 1):
            try:
                copies.append(clone_recognizer(recognizer))
            except Exception as exc:  # a detector that cannot be copied: one worker then
                log.warning("cannot copy the detector (%s); using one inference worker", exc)
                break
        self.workers = len(copies)
        self.max_pending = max_pending
        self._free: queue.SimpleQueue[Recognizer] = queue.SimpleQueue()
        for rec in copies:
            self._free.put(rec)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="ferkit-infer")
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def warm_up(self) -> None:
        """Run every worker's recognizer once, so the first request pays no start-up cost."""
        blank = np.zeros((64, 64, 3), np.uint8)
        futures = [self._executor.submit(self._call, lambda rec: rec(blank), ()) for _ in range(self.workers)]
        for f in futures:
            f.result()

    def _call(self, fn: Callable[..., T], args: tuple) -> T:
        rec = self._free.get()
        try:
            return fn(rec, *args)
        finally:
            self._free.put(rec)

    def _release(self, _future) -> None:
        with self._lock:
            self._pending -= 1

    def ensure_capacity(self) -> None:
        """Refuse with 429 now, before an upload is read, when no more work may wait."""
        if self._pending >= self.max_pending:
            raise ApiError(429, "busy", f"the server is busy ({self._pending} requests waiting); retry shortly",
                           headers={"Retry-After": "1"})

    async def run(self, fn: Callable[..., T], *args, timeout: float) -> T:
        """``fn(recognizer, *args)`` on a worker; 429 when too much is waiting, 408 after ``timeout`` s."""
        with self._lock:
            self.ensure_capacity()
            self._pending += 1
        future = self._executor.submit(self._call, fn, args)
        future.add_done_callback(self._release)
        if timeout <= 0:
            future.cancel()
            raise ApiError(408, "timeout", "the request ran out of time before it could be analysed")
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except asyncio.TimeoutError:
            raise ApiError(408, "timeout", f"the analysis did not finish within {timeout:.1f} s; "
                                           "try a smaller image or retry when the server is less busy") from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
