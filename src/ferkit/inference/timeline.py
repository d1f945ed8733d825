"""Emotion over time per tracked face: collected frame by frame in bounded memory, drawn as a PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .draw import label_colour
from .images import save_rgb
from .results import ImageResult
from .timeline_plot import Panel, render_timeline


@dataclass(slots=True)
class TrackStats:
    """What one track did: frames seen, first and last time, mean probability per label, and how many of its
    frames each label won."""

    track: int
    frames: int
    start_s: float
    end_s: float
    mean_scores: dict[str, float]
    label_frames: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The label of the most frames (ties: the higher mean probability); "mostly" means this."""
        if not self.label_frames:
            return max(self.mean_scores, key=self.mean_scores.get)
        return max(self.mean_scores, key=lambda k: (self.label_frames.get(k, 0), self.mean_scores[k]))


@dataclass(slots=True)
class _Series:
    """One track's points; each point is the mean of ``step`` consecutive sightings."""

    n_labels: int
    start_s: float
    end_s: float = 0.0
    frames: int = 0
    step: int = 1
    times: list[float] | None = field(default_factory=list)  # None once the points are dropped
    probs: list[np.ndarray] = field(default_factory=list)
    total: np.ndarray | None = None
    wins: np.ndarray | None = None  # frames each label was the top one
    _pending: list[tuple[float, np.ndarray]] = field(default_factory=list)

    def add(self, time_s: float, p: np.ndarray, max_points: int) -> None:
        self.frames += 1
        self.end_s = time_s
        self.total = p.copy() if self.total is None else self.total + p
        if self.wins is None:
            self.wins = np.zeros(self.n_labels, np.int64)
        self.wins[int(np.argmax(p))] += 1
        if self.times is None:
            return
        self._pending.append((time_s, p))
        if len(self._pending) < self.step:
            return
        self._push()
        if len(self.times) > max_points:  # halve the resolution: average neighbouring points
            n = len(self.times) // 2 * 2
            self.times = [(a + b) / 2 for a, b in zip(self.times[0:n:2], self.times[1:n:2])] + self.times[n:]
            self.probs = [(a + b) / 2 for a, b in zip(self.probs[0:n:2], self.probs[1:n:2])] + self.probs[n:]
            self.step *= 2

    def _push(self) -> None:
        if self._pending:
            self.times.append(float(np.mean([t for t, _ in self._pending])))
            self.probs.append(np.mean([p for _, p in self._pending], axis=0))
            self._pending = []

    def drop_points(self) -> None:
        """Keep the statistics, forget the points (the track is not plotted)."""
        self.times, self.probs, self._pending = None, [], []

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        self._push()
        return np.asarray(self.times), np.asarray(self.probs).reshape(-1, self.n_labels)


class EmotionTimeline:
    """Each track's probabilities over time, for :meth:`save`'s plot and :meth:`stats`.

    Memory stays bounded on long videos: a track keeps at most ``max_points`` points; past
    that, neighbouring points are averaged in pairs and each later point averages twice as
    many frames (the whole video is kept, at a coarser time step). Faces without a track id
    are counted as track -1.
    """

    def __init__(self, labels: Sequence[str], *, max_points: int = 1000, max_plotted: int = 64) -> None:
        self.labels = tuple(labels)
        self.max_points = max(2, int(max_points))
        self.max_plotted = max(1, int(max_plotted))
        self._series: dict[int, _Series] = {}
        self._latest = 0.0

    def add(self, result: ImageResult) -> None:
        """Record the faces of one frame (its ``time_s``, or its frame index if it has no time)."""
        time_s = float(result.time_s if result.time_s is not None else result.frame or 0)
        self._latest = time_s
        for face in result.faces:
            key = -1 if face.track is None else face.track
            if key not in self._series:
                self._series[key] = _Series(len(self.labels), start_s=time_s)
                self._forget_points()
            p = np.array([face.scores.get(label, 0.0) for label in self.labels], dtype=np.float32)
            self._series[key].add(time_s, p, self.max_points)

    def _forget_points(self) -> None:
        """Past ``max_plotted`` tracks with points, drop the points (not the statistics) of the least-seen track that
        has ended (unseen for a second): it can no longer be among the most-seen ones a plot shows, and memory
        stays bounded on a long video with many short tracks."""
        with_points = [(s.frames, k) for k, s in self._series.items() if s.times is not None]
        if len(with_points) <= self.max_plotted:
            return
        ended = [(frames, k) for frames, k in with_points if self._series[k].end_s < self._latest - 1.0]
        if ended:
            self._series[min(ended)[1]].drop_points()

    def stats(self) -> list[TrackStats]:
        """One :class:`TrackStats` per track, the most-seen first."""
        out = []
        for key, s in self._series.items():
            mean = s.total / max(1, s.frames)
            wins = dict(zip(self.labels, map(int, s.wins if s.wins is not None else [0] * len(self.labels))))
            out.append(TrackStats(key, s.frames, s.start_s, s.end_s, dict(zip(self.labels, map(float, mean))), wins))
        return sorted(out, key=lambda t: (-t.frames, t.track))

    def save(self, path: str | os.PathLike, *, title: str = "", max_tracks: int = 6) -> Path:
        """Plot the ``max_tracks`` most-seen tracks, one panel each (stacked probabilities over time); atomic."""
        panels = []
        for track in [t for t in self.stats() if self._series[t.track].times is not None][:max_tracks]:
            times, probs = self._series[track.track].points()
            if len(times) == 1:  # a single sighting: draw it as a thin bar
                times, probs = np.array([times[0] - 0.02, times[0] + 0.02]), np.repeat(probs, 2, axis=0)
            name = "untracked faces" if track.track < 0 else f"track {track.track}"
            panels.append(Panel(f"{name}: {track.frames} frame(s), mostly {track.label}", times, probs))
        colours = [label_colour(label) for label in self.labels]
        return save_rgb(path, render_timeline(panels, self.labels, colours, title), compress_level=1)
