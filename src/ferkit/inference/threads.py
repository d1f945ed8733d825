"""Overlapping the stages of a video: reading ahead on one thread, writing behind on another, in bounded memory.

OpenCV's decoder, libx264 through PyAV, YuNet through ctypes and onnxruntime all let go of the
GIL while they compute, so a thread per stage keeps both cores busy.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[T], size: int = 4, name: str = "ferkit-read") -> Iterator[T]:
    """``items`` in order, produced on another thread at most ``size`` ahead (a generator).

    An error in the producer is raised here; stopping early (closing the generator) stops the
    producer at its next item.
    """
    handoff: queue.Queue = queue.Queue(maxsize=max(1, size))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                handoff.put(item)
            handoff.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            handoff.put(_Failure(exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)
        thread.join()


class Behind:
    """Call ``work(item)`` for each :meth:`put` item on another thread, in order, at most ``size`` waiting.

    :meth:`close` waits for the queued items and raises the first error ``work`` raised (a
    :meth:`put` after an error raises it at once). Use as a context manager; leaving with an
    error drops the queued items.
    """

    def __init__(self, work: Callable[[Any], None], size: int = 4, name: str = "ferkit-write") -> None:
        self._work = work
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self._error is None:
                try:
                    self._work(item)
                except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
                    self._error = exc

    def put(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Behind:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._error = self._error or exc  # the worker skips what is left
        try:
            self.close()
        except BaseException:
            if exc_type is None:
                raise
