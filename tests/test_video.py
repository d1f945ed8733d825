"""Video input, tracking through the Recognizer, streamed outputs, bad inputs, memory, the webcam loop.

Synthetic clips are written in tmp_path with cv2.VideoWriter: real face crops from the shared
photos moving across a plain background (for the real detector), or bright squares (for a tiny
stand-in detector where a test is about files, errors or memory rather than detection).
"""

from __future__ import annotations

import copy
import csv
import inspect
import json
import math
import os
import random
import threading
import time
import tracemalloc

import cv2
import numpy as np
import pytest
import torch

from ferkit.errors import FerkitError
from ferkit.evaluation.class_bias import logit_layer
from ferkit.inference import (
    Detection,
    EmotionTimeline,
    Face,
    Frame,
    ImageResult,
    Recognizer,
    TableSink,
    TableWriter,
    VideoInfo,
    VideoReader,
    analyze_video,
    create_detector,
    load_rgb,
    read_frames,
    result_rows,
    results_to_rows,
    row_columns,
    track_video,
    write_table,
)
from ferkit.inference import webcam as webcam_module
from ferkit.inference.video import VideoWriter, default_detect_threads
from ferkit.labels import EMOTIONS
from ferkit.models import load_model, save_model
from synthetic import small_checkpoint

LABELS = tuple(EMOTIONS)
BACKGROUND = 60


def write_clip(path, frames, fps: float = 10.0):
    """Write RGB frames (an iterable of equal-sized arrays) as an mp4v MP4; return the path."""
    writer = None
    for rgb in frames:
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (rgb.shape[1], rgb.shape[0]))
            assert writer.isOpened()
        writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))
    writer.release()
    return path


def square_frames(n: int, size=(96, 72), gap_every: int = 0):
    """A bright 24 px square moving right 2 px a frame on gray; absent on every ``gap_every``-th frame."""
    width, height = size
    for i in range(n):
        rgb = np.full((height, width, 3), BACKGROUND, np.uint8)
        if not (gap_every and i % gap_every == gap_every - 1):
            x = 4 + (2 * i) % (width - 30)
            rgb[24:48, x:x + 24] = 230
        yield rgb


def blob_detector(calls: list | None = None, fail_at: int | None = None, error: type[BaseException] = RuntimeError):
    """A stand-in face detector: boxes around bright blobs. Records each call (with traced memory) in ``calls``."""
    def detect(rgb):
        if calls is not None:
            calls.append(tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0)
            if fail_at is not None and len(calls) >= fail_at:
                raise error("detector failed on purpose")
        mask = (rgb[:, :, 0] > 150).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        return [Detection((int(x), int(y), int(w), int(h)), 0.99) for x, y, w, h, area in stats[1:n] if area > 100]
    return detect


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pt")


@pytest.fixture(scope="module")
def recognizer(checkpoint):
    return Recognizer.from_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def square_clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clips") / "square.mp4", square_frames(12, gap_every=4))


# ---- reading ----------------------------------------------------------------------------------------------------


def test_reader_yields_frames_with_index_time_and_stride(square_clip):
    reader = VideoReader(square_clip)
    assert (reader.info.fps, reader.info.width, reader.info.height, reader.info.frames) == (10.0, 96, 72, 12)
    frames = list(reader)
    assert [f.index for f in frames] == list(range(12))
    assert [f.time_s for f in frames] == pytest.approx([i / 10 for i in range(12)])
    assert frames[0].rgb.shape == (72, 96, 3) and frames[0].rgb.dtype == np.uint8
    assert abs(int(frames[0].rgb[36, 10, 0]) - 230) < 20 and abs(int(frames[0].rgb[5, 5, 0]) - BACKGROUND) < 10
    assert reader._cap is None  # released at the end
    with pytest.raises(RuntimeError, match="once"):
        iter(reader)
    strided = list(read_frames(square_clip, stride=5))
    assert [f.index for f in strided] == [0, 5, 10]
    assert [f.time_s for f in strided] == pytest.approx([0.0, 0.5, 1.0])


