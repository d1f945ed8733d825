"""Video jobs: uploads kept on disk, analysed frame by frame on a background thread.

Each job is a folder ``<jobs_dir>/<id>/`` holding the upload (``input.<ext>``), its state
(``state.json``) and, once done, ``frames.csv``, ``frames.json`` and ``annotated.mp4``. Every
file is written to a temporary name and renamed into place, and the state says ``done`` only
after all results are in place; on start-up, jobs left ``queued`` or ``running`` by a stopped
server are marked ``interrupted`` and their partial files removed.

The frames go through the one video pipeline (:func:`ferkit.inference.run_video`): the same
key frames, tracks and rows (``frames.csv``) as ``ferkit predict`` and ``ferkit batch`` give.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FerkitError
from ..inference import AnnotatedVideo, Recognizer, TableSink, VideoInfo, VideoReader, run_video
from ..io import atomic_write_text
from .errors import ApiError
from .settings import ServeSettings

log = logging.getLogger(__name__)

RESULTS = {"frames.csv": "text/csv", "frames.json": "application/json", "annotated.mp4": "video/mp4"}
UNFINISHED = ("queued", "running")
JOB_ID = re.compile("[0-9a-f]{32}")
_PROGRESS_EVERY_S = 0.5


class JobStopped(Exception):
    """The server is shutting down while a job runs."""


def probe_video(path: Path, settings: ServeSettings) -> VideoInfo:
    """Open a video and check it against the limits: 422 if OpenCV cannot decode it, 413 if too big."""
    try:
        with VideoReader(path) as reader:
            info = reader.info
    except FerkitError:
        raise ApiError(422, "undecodable_video", "the video cannot be decoded (no readable frame)") from None
    if info.fps <= 0:
        info = dataclasses.replace(info, fps=25.0)
    if info.width * info.height > settings.max_video_pixels:
        raise ApiError(413, "video_too_large", f"the video is {info.width}x{info.height} pixels per frame, over the "
                                               f"limit of {settings.max_video_pixels:,}")
    if info.duration_s is not None and info.duration_s > settings.max_video_seconds:
        raise ApiError(413, "video_too_long", f"the video lasts {info.duration_s:.1f} s, over the limit of "
                                              f"{settings.max_video_seconds:g} s")
    return info


def _face_dict(face) -> dict[str, Any]:
    return {"box": list(face.box), "track": face.track, "detector_score": round(face.detector_score, 4),
            "label": face.label, "confidence": round(face.confidence, 5),
            "scores": {k: round(v, 5) for k, v in face.scores.items()}}


class FramesDocument:
    """The ``frames.json`` document of a job, built frame by frame (a sink of :func:`ferkit.inference.run_video`)."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def __enter__(self) -> FramesDocument:
        return self

    def write(self, frame, result) -> None:
        self.frames.append({"frame": result.frame, "time_s": round(result.time_s, 4),
                            "faces": [_face_dict(f) for f in result.faces]})

    def __exit__(self, *exc) -> None:
        return None


