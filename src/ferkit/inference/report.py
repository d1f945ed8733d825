"""A self-contained HTML report of a ``ferkit predict`` run: counts per emotion, every photo with its faces, every
video with its tracks, what was skipped and, for a shipped model, how far to trust it.

The page links the annotated copies and video files beside it by relative address, so the output folder can be
moved or zipped whole. It runs no script and loads nothing from elsewhere (its Content-Security-Policy says so),
and every name in it is escaped: a file called ``<script>.jpg`` is shown, not run.
"""

from __future__ import annotations

import html
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..io import atomic_write_text
from .pipeline import VideoSummary
from .results import Face, ImageResult

_STYLE = """body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right}.bar{background:#4a7fd0;height:.9em;display:inline-block}
figure{margin:1.5em 0;border-top:1px solid #ccc;padding-top:.5em}img,video{max-width:100%;max-height:480px}
.none{color:#777}"""
#: No script, nothing from elsewhere: the page's own files (opened from disk they are ``file:`` addresses) and styles.
_POLICY = "default-src 'none'; img-src 'self' file: data:; media-src 'self' file:; style-src 'unsafe-inline'"


@dataclass(frozen=True, slots=True)
class ReportPhoto:
    """A photo's result and its annotated copy (None when none was drawn)."""

    result: ImageResult
    annotated: Path | None = None


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(target: Path, folder: Path) -> str:
    """``target``'s address relative to the report's ``folder``, quoted for an attribute."""
    relative = Path(os.path.relpath(Path(target).resolve(), Path(folder).resolve())).as_posix()
    return _e(quote(relative))


def _row(cells: Sequence[object], numeric: Sequence[int] = ()) -> str:
    return "<tr>" + "".join(f"<td class=n>{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>"
                            for i, c in enumerate(cells)) + "</tr>"


def _table(header: Sequence[str], rows: Sequence[str]) -> str:
    return "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" + "".join(rows) + "</table>"


def _emotion_counts(photos: Sequence[ReportPhoto], videos: Sequence[VideoSummary], labels: Sequence[str]) -> str:
    """One row per emotion: faces in photos (with a bar) and video tracks mostly showing it."""
    faces = Counter(face.label for photo in photos for face in photo.result.faces)
    tracks = Counter(track.label for video in videos for track in video.tracks)
    total = max(sum(faces.values()), 1)
    rows = []
    for label in labels:
        bar = f"<span class=bar style=\"width:{200 * faces[label] / total:.0f}px\"></span>"
        rows.append(f"<tr><td>{_e(label)}</td><td>{bar}</td><td class=n>{faces[label]}</td>"
                    f"<td class=n>{faces[label] / total:.0%}</td><td class=n>{tracks[label]}</td></tr>")
    return _table(["emotion", "", "faces in photos", "share", "video tracks (mostly)"], rows)


def _face_row(index: int, face: Face) -> str:
    second = f"{face.runner_up[0]} {face.runner_up[1]:.0%}" if face.runner_up else ""
    return _row([index, ",".join(map(str, face.box)), face.label, f"{face.confidence:.0%}", second], numeric=(0, 3))


def _photo_section(photo: ReportPhoto, folder: Path) -> str:
    result = photo.result
    name = Path(result.path).name if result.path else "(array)"
    parts = [f"<figure><figcaption><b>{_e(name)}</b> · {result.width}x{result.height} · "
             f"{len(result.faces)} face(s)</figcaption>"]
    if photo.annotated is not None:
        parts.append(f"<img loading=lazy src=\"{_link(photo.annotated, folder)}\" alt=\"{_e(name)}, annotated\">")
    if result.faces:
        rows = [_face_row(i, face) for i, face in enumerate(result.faces)]
        parts.append(_table(["face", "box (x,y,w,h)", "emotion", "confidence", "runner-up"], rows))
    else:
        parts.append("<p class=none>no face found</p>")
    return "".join(parts) + "</figure>"


def _video_section(video: VideoSummary, folder: Path) -> str:
    name = Path(video.info.source).name
    parts = [f"<figure><figcaption><b>{_e(name)}</b> · {video.frames} frame(s) analysed, {video.frames_with_faces} "
             f"with faces, {len(video.tracks)} track(s)</figcaption>"]
    if "video" in video.outputs:
        parts.append(f"<video controls preload=metadata src=\"{_link(video.outputs['video'], folder)}\"></video>")
    if "plot" in video.outputs and Path(video.outputs["plot"]).is_file():
        parts.append(f"<img loading=lazy src=\"{_link(video.outputs['plot'], folder)}\" alt=\"emotion over time\">")
    rows = [_row([t.track, t.frames, f"{t.start_s:.2f}-{t.end_s:.2f}", t.label, f"{t.label_frames.get(t.label, 0)} "
                  f"of {t.frames}", f"{t.mean_scores[t.label]:.0%}"], numeric=(0, 1, 5)) for t in video.tracks]
    if rows:
        parts.append(_table(["track", "frames", "seconds", "mostly", "frames won", "mean probability"], rows))
    if "table" in video.outputs:
        table = Path(video.outputs["table"])
        parts.append(f"<p>per-frame table: <a href=\"{_link(table, folder)}\">{_e(table.name)}</a></p>")
    return "".join(parts) + "</figure>"


def report_html(folder: Path, photos: Sequence[ReportPhoto], videos: Sequence[VideoSummary],
                skipped: Sequence[str], labels: Sequence[str], model: str, about: Sequence[str] = ()) -> str:
    """The report page for a report written into ``folder`` (links are relative to it); ``about``: lines on how far
    to trust the model (:func:`~ferkit.inference.card.trust_notes` for a shipped one), listed at the end."""
    faces = sum(len(photo.result.faces) for photo in photos)
    summary = (f"model {_e(model)} · {len(photos)} photo(s) with {faces} face(s) · {len(videos)} video(s) · "
               f"{len(skipped)} skipped · {_e(time.strftime('%Y-%m-%d %H:%M'))}")
    body = [f"<h1>ferkit report</h1><p>{summary}</p><h2>Emotions</h2>", _emotion_counts(photos, videos, labels)]
    if photos:
        body += ["<h2>Photos</h2>", *(_photo_section(photo, folder) for photo in photos)]
    if videos:
        body += ["<h2>Videos</h2>", *(_video_section(video, folder) for video in videos)]
    if skipped:
        body += ["<h2>Skipped</h2><ul>", *(f"<li>{_e(reason)}</li>" for reason in skipped), "</ul>"]
    if about:
        body += ["<h2>How far to trust it</h2><ul>", *(f"<li>{_e(line)}</li>" for line in about), "</ul>"]
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_POLICY}\">"
            "<meta name=viewport content=\"width=device-width,initial-scale=1\">"
            f"<title>ferkit report</title><style>{_STYLE}</style></head><body>" + "".join(body) + "</body></html>\n")


def write_report(path: str | os.PathLike, photos: Sequence[ReportPhoto], videos: Sequence[VideoSummary],
                 skipped: Sequence[str], labels: Sequence[str], model: str, about: Sequence[str] = ()) -> Path:
    """Write :func:`report_html` to ``path`` atomically (a reader never sees half a page); returns the path."""
    path = Path(path)
    atomic_write_text(path, report_html(path.parent, photos, videos, skipped, labels, model, about))
    return path