def test_reader_is_a_generator_and_memory_stays_flat(tmp_path):
    clip = write_clip(tmp_path / "long.mp4", square_frames(150))
    frames = read_frames(clip)
    assert inspect.isgenerator(frames)
    tracemalloc.start()
    try:
        memory = [tracemalloc.get_traced_memory()[0] for _ in frames]
        kept, kept_memory = [], []  # the same loop keeping its frames: shows tracemalloc sees frame memory
        for frame in read_frames(clip):
            kept.append(frame)
            kept_memory.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    frame_bytes = 96 * 72 * 3
    assert len(memory) == 150
    assert memory[-1] - memory[20] < 5 * frame_bytes  # flat: not one frame per frame read
    assert kept_memory[-1] - kept_memory[20] > 100 * frame_bytes


@pytest.mark.slow
def test_analyze_video_memory_stays_flat(checkpoint, tmp_path):
    clip = write_clip(tmp_path / "long.mp4", square_frames(100))
    calls: list[int] = []
    rec = Recognizer.from_checkpoint(checkpoint, detector=blob_detector(calls))
    rec.options = rec.options.replace(detect_every=1)  # a detector call per frame: the memory probe
    tracemalloc.start()
    try:
        summary = analyze_video(rec, clip, tmp_path / "out", table_format="jsonl")
    finally:
        tracemalloc.stop()
    assert summary.frames == 100 and len(calls) == 100
    growth = calls[-1] - calls[30]  # traced memory when the detector sees frame 99 vs frame 30
    assert growth < 10 * 96 * 72 * 3, f"memory grew by {growth} bytes over 70 frames"
    assert len((tmp_path / "out" / "long_frames.jsonl").read_text().splitlines()) == 100


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "text", "truncated", "no_frames"])
def test_bad_videos_are_clear_errors_naming_the_file(case, square_clip, tmp_path):
    path = tmp_path / f"{case}.mp4"
    if case == "folder":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a video\n" * 20)
    elif case == "truncated":
        data = square_clip.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "no_frames":
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 72))
        writer.release()
    with pytest.raises(FerkitError, match=f"{case}.mp4"):
        VideoReader(path)


def test_camera_that_cannot_be_opened_is_a_clear_error():
    with pytest.raises(FerkitError, match="camera 97"):
        VideoReader(97)


def test_bad_stride_raises(square_clip):
    with pytest.raises(ValueError, match="stride"):
        VideoReader(square_clip, stride=0)


# ---- results, rows and tables ------------------------------------------------------------------------------------


def test_frame_results_round_trip_and_rows():
    face = Face(box=(1, 2, 30, 40), detector_score=0.9, label="happy", confidence=0.8,
                scores={"happy": 0.8, "sad": 0.2}, track=3)
    result = ImageResult(path="v.mp4", width=100, height=80, faces=[face], frame=7, time_s=0.7)
    assert ImageResult.from_json(result.to_json()) == result
    assert result.to_dict()["frame"] == 7 and result.to_dict()["faces"][0]["track"] == 3
    assert "frame" not in ImageResult(path="a.jpg", width=1, height=1).to_dict()  # photos unchanged
    rows = result_rows(result, ["happy", "sad"])
    assert rows == [{"source": "v.mp4", "kind": "video", "frame": 7, "time_s": 0.7, "width": 100, "height": 80,
                     "faces": 1, "face": 0, "track": 3, "x": 1, "y": 2, "w": 30, "h": 40, "detector_score": 0.9,
                     "turn": None, "tilt": None, "label": "happy", "confidence": 0.8, "happy": 0.8, "sad": 0.2}]
    empty = result_rows(ImageResult(path="v.mp4", width=1, height=1, frame=8, time_s=0.8), ["happy", "sad"])
    assert empty == [{**dict.fromkeys(row_columns(["happy", "sad"])), "source": "v.mp4", "kind": "video",
                      "frame": 8, "time_s": 0.8, "width": 1, "height": 1, "faces": 0}]