def analyse_video(src: Path, out_dir: Path, rec: Recognizer, info: VideoInfo, *, stride: int,
                  on_frame: Callable[[int], None]) -> dict[str, Any]:
    """Every ``stride``-th frame analysed through the one video pipeline, annotated and tabled; results atomic.

    Writes ``annotated.mp4``, ``frames.csv`` (the rows of :mod:`ferkit.inference.rows`) and
    ``frames.json``, and returns the latter's document. ``on_frame(n)`` follows progress and may raise to
    stop the job (its files are then not written).
    """
    reader = VideoReader(src, stride=stride)
    document = FramesDocument()
    sinks = [document, TableSink(out_dir / "frames.csv", rec.labels, source=src.name),
             AnnotatedVideo(out_dir / "annotated.mp4", info.fps / stride, (info.width, info.height))]
    summary = run_video(rec, reader, sinks, on_frame=on_frame)
    doc = {"video": {"fps": info.fps, "width": info.width, "height": info.height, "frames": reader.frames_read,
                     "stride": stride}, "labels": list(rec.labels), "frames": document.frames}
    if summary.frames == 0:
        raise ApiError(422, "undecodable_video", "the video has no readable frame")
    atomic_write_text(out_dir / "frames.json", json.dumps(doc))
    return doc


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` (0 if it is gone)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


class JobStore:
    """Job folders under ``settings.jobs_dir`` and the one background thread that works through them."""

    def __init__(self, settings: ServeSettings, recognizer: Recognizer) -> None:
        self.settings = settings
        self.root = Path(settings.jobs_dir)
        self.recognizer = recognizer
        self._jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._reserved = 0  # uploads in progress: slots taken before their job exists
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- state on disk -------------------------------------------------------------------
    def _save(self, state: dict[str, Any]) -> None:
        atomic_write_text(self.root / state["id"] / "state.json", json.dumps(state))

    def _update(self, job_id: str, **changes: Any) -> dict[str, Any] | None:
        """Change a job's state in memory and on disk, as one step under the lock (a job deleted
        meanwhile is left alone: None)."""
        with self._lock:
            if job_id not in self._jobs:
                return None
            state = {**self._jobs[job_id], **changes, "updated": time.time()}
            self._jobs[job_id] = state
            self._save(state)
        return state

    def recover(self) -> None:
        """Load the jobs on disk; mark unfinished ones interrupted and drop their partial files."""
        self.root.mkdir(parents=True, exist_ok=True)
        # Only folders named like a job: anything else in the folder is not ours to touch.
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and JOB_ID.fullmatch(p.name)):
            try:
                state = json.loads((folder / "state.json").read_text())
            except (OSError, ValueError):
                log.warning("removing %s: an upload that never became a job", folder)
                shutil.rmtree(folder, ignore_errors=True)
                continue
            if state.get("state") in UNFINISHED:
                for name in [*RESULTS, *(p.name for p in folder.glob(".*"))]:
                    (folder / name).unlink(missing_ok=True)
                state.update(state="interrupted", error="the server stopped before this job finished; "
                             "upload the video again", updated=time.time())
                self._save(state)
                log.info("job %s was unfinished at start-up: marked interrupted", state["id"])
            self._jobs[state["id"]] = state
        self._prune()  # the limits may have shrunk since the last start

    # ---- public API ----------------------------------------------------------------------
    def get(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            if job_id not in self._jobs:
                raise ApiError(404, "job_not_found", f"no job {job_id!r}")
            return dict(self._jobs[job_id])

    def list_jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return sorted((dict(s) for s in self._jobs.values()), key=lambda s: -s["created"])

    @property
    def queued(self) -> int:
        """Jobs waiting or running, uploads in progress included."""
        with self._lock:
            return self._waiting()

    def _waiting(self) -> int:
        return sum(s["state"] in UNFINISHED for s in self._jobs.values()) + self._reserved

    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its folder, its slot reserved at once; 429 when too many jobs are waiting.

        The slot counts against ``max_queued_jobs`` from here on, so parallel uploads cannot pass
        the limit; :meth:`submit` turns it into a job, :meth:`abandon` gives it back.
        """
        with self._lock:
            waiting = self._waiting()
            if waiting >= self.settings.max_queued_jobs:
                raise ApiError(429, "too_many_jobs", f"{waiting} video jobs are waiting; retry when one is done",
                               headers={"Retry-After": "10"})
            self._reserved += 1
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        try:
            folder.mkdir(parents=True)
        except BaseException:
            self.abandon(folder)
            raise
        return job_id, folder

    def abandon(self, folder: Path) -> None:
        """Give back the slot of an upload that did not become a job, and remove its folder."""
        with self._lock:
            self._reserved -= 1
        shutil.rmtree(folder, ignore_errors=True)

    def submit(self, job_id: str, input_name: str, info: VideoInfo) -> dict[str, Any]:
        """Record a validated upload as a queued job (in the slot :meth:`new_folder` reserved) and queue it."""
        stride = max(1, round(info.fps / self.settings.job_frame_rate))
        state = {"id": job_id, "state": "queued", "progress": 0.0, "frames_done": 0, "frames_total": info.frames,
                 "fps": info.fps, "width": info.width, "height": info.height, "duration_s": info.duration_s,
                 "stride": stride, "created": time.time(), "updated": time.time(), "error": None,
                 "input": input_name}
        with self._lock:
            self._reserved -= 1
            self._jobs[job_id] = state
        self._save(state)
        self._queue.put(job_id)
        self._prune()
        return dict(state)

    def _prune(self) -> None:
        """Delete the oldest finished jobs beyond ``max_jobs_kept`` jobs or ``max_jobs_bytes`` on disk.

        The newest finished job is always kept, so its results can be fetched however large it is.
        """
        with self._lock:
            finished = sorted((s for s in self._jobs.values() if s["state"] not in UNFINISHED),
                              key=lambda s: s["created"])[:-1]
            count = len(self._jobs)
        total = folder_bytes(self.root)
        for state in finished:
            if count <= self.settings.max_jobs_kept and total <= self.settings.max_jobs_bytes:
                break
            with self._lock:
                self._jobs.pop(state["id"], None)
            freed = folder_bytes(self.root / state["id"])
            shutil.rmtree(self.root / state["id"], ignore_errors=True)
            count, total = count - 1, total - freed
            log.info("job %s deleted: the jobs folder keeps at most %d jobs and %d MB", state["id"],
                     self.settings.max_jobs_kept, self.settings.max_jobs_bytes // 2**20)

    def result_path(self, job_id: str, name: str) -> Path:
        state = self.get(job_id)
        if state["state"] != "done":
            raise ApiError(409, "job_not_done", f"job {job_id} is {state['state']}; results exist once it is done")
        return self.root / job_id / name

    def delete(self, job_id: str) -> None:
        with self._lock:
            state = self._jobs.get(job_id)
            if state is None:
                raise ApiError(404, "job_not_found", f"no job {job_id!r}")
            if state["state"] in UNFINISHED:
                raise ApiError(409, "job_running", f"job {job_id} is {state['state']}; delete it once it has "
                                                   "finished")
            del self._jobs[job_id]
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    # ---- the worker ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="ferkit-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None and not self._stop.is_set():
            try:
                self._run(job_id)
            except Exception:  # the worker outlives any one job
                log.exception("job %s: unexpected failure", job_id)

    def _run(self, job_id: str) -> None:
        state = self._update(job_id, state="running")
        if state is None:
            return
        folder = self.root / job_id
        info = VideoInfo(source=state["input"], fps=state["fps"], width=state["width"], height=state["height"],
                         frames=state["frames_total"])
        max_frames = int(self.settings.max_video_seconds * info.fps) + 1
        last = [0.0]

        def on_frame(done: int) -> None:
            if self._stop.is_set():
                raise JobStopped
            if done * state["stride"] > max_frames:
                raise ApiError(413, "video_too_long", f"the video has more than {max_frames} frames")
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY_S:
                last[0] = now
                total = -(-info.frames // state["stride"]) if info.frames else 0
                self._update(job_id, frames_done=done * state["stride"],
                             progress=min(0.99, done / total) if total else 0.0)

        started = time.monotonic()
        try:
            doc = analyse_video(folder / state["input"], folder, self.recognizer, info, stride=state["stride"],
                                on_frame=on_frame)
        except JobStopped:
            self._update(job_id, state="interrupted", error="the server stopped while this job ran")
            return
        except ApiError as exc:
            self._update(job_id, state="failed", error=exc.message)
            return
        except Exception as exc:  # a job must never take the worker down
            log.exception("job %s failed", job_id)
            self._update(job_id, state="failed", error=f"{type(exc).__name__}: {exc}")
            return
        n = doc["video"]["frames"]
        self._update(job_id, state="done", progress=1.0, frames_done=n, frames_total=n,
                     duration_s=n / info.fps)
        log.info("job %s done: %d frames in %.1f s", job_id, n, time.monotonic() - started)
        self._prune()
