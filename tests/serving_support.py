"""Helpers for the serving tests: a shared recognizer, a gated detector, a real server on a free port."""

from __future__ import annotations

import contextlib
import copy
import functools
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np

#: The base URL of in-process test clients: the service answers loopback Host names only.
LOCAL = "http://127.0.0.1"


@functools.lru_cache(maxsize=1)
def shared_recognizer():
    """The shipped default model, loaded once for all serving tests."""
    from ferkit.inference import Recognizer

    return Recognizer()


class GatedDetector:
    """Wraps a detector; calls on images larger than 64 px wait until :attr:`release` is set.

    The app's warm-up runs on a 64 px blank image, so it passes; tests use the gate to hold a
    request (or a video job) in flight for as long as they need, without sleeping.
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def __deepcopy__(self, memo):
        twin = GatedDetector(copy.deepcopy(self.inner, memo))
        twin.entered, twin.release = self.entered, self.release  # copies share the gate
        return twin

    def __call__(self, image: np.ndarray):
        if max(image.shape[:2]) > 64:
            self.entered.set()
            self.release.wait(60)
        return self.inner(image)


def gated_recognizer():
    """A copy of the shared recognizer whose detector waits at a gate; returns (recognizer, gate)."""
    rec = copy.copy(shared_recognizer())
    rec.detector = GatedDetector(rec.detector)
    return rec, rec.detector


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextlib.contextmanager
def served_default(jobs_dir) -> Iterator[str]:
    """The service with the shipped model (:func:`shared_recognizer`) and two job workers, live on 127.0.0.1 and
    keeping its jobs under ``jobs_dir``: yields its base URL."""
    from ferkit.serving import ServeSettings, create_app

    app = create_app(ServeSettings(jobs_dir=jobs_dir, workers=2), recognizer=shared_recognizer())
    with live_server(app) as url:
        yield url