def test_photos_and_frames_share_one_row_schema():
    face = Face(box=(1, 2, 3, 4), detector_score=0.9, label="sad", confidence=0.6, scores={"sad": 0.6, "happy": 0.4})
    photo = results_to_rows([ImageResult(path="a.jpg", width=9, height=9, faces=[face])])
    assert (photo[0]["kind"], photo[0]["frame"], photo[0]["time_s"], photo[0]["track"]) == ("photo", 0, None, None)
    tracked = Face(**{**face.to_dict(), "box": (1, 2, 3, 4), "track": 5})
    frames = [ImageResult(path="v.mp4", width=9, height=9, faces=[tracked], frame=4, time_s=0.4),
              ImageResult(path="v.mp4", width=9, height=9, frame=5, time_s=0.5)]
    rows = results_to_rows(frames)
    assert [(r["frame"], r["time_s"], r["track"], r["faces"]) for r in rows] == [(4, 0.4, 5, 1), (5, 0.5, None, 0)]
    assert list(rows[0]) == list(rows[1]) == list(photo[0]) == list(row_columns(["sad", "happy"]))


def _read_table(path, fmt):
    if fmt == "csv":
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    if fmt == "json":
        return json.loads(path.read_text())
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
def test_table_writer_round_trip(fmt, tmp_path):
    path = tmp_path / f"t.{fmt}"
    rows = [{"frame": i, "label": "happy" if i % 2 else None, "p": np.float32(i / 4)} for i in range(5)]
    with TableWriter(path, {"frame": int, "label": str, "p": float}, batch_rows=2) as table:
        table.write_rows(rows)
    back = _read_table(path, fmt)
    assert len(back) == 5 and list(back[0]) == ["frame", "label", "p"]
    if fmt == "csv":
        assert back[1] == {"frame": "1", "label": "happy", "p": "0.25"} and back[0]["label"] == ""
    else:
        assert back[1] == {"frame": 1, "label": "happy", "p": 0.25} and back[0]["label"] is None


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
def test_table_writer_failure_leaves_the_old_file_and_no_temporary(fmt, tmp_path):
    path = tmp_path / f"t.{fmt}"
    path.write_text("old results")
    with pytest.raises(KeyError), TableWriter(path, {"frame": int}) as table:
        table.write({"frame": 1})
        raise KeyError("interrupted")
    assert path.read_text() == "old results"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_table_writer_checks_columns_and_format(tmp_path):
    with pytest.raises(ValueError, match="valid formats"):
        TableWriter(tmp_path / "t.csv", {"a": int}, "xlsx")
    with pytest.raises(ValueError, match="suffix"):
        TableWriter(tmp_path / "t.txt", {"a": int})
    with pytest.raises(ValueError, match="'b'"), TableWriter(tmp_path / "t.csv", {"a": int}) as table:
        table.write({"a": 1, "b": 2})
    assert not (tmp_path / "t.csv").exists()
    assert json.loads(write_table(tmp_path / "e.json", [], columns={"a": int}).read_text()) == []


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    with pytest.raises(FerkitError, match="pyarrow"), TableWriter(tmp_path / "t.parquet", {"a": int}):
        pass
    assert list(tmp_path.iterdir()) == []


def test_timeline_keeps_bounded_points_and_exact_means():
    timeline = EmotionTimeline(["happy", "sad"], max_points=10)
    for i in range(1000):
        p = 1.0 if i < 250 else 0.0
        face = Face(box=(0, 0, 1, 1), detector_score=1, label="", confidence=1, scores={"happy": p, "sad": 1 - p},
                    track=0)
        timeline.add(ImageResult(path=None, width=1, height=1, faces=[face], frame=i, time_s=i / 10))
    times, probs = timeline._series[0].points()
    assert len(times) <= 11 and (np.diff(times) > 0).all() and times[0] < 10 and times[-1] > 90
    (stats,) = timeline.stats()
    assert stats.frames == 1000 and stats.mean_scores["happy"] == pytest.approx(0.25) and stats.label == "sad"
    assert (stats.start_s, stats.end_s) == (0.0, 99.9)


