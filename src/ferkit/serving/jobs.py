"""Video jobs: uploads kept on disk, analysed frame by frame on a background thread.

Each job is a folder ``<jobs_dir>/<id>/`` holding the upload (``input.<ext>``), its state
(``state.json``) and, once done, ``frames.csv``, ``frames.json`` and ``annotated.mp4``. Every
file is written to a temporary name and renamed into place, and the state says ``done`` only
after all results are in place; on start-up, jobs left ``queued`` or ``running`` by a stopped
server are marked ``interrupted`` and their partial files removed.

The frame loop is self-contained (OpenCV capture, a frame stride, the recognizer per analysed
frame, boxes held on the frames between) so it can later move onto the shared video module.
"""

from __future__ import annotations

import contextlib
import csv
import io
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from ..inference import Recognizer, VideoWriter, draw_faces
from ..inference.video import open_capture
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


@dataclass(frozen=True, slots=True)
class VideoInfo:
    fps: float
    frames: int | None
    width: int
    height: int

    @property
    def duration_s(self) -> float | None:
        return self.frames / self.fps if self.frames else None


def probe_video(path: Path, settings: ServeSettings) -> VideoInfo:
    """Open a video and check it against the limits: 422 if OpenCV cannot decode it, 413 if too big."""
    cap = open_capture(str(path))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            raise ApiError(422, "undecodable_video", "the video cannot be decoded (no readable frame)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    fps = fps if 0 < fps < 1000 else 25.0
    height, width = frame.shape[:2]
    info = VideoInfo(fps=float(fps), frames=count if count > 0 else None, width=width, height=height)
    if width * height > settings.max_video_pixels:
        raise ApiError(413, "video_too_large", f"the video is {width}x{height} pixels per frame, over the limit "
                                               f"of {settings.max_video_pixels:,}")
    if info.duration_s is not None and info.duration_s > settings.max_video_seconds:
        raise ApiError(413, "video_too_long", f"the video lasts {info.duration_s:.1f} s, over the limit of "
                                              f"{settings.max_video_seconds:g} s")
    return info


def _face_dict(face) -> dict[str, Any]:
    return {"box": list(face.box), "detector_score": round(face.detector_score, 4), "label": face.label,
            "confidence": round(face.confidence, 5), "scores": {k: round(v, 5) for k, v in face.scores.items()}}


def frames_csv(frames: list[dict], labels: list[str]) -> str:
    """One row per face per analysed frame (a frame without faces keeps one row with empty face columns)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["frame", "time_s", "face", "x", "y", "w", "h", "detector_score", "label", "confidence", *labels])
    for fr in frames:
        if not fr["faces"]:
            writer.writerow([fr["frame"], fr["time_s"], *[""] * (8 + len(labels))])
        for i, f in enumerate(fr["faces"]):
            writer.writerow([fr["frame"], fr["time_s"], i, *f["box"], f["detector_score"], f["label"],
                             f["confidence"], *(f["scores"].get(label, "") for label in labels)])
    return buffer.getvalue()


def analyse_video(src: Path, out_dir: Path, rec: Recognizer, info: VideoInfo, *, stride: int, max_frames: int,
                  progress: Callable[[int], None], stop: threading.Event) -> dict[str, Any]:
    """The frame loop: every ``stride``-th frame analysed, every frame annotated; results written atomically.

    Returns the ``frames.json`` document. Raises :class:`JobStopped` when ``stop`` is set and
    :class:`ApiError` when the video turns out longer than ``max_frames``.
    """
    cap = open_capture(str(src))
    frames: list[dict[str, Any]] = []
    faces: list = []
    index = 0
    try:
        with VideoWriter(out_dir / "annotated.mp4", fps=info.fps, size=(info.width, info.height)) as writer:
            while True:
                if stop.is_set():
                    raise JobStopped
                ok, bgr = cap.read()
                if not ok:
                    break
                if index >= max_frames:
                    raise ApiError(413, "video_too_long", f"the video has more than {max_frames} frames")
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                if index % stride == 0:
                    faces = rec(rgb).faces
                    frames.append({"frame": index, "time_s": round(index / info.fps, 4),
                                   "faces": [_face_dict(f) for f in faces]})
                writer.write(draw_faces(rgb, faces))
                index += 1
                progress(index)
            if index == 0:
                raise ApiError(422, "undecodable_video", "the video has no readable frame")
            labels = list(rec.labels)
            doc = {"video": {"fps": info.fps, "width": info.width, "height": info.height, "frames": index,
                             "stride": stride}, "labels": labels, "frames": frames}
            atomic_write_text(out_dir / "frames.json", json.dumps(doc))
            atomic_write_text(out_dir / "frames.csv", frames_csv(frames, labels))
        return doc
    finally:
        cap.release()


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
        info = VideoInfo(fps=state["fps"], frames=state["frames_total"], width=state["width"], height=state["height"])
        max_frames = int(self.settings.max_video_seconds * info.fps) + 1
        last = [0.0]

        def progress(done: int) -> None:
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY_S:
                last[0] = now
                total = info.frames or 0
                self._update(job_id, frames_done=done, progress=min(0.99, done / total) if total else 0.0)

        started = time.monotonic()
        try:
            doc = analyse_video(folder / state["input"], folder, self.recognizer, info, stride=state["stride"],
                                max_frames=max_frames, progress=progress, stop=self._stop)
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
