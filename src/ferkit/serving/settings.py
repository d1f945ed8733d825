"""Settings of the web service: the model, the worker count, the jobs folder, who may call it, and every limit."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..io import user_cache_dir

if TYPE_CHECKING:
    from ..inference.options import Options

MB = 1024 * 1024
#: Host names a browser may use to reach a service bound to the loopback (any port).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def default_jobs_dir() -> Path:
    """Where video jobs live unless told otherwise: ``FERKIT_JOBS_DIR``, else the per-user cache's ``jobs/``."""
    return Path(os.environ.get("FERKIT_JOBS_DIR") or user_cache_dir("jobs"))


def _default_options() -> Options:
    from ..inference.options import Options  # torch is imported only when a service starts

    return Options()


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """What :func:`~ferkit.serving.create_app` needs; every limit is enforced with a 4xx JSON error.

    ``workers`` inference threads each hold their own face detector and share the model (the
    detector and the model release the GIL, so workers run side by side); ``max_pending``
    requests may wait for a worker before new ones are refused with 429. ``request_timeout_s`` bounds a
    photo or live request from its first byte to its answer; a video upload gets
    ``video_upload_timeout_s``.

    Web pages from other origins are refused (403): only requests without an ``Origin`` header
    (scripts, curl), from the service's own page, or from ``allowed_origins`` are served, and the
    ``Host`` header must be one of ``allowed_hosts`` (``("*",)`` for any), which stops DNS
    rebinding. Job files live in ``jobs_dir`` and take at most ``max_jobs_bytes`` in all. ``options`` are the
    recognition options (:class:`ferkit.inference.Options`: model, backend, detector and its size, ...) of
    every request and job; a job analyses every frame up to ``job_frame_rate`` frames a second.
    """

    options: Options = field(default_factory=_default_options)
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    max_pending: int = 32
    jobs_dir: Path = field(default_factory=default_jobs_dir)
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    max_image_bytes: int = 20 * MB
    max_image_pixels: int = 40_000_000
    max_video_bytes: int = 200 * MB
    max_video_seconds: float = 300.0
    max_video_pixels: int = 3840 * 2160
    max_queued_jobs: int = 16
    max_jobs_kept: int = 100
    max_jobs_bytes: int = 2048 * MB
    max_live_frame_bytes: int = 2 * MB
    max_live_pixels: int = 1280 * 960
    request_timeout_s: float = 15.0
    video_upload_timeout_s: float = 300.0
    job_frame_rate: float = 30.0

    def __post_init__(self) -> None:
        for name in ("workers", "max_pending", "max_image_bytes", "max_image_pixels",
                     "max_video_bytes", "max_video_pixels", "max_queued_jobs", "max_jobs_kept", "max_jobs_bytes",
                     "max_live_frame_bytes", "max_live_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_video_seconds", "request_timeout_s", "video_upload_timeout_s", "job_frame_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        object.__setattr__(self, "jobs_dir", Path(self.jobs_dir).expanduser())
        object.__setattr__(self, "allowed_origins", tuple(o.rstrip("/").lower() for o in self.allowed_origins))
        object.__setattr__(self, "allowed_hosts", tuple(h.lower() for h in self.allowed_hosts))
        if not self.allowed_hosts:
            raise ValueError("allowed_hosts must name at least one host (or '*' for any)")

    def limits(self) -> dict[str, int | float]:
        """The limits a client should know about (shown by ``GET /v1/health``)."""
        return {
            "max_image_bytes": self.max_image_bytes,
            "max_image_pixels": self.max_image_pixels,
            "max_video_bytes": self.max_video_bytes,
            "max_video_seconds": self.max_video_seconds,
            "max_video_pixels": self.max_video_pixels,
            "max_live_frame_bytes": self.max_live_frame_bytes,
            "max_live_pixels": self.max_live_pixels,
            "request_timeout_s": self.request_timeout_s,
            "video_upload_timeout_s": self.video_upload_timeout_s,
        }