def test_a_track_is_mostly_the_label_of_most_frames_not_of_the_highest_mean():
    timeline = EmotionTimeline(["happy", "neutral"])
    for i in range(10):  # 6 frames barely neutral, 4 frames clearly happy: happy has the higher mean
        happy = 0.45 if i < 6 else 0.99
        face = Face(box=(0, 0, 1, 1), detector_score=1, label="", confidence=1,
                    scores={"happy": happy, "neutral": 1 - happy}, track=3)
        timeline.add(ImageResult(path=None, width=1, height=1, faces=[face], frame=i, time_s=i / 10))
    (stats,) = timeline.stats()
    assert stats.mean_scores["happy"] > stats.mean_scores["neutral"]
    assert stats.label_frames == {"happy": 4, "neutral": 6} and stats.label == "neutral"


# ---- the pipeline with a stand-in detector: tables, gaps, atomic outputs ----------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_analyze_video_tables_parse_back(fmt, checkpoint, square_clip, tmp_path):
    rec = Recognizer.from_checkpoint(checkpoint, detector=blob_detector())
    rec.options = rec.options.replace(smoothing=0.5, detect_every=1)  # every frame: the gaps last one frame
    summary = analyze_video(rec, square_clip, tmp_path, table_format=fmt)
    rows = _read_table(tmp_path / f"square_frames.{fmt}", fmt)
    assert list(rows[0]) == list(row_columns(LABELS))
    assert [int(r["frame"]) for r in rows] == list(range(12))
    with_face = [r for r in rows if int(r["faces"]) == 1]
    gaps = [r for r in rows if int(r["faces"]) == 0]
    assert [int(r["frame"]) for r in gaps] == [3, 7, 11]
    assert all(r["track"] in ("", None) and r["label"] in ("", None) for r in gaps)
    assert {int(r["track"]) for r in with_face} == {0}  # one square, one track across the gaps
    for r in with_face:
        assert r["label"] in LABELS and math.isclose(sum(float(r[k]) for k in LABELS), 1.0, abs_tol=1e-5)
        assert abs(int(r["y"]) - 24) <= 1 and abs(int(r["w"]) - 24) <= 2
        assert abs(int(r["x"]) - (4 + 2 * int(r["frame"]))) <= 1  # this frame's box, not a neighbour's
        assert float(r["time_s"]) == pytest.approx(int(r["frame"]) / 10)
    assert summary.frames == 12 and summary.frames_with_faces == 9 and summary.faces == 9
    assert [(t.track, t.frames) for t in summary.tracks] == [(0, 9)]


def test_analyze_video_rows_carry_the_tracks_smoothed_scores(checkpoint, tmp_path):
    """With smoothing alpha, each face row holds alpha * this frame + (1 - alpha) * the track's last row, carried
    across frames without a face; label and confidence follow the smoothed scores."""
    frames = list(square_frames(12, gap_every=4))
    rng = np.random.default_rng(0)
    for rgb in frames:  # a face whose look changes from frame to frame, so its own scores do too
        rgb[:, :, 1:][rgb[:, :, 1:] == 230] = rng.integers(0, 255, int((rgb[:, :, 1:] == 230).sum()))
    clip = write_clip(tmp_path / "noisy.mp4", frames)
    model, info = load_model(checkpoint)
    with torch.no_grad():  # the random model's scores barely move; sharpened, they follow the noise
        logit_layer(model, len(LABELS)).weight.mul_(100)
    sharp = save_model(tmp_path / "sharp.pt", model, info)
    rows = {}
    for alpha in (None, 0.3):
        rec = Recognizer.from_checkpoint(sharp, detector=blob_detector())
        rec.options = rec.options.replace(smoothing=alpha, detect_every=1)
        analyze_video(rec, clip, tmp_path / str(alpha), table_format="jsonl", annotate=False)
        found = _read_table(tmp_path / str(alpha) / "noisy_frames.jsonl", "jsonl")
        rows[alpha] = [np.array([r[k] for k in LABELS]) for r in found if r["faces"] == 1]
        if alpha:
            labels = [(r["label"], r["confidence"]) for r in found if r["faces"] == 1]
    raw, smoothed = rows[None], rows[0.3]
    assert len(raw) == len(smoothed) == 9
    assert max(np.abs(a - b).max() for a, b in zip(raw, raw[1:])) > 1e-3  # the frames' own scores differ
    expected = [raw[0]]
    for p in raw[1:]:
        expected.append(0.3 * p + 0.7 * expected[-1])
    np.testing.assert_allclose(np.array(smoothed), np.array(expected), atol=1e-5)
    assert not np.allclose(np.array(smoothed), np.array(raw), atol=1e-4)
    assert labels == [(LABELS[int(np.argmax(s))], pytest.approx(float(s.max()), abs=1e-5)) for s in smoothed]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_interrupted_analysis_leaves_no_output_files(error, checkpoint, square_clip, tmp_path):
    rec = Recognizer.from_checkpoint(checkpoint, detector=blob_detector([], fail_at=5, error=error))
    rec.options = rec.options.replace(detect_every=1)
    out = tmp_path / "out"
    with pytest.raises(error, match="on purpose"):
        analyze_video(rec, square_clip, out, table_format="parquet")
    assert list(out.iterdir()) == []  # no table, video or plot, and no temporary file


# ---- detection ahead on worker threads ---------------------------------------------------------------------------


class _ListReader:
    """A stand-in VideoReader over exact in-memory frames (no codec): frame i has value i in its corner."""

    is_camera = False

    def __init__(self, frames):
        self.info = VideoInfo(source="memory", fps=10.0, width=96, height=72, frames=len(frames))
        self._frames = frames

    def __iter__(self):
        for i, rgb in enumerate(self._frames):
            yield Frame(i, i / 10, rgb)


def _indexed_frames(n):
    frames = list(square_frames(n, gap_every=5))
    for i, rgb in enumerate(frames):
        rgb[0, 0] = i
    return frames


class _SlowThreadSafeDetector:
    """blob_detector with a random delay (so threads finish out of order); records calls and overlap."""

    thread_safe = True

    def __init__(self, consumed: list[int]):
        self.detect, self.consumed = blob_detector(), consumed
        self.lock, self.running, self.most_running, self.calls = threading.Lock(), 0, 0, []
        self.rng = random.Random(0)

    def __call__(self, rgb):
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.calls.append((int(rgb[0, 0, 0]), len(self.consumed)))
            delay = self.rng.uniform(0, 0.01)
        time.sleep(delay)
        try:
            return self.detect(rgb)
        finally:
            with self.lock:
                self.running -= 1


def _rows(pairs):
    return [(f.index, [(x.box, x.scores, x.track) for x in r.faces]) for f, r in pairs]


def test_detecting_ahead_on_threads_gives_the_same_results_in_order(checkpoint):
    frames = _indexed_frames(30)
    sequential = _rows(track_video(Recognizer.from_checkpoint(checkpoint, detector=blob_detector()),
                                   _ListReader(frames), detect_threads=1, detect_every=1))
    consumed: list[int] = []
    detector = _SlowThreadSafeDetector(consumed)
    rec = Recognizer.from_checkpoint(checkpoint, detector=detector)
    threaded = []
    for frame, result in track_video(rec, _ListReader(frames), detect_threads=3, detect_every=1):
        consumed.append(frame.index)
        threaded.append((frame, result))
    assert _rows(threaded) == sequential and [i for i, _ in sequential] == list(range(30))
    assert sum(bool(faces) for _, faces in sequential) == 24  # the blob, absent on every 5th frame
    assert detector.most_running > 1  # the threads did overlap
    # Bounded look-ahead: frame i is detected only once frame i - 4 (threads + 1) has been handed over.
    assert all(consumed_then >= index - 4 for index, consumed_then in detector.calls)


def test_stopping_early_stops_detecting_ahead(checkpoint):
    detector = _SlowThreadSafeDetector([])
    rec = Recognizer.from_checkpoint(checkpoint, detector=detector)
    for n, _ in enumerate(track_video(rec, _ListReader(_indexed_frames(40)), detect_threads=2, detect_every=1)):
        if n == 2:
            break
    assert len(detector.calls) <= 3 + 2 + 1


def test_a_failing_detector_thread_fails_the_analysis_without_outputs(checkpoint, square_clip, tmp_path):
    class Failing(_SlowThreadSafeDetector):
        def __call__(self, rgb):
            if len(self.calls) >= 5:
                raise RuntimeError("detector failed on purpose")
            return super().__call__(rgb)

    rec = Recognizer.from_checkpoint(checkpoint, detector=Failing([]))
    rec.options = rec.options.replace(detect_every=1)
    with pytest.raises(RuntimeError, match="on purpose"):
        analyze_video(rec, square_clip, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(ValueError, match="detect_threads"):
        next(track_video(rec, VideoReader(square_clip), detect_threads=0))


def test_a_detector_failing_with_key_frames_stops_the_analysis_without_outputs(checkpoint, square_clip, tmp_path):
    class FailingLater(_SlowThreadSafeDetector):
        def __call__(self, rgb):
            if len(self.calls) >= 2:  # the two key frames pass, the frames after the last one fail
                raise RuntimeError("detector failed on purpose")
            return super().__call__(rgb)

    rec = Recognizer.from_checkpoint(checkpoint, detector=FailingLater([]))  # the default: key frames every 10
    with pytest.raises(RuntimeError, match="on purpose"):
        analyze_video(rec, square_clip, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no table, video, plot or temporary file
    assert not [t.name for t in threading.enumerate() if t.name.startswith("ferkit-")]  # read/detect/encode ended


def test_detection_threads_default_to_one_for_cameras_and_unsafe_detectors(square_clip):
    reader = VideoReader(square_clip)
    assert default_detect_threads(reader) == min(2, os.cpu_count() or 1, torch.get_num_threads())
    reader.close()
    camera = _ListReader([])
    camera.is_camera = True
    assert default_detect_threads(camera) == 1
    assert create_detector("yunet").thread_safe and not create_detector("haar").thread_safe


# ---- the pipeline with the real detector on moving real faces -------------------------------------------------------

FACE_SIZE, FRAME_SIZE, N_FRAMES = 80, (256, 192), 16


@pytest.fixture(scope="module")
def two_face_clip(shared_data, tmp_path_factory):
    """Two real faces crossing a 256x192 frame in opposite directions: A high moving right, B low moving left."""
    detector = create_detector("yunet")
    patches = []
    for name in ("single_face_pyfeat.jpg", "person03.jpg"):
        rgb = load_rgb(shared_data / "photos" / name)
        x, y, w, h = detector(rgb)[0].box
        side, cx, cy = int(max(w, h) * 1.5), x + w // 2, y + h // 2
        crop = rgb[max(0, cy - side // 2):cy + side // 2, max(0, cx - side // 2):cx + side // 2]
        patches.append(cv2.resize(crop, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA))

    def frames():
        for i in range(N_FRAMES):
            rgb = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), (150, 120, 90), np.uint8)
            xa, xb = 8 + 5 * i, 168 - 4 * i
            rgb[8:8 + FACE_SIZE, xa:xa + FACE_SIZE] = patches[0]
            rgb[104:104 + FACE_SIZE, xb:xb + FACE_SIZE] = patches[1]
            yield rgb

    return write_clip(tmp_path_factory.mktemp("faces") / "two_faces.mp4", frames())


@pytest.fixture(scope="module")
def analysed(recognizer, two_face_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysed")
    summary = analyze_video(recognizer, two_face_clip, out, table_format="jsonl")
    rows = [json.loads(line) for line in (out / "two_faces_frames.jsonl").read_text().splitlines()]
    return summary, rows


def _tracks_by_face(rows):
    """Track ids of face A (upper half) and face B (lower half), and A's x positions in frame order."""
    upper = [r for r in rows if r["faces"] and r["y"] < FRAME_SIZE[1] // 2]
    lower = [r for r in rows if r["faces"] and r["y"] >= FRAME_SIZE[1] // 2]
    return {r["track"] for r in upper}, {r["track"] for r in lower}, [r["x"] for r in upper]


def test_two_moving_faces_get_two_stable_tracks(analysed):
    summary, rows = analysed
    assert sorted({r["frame"] for r in rows}) == list(range(N_FRAMES))
    assert all(r["faces"] == 2 for r in rows) and len(rows) == 2 * N_FRAMES
    upper, lower, xs = _tracks_by_face(rows)
    assert len(upper) == 1 and len(lower) == 1 and upper != lower
    assert xs == sorted(xs) and xs[-1] - xs[0] > 50  # face A did move right, by 75 px
    assert sorted(t.frames for t in summary.tracks) == [N_FRAMES, N_FRAMES]


def test_real_faces_same_with_and_without_detection_threads(recognizer, two_face_clip):
    runs = [_rows(track_video(recognizer, VideoReader(two_face_clip), detect_threads=n)) for n in (1, 2)]
    assert runs[0] == runs[1] and sum(len(faces) for _, faces in runs[0]) == 2 * N_FRAMES


def test_annotated_video_and_plot_are_complete(analysed):
    summary, _ = analysed
    assert set(summary.outputs) == {"table", "video", "plot"}
    cap = cv2.VideoCapture(str(summary.outputs["video"]))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == N_FRAMES and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == FRAME_SIZE
    png = summary.outputs["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "2 track(s)" in summary.to_text()


def test_stride_analyses_every_nth_frame_and_keeps_tracks(recognizer, two_face_clip, tmp_path):
    summary = analyze_video(recognizer, VideoReader(two_face_clip, stride=4), tmp_path, table_format="csv")
    with (tmp_path / "two_faces_frames.csv").open(newline="") as handle:
        rows = [{**r, "y": int(r["y"]), "x": int(r["x"]), "faces": int(r["faces"])} for r in csv.DictReader(handle)]
    assert sorted({int(r["frame"]) for r in rows}) == [0, 4, 8, 12]
    upper, lower, _ = _tracks_by_face(rows)
    assert len(upper) == 1 and len(lower) == 1 and upper != lower  # 20 px jumps, still one track each
    cap = cv2.VideoCapture(str(summary.outputs["video"]))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 4 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(2.5)


# ---- the shared real clips end to end -----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_single_face_video(recognizer, shared_data, tmp_path):
    video = shared_data / "videos" / "single_face.mp4"
    smoothed = copy.copy(recognizer)
    smoothed.options = recognizer.options.replace(smoothing=0.3)
    summary = analyze_video(smoothed, VideoReader(video, stride=6), tmp_path, table_format="parquet")
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "single_face_frames.parquet").to_pylist()
    assert [r["frame"] for r in rows] == list(range(0, 72, 6))  # one face in every frame: one row each
    assert all(r["faces"] == 1 and r["track"] == 0 and r["w"] > 50 for r in rows)
    assert summary.info.fps == 30 and (summary.info.width, summary.info.height) == (640, 360)
    assert [(t.track, t.frames) for t in summary.tracks] == [(0, 12)]
    assert summary.outputs["video"].stat().st_size > 10_000 and summary.outputs["plot"].stat().st_size > 10_000


@pytest.mark.slow
def test_real_no_face_video(recognizer, shared_data, tmp_path):
    summary = analyze_video(recognizer, VideoReader(shared_data / "videos" / "no_face.mp4", stride=10), tmp_path,
                            annotate=False)
    with (tmp_path / "no_face_frames.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["frame"]) for r in rows] == list(range(0, 91, 10))
    assert all(r["faces"] == "0" and r["track"] == "" for r in rows)
    assert summary.faces == 0 and summary.tracks == [] and "video" not in summary.outputs
    assert not (tmp_path / "no_face_annotated.mp4").exists() and (tmp_path / "no_face_emotions.png").is_file()


# ---- the webcam window ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("gui", "display", "expected"), [
    ("NONE", ":0", "opencv-python"), ("GTK3", None, "DISPLAY"), ("GTK3", ":0", None), ("QT5", None, None)])
def test_display_problem(gui, display, expected, monkeypatch):
    monkeypatch.setattr(webcam_module.cv2, "getBuildInformation", lambda: f"\n  GUI:                   {gui}\n")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display:
        monkeypatch.setenv("DISPLAY", display)
    else:
        monkeypatch.delenv("DISPLAY", raising=False)
    if gui == "QT5":  # a display-less check only matters on Linux
        monkeypatch.setattr(webcam_module.sys, "platform", "darwin")
    problem = webcam_module.display_problem()
    assert problem is None if expected is None else expected in problem


def test_webcam_without_display_is_a_clear_error(recognizer, monkeypatch):
    monkeypatch.setattr(webcam_module, "display_problem", lambda: "there is no display (test)")
    with pytest.raises(FerkitError, match="no display"):
        webcam_module.run_webcam(recognizer, 0)


def test_webcam_loop_draws_frames_until_q(checkpoint, square_clip, monkeypatch, tmp_path):
    shown, keys = [], iter([-1, -1, ord("q")])
    cv2_module = webcam_module.cv2
    monkeypatch.setattr(webcam_module, "display_problem", lambda: None)
    monkeypatch.setattr(cv2_module, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2_module, "imshow", lambda name, bgr: shown.append(bgr.copy()))
    monkeypatch.setattr(cv2_module, "waitKey", lambda delay: next(keys))
    monkeypatch.setattr(cv2_module, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2_module, "destroyWindow", lambda *a: None)
    rec = Recognizer.from_checkpoint(checkpoint, detector=blob_detector())
    log = TableSink(tmp_path / "log.csv", rec.labels)  # ferkit webcam --log
    assert webcam_module.run_webcam(rec, str(square_clip), sinks=[log]) == 3  # a file stands in for the camera
    assert len(shown) == 3 and shown[0].shape == (72, 96, 3)
    rows = _read_table(tmp_path / "log.csv", "csv")
    assert list(rows[0]) == list(row_columns(LABELS)) and [int(r["frame"]) for r in rows] == [0, 1, 2]
    raw = next(iter(read_frames(square_clip)))
    assert (shown[0] != raw.rgb[:, :, ::-1]).any()  # a box and tag were drawn


@pytest.mark.parametrize("codec", ["h264", "mp4v"])
def test_the_video_writer_writes_either_codec_at_odd_sizes(codec, tmp_path):
    from ferkit.inference.encoders import h264_available

    if codec == "h264" and not h264_available():
        pytest.skip("PyAV with libx264 is not installed")
    frames = [np.full((37, 51, 3), 20 * i, np.uint8) for i in range(8)]
    with VideoWriter(tmp_path / "v.mp4", fps=12.5, size=(51, 37), codec=codec) as video:
        for frame in frames:
            video.write(frame)
    assert video.codec == codec and sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    read = []
    while (got := cap.read())[0]:
        read.append(got[1])
    assert len(read) == 8 and abs(cap.get(cv2.CAP_PROP_FPS) - 12.5) < 0.01
    assert abs(float(read[5].mean()) - 100) < 6  # the frames' content survived encoding (gray level 100)
    with pytest.raises(ValueError, match="unknown video codec"):
        VideoWriter(tmp_path / "w.mp4", fps=10, size=(8, 8), codec="vp9").__enter__()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]  # the refused writer left no file


def test_timeline_memory_is_bounded_by_tracks_plotted_not_tracks_seen(tmp_path):
    timeline = EmotionTimeline(LABELS, max_plotted=4)
    scores = {label: 1.0 / len(LABELS) for label in LABELS}
    for i in range(300):  # a new 3-frame track every 3 frames, a long one throughout
        faces = [Face((0, 0, 9, 9), 0.9, "happy", 0.5, dict(scores), track=0),
                 Face((20, 0, 9, 9), 0.9, "sad", 0.5, dict(scores), track=1 + i // 3)]
        timeline.add(ImageResult(path=None, width=40, height=20, faces=faces, frame=i, time_s=i / 10))
    stats = timeline.stats()
    assert len(stats) == 101 and stats[0].track == 0 and stats[0].frames == 300
    assert all(t.frames == 3 for t in stats[1:])  # every track's statistics are kept ...
    plotted = [k for k, s in timeline._series.items() if s.times is not None]
    assert 0 in plotted and len(plotted) <= 5  # ... but only a few tracks keep their points
    timeline.save(tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000
