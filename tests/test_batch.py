"""ferkit batch with the local engine: inputs, rows, the errors table, re-runs, interruptions, the command line.

The collection is built in a temporary folder: three real photos copied from the shared data
(skipped with a reason when absent), a short synthetic video of a real face, and bad files
(empty, text named .jpg, a truncated JPEG, a text file named .mp4, a listed file that is missing).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ferkit.batch import BatchSettings, BatchStore, expand_inputs, face_schema, read_errors, read_faces, read_inputs
from ferkit.batch import run as run_module
from ferkit.batch.run import BatchEngine, run_batch
from ferkit.cli import main as cli_main
from ferkit.errors import FerkitError
from ferkit.inference import Options, Recognizer, load_rgb
from ferkit.labels import EMOTIONS

PHOTOS = ("couple.jpg", "single_face_fer.jpg", "person03.jpg")
FACES = {"couple.jpg": 2, "single_face_fer.jpg": 1, "person03.jpg": 1}
VIDEO_FRAMES = 6


def _write_clip(path: Path, rgb: np.ndarray, frames: int) -> Path:
    """A clip of ``rgb`` sliding right by 4 pixels a frame, on a gray canvas (mp4v, 10 fps)."""
    h, w = rgb.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w + 4 * frames, h))
    assert writer.isOpened()
    for i in range(frames):
        canvas = np.full((h, w + 4 * frames, 3), 90, np.uint8)
        canvas[:, 4 * i:4 * i + w] = rgb
        writer.write(np.ascontiguousarray(canvas[:, :, ::-1]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def collection(shared_data: Path, tmp_path_factory) -> Path:
    """good/: 3 photos (one in a subfolder) and a video; bad/: broken files. Returns the root."""
    root = tmp_path_factory.mktemp("collection")
    good = root / "good"
    (good / "sub").mkdir(parents=True)
    for name in PHOTOS:
        if not (shared_data / "photos" / name).is_file():
            pytest.skip(f"shared photo {name} not found")
    shutil.copy(shared_data / "photos" / PHOTOS[0], good / PHOTOS[0])
    shutil.copy(shared_data / "photos" / PHOTOS[1], good / PHOTOS[1])
    shutil.copy(shared_data / "photos" / PHOTOS[2], good / "sub" / PHOTOS[2])
    face = cv2.resize(load_rgb(shared_data / "photos" / "single_face_fer.jpg"), (192, 192))
    _write_clip(good / "clip.mp4", face, VIDEO_FRAMES)
    (good / ".hidden.jpg").write_bytes(b"not looked at")
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("this is not a photo\n")
    data = (good / PHOTOS[1]).read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (bad / "text.mp4").write_text("this is not a video\n")
    return root


def _all_inputs(collection: Path) -> list[str]:
    return [str(collection / "good"), str(collection / "bad")]


@pytest.fixture(scope="module")
def reference(collection: Path, tmp_path_factory) -> Path:
    """One uninterrupted run over the whole collection."""
    out = tmp_path_factory.mktemp("reference")
    run_batch(_all_inputs(collection), out, BatchSettings(), part_inputs=3)
    return out


# -- inputs -----------------------------------------------------------------------------------------------


def test_expand_folder_list_and_glob(collection: Path, tmp_path: Path) -> None:
    good = collection / "good"
    folder = expand_inputs(good)
    assert [Path(s.path).name for s in folder] == ["clip.mp4", "couple.jpg", "single_face_fer.jpg", "person03.jpg"]
    assert [s.kind for s in folder] == ["video", "photo", "photo", "photo"]
    assert [s.name for s in folder] == ["clip", "couple", "single_face_fer", "sub/person03"]
    assert all(os.path.isabs(s.path) for s in folder)

    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# photos\n{good / 'couple.jpg'}\n\nmissing.jpg\n{good / 'couple.jpg'}\n")
    listed = expand_inputs(listing)
    assert [s.path for s in listed] == sorted([str(good / "couple.jpg"), str(tmp_path / "missing.jpg")])

    globbed = expand_inputs(str(good / "**" / "*.jpg"))
    assert [s.name for s in globbed] == ["couple", "single_face_fer", "sub/person03"]
    # the same file through two INPUTs is one source; the output folder is never searched
    both = expand_inputs([good, str(good / "*.jpg")], exclude=good / "sub")
    assert len(both) == 3 and not any("sub" in s.path for s in both)


def test_expand_rejects_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(FerkitError, match="input not found"):
        expand_inputs(tmp_path / "nope")
    with pytest.raises(FerkitError, match="no photos or videos"):
        expand_inputs(tmp_path)
    with pytest.raises(FerkitError, match="no photos or videos match"):
        expand_inputs(str(tmp_path / "*.jpg"))
    (tmp_path / "notes.md").write_text("x")  # named on its own, a file of another suffix is tried later
    assert [s.kind for s in expand_inputs(tmp_path / "notes.md")] == ["unknown"]


# -- rows and errors ----------------------------------------------------------------------------------------


def test_rows_match_the_recognizer(collection: Path, reference: Path) -> None:
    faces = read_faces(reference)
    assert faces.schema.equals(face_schema(EMOTIONS))
    rows = faces.to_pylist()
    photos = [r for r in rows if r["kind"] == "photo"]
    counts = {name: sum(Path(r["source"]).name == name and r["face"] is not None for r in photos) for name in PHOTOS}
    assert all(r["faces"] == 0 for r in photos if r["face"] is None)  # a photo without faces keeps one row
    assert counts == FACES
    rec = Recognizer()
    for path in (collection / "good" / "couple.jpg", collection / "good" / "sub" / "person03.jpg"):
        expected = rec(path)
        got = [r for r in photos if r["source"] == str(path)]
        assert [(r["x"], r["y"], r["w"], r["h"]) for r in got] == [f.box for f in expected.faces]
        assert [r["label"] for r in got] == [f.label for f in expected.faces]
        for r, f in zip(got, expected.faces):
            assert r["frame"] == 0 and r["time_s"] is None and r["track"] is None
            assert [r[k] for k in EMOTIONS] == [f.scores[k] for k in EMOTIONS]  # float32, exactly
            assert r["confidence"] == f.confidence and r["detector_score"] == f.detector_score
    video = [r for r in rows if r["kind"] == "video"]
    assert [r["frame"] for r in video] == list(range(VIDEO_FRAMES))  # one face in every frame
    assert [r["time_s"] for r in video] == pytest.approx([i / 10 for i in range(VIDEO_FRAMES)])
    assert {r["track"] for r in video} == {0}
    xs = [r["x"] for r in video]
    assert xs == sorted(xs) and xs[-1] > xs[0]  # the face moves right
    # sorted by source, frame, face
    keys = [(r["source"], r["frame"], r["face"]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_bad_inputs_are_recorded_not_fatal(reference: Path) -> None:
    errors = {Path(r["source"]).name: r["error"] for r in read_errors(reference).to_pylist()}
    assert set(errors) == {"empty.jpg", "text.jpg", "truncated.jpg", "text.mp4"}
    assert "empty" in errors["empty.jpg"]
    assert "not an image" in errors["text.jpg"]
    assert "truncated" in errors["truncated.jpg"] or "decode" in errors["truncated.jpg"]
    assert "video" in errors["text.mp4"]
    inputs = {Path(r["source"]).name: r for r in read_inputs(reference).to_pylist()}
    assert len(inputs) == 8
    assert inputs["clip.mp4"]["frames"] == VIDEO_FRAMES and inputs["clip.mp4"]["faces"] == VIDEO_FRAMES
    assert inputs["couple.jpg"]["status"] == "done" and inputs["couple.jpg"]["faces"] == 2
    assert inputs["empty.jpg"]["status"] == "failed"


# -- re-runs and interruptions --------------------------------------------------------------------------------


def test_rerun_skips_finished_inputs(collection: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    parts = sorted(p.name for p in (out / "faces").iterdir())
    summary = run_batch(_all_inputs(collection), out)
    assert (summary.inputs, summary.done, summary.skipped, summary.failed) == (8, 0, 8, 0)
    assert summary.failed_total == 4
    assert sorted(p.name for p in (out / "faces").iterdir()) == parts
    assert read_faces(out).equals(read_faces(reference))
    # a new photo is the only work of the next run
    extra = collection.parent / "extra"
    extra.mkdir(exist_ok=True)
    shutil.copy(collection / "good" / "couple.jpg", extra / "again.jpg")
    summary = run_batch([*_all_inputs(collection), str(extra)], out)
    assert (summary.done, summary.skipped, summary.faces) == (1, 8, 2)
    assert read_faces(out).num_rows == read_faces(reference).num_rows + 2


@pytest.mark.parametrize("k", [1, 4])
def test_interrupted_run_resumes_to_the_same_rows(collection: Path, reference: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    """Ctrl-C after k inputs: what finished is kept, the re-run does the rest, no row is lost or doubled."""
    out = tmp_path / "out"
    add = run_module._PartBuffer.add
    calls = {"n": 0}

    def interrupt_after_k(self, result):
        if calls["n"] == k:
            raise KeyboardInterrupt
        calls["n"] += 1
        add(self, result)

    monkeypatch.setattr(run_module._PartBuffer, "add", interrupt_after_k)
    with pytest.raises(KeyboardInterrupt):
        run_batch(_all_inputs(collection), out, part_inputs=3)
    monkeypatch.undo()
    assert len(read_inputs(out)) == k  # every input analysed before the interruption was saved
    summary = run_batch(_all_inputs(collection), out, part_inputs=3)
    assert (summary.skipped, summary.done + summary.failed) == (k, 8 - k)
    assert read_faces(out).equals(read_faces(reference))
    assert read_errors(out).equals(read_errors(reference))


def test_ctrl_c_as_a_part_is_written_keeps_it_once(collection: Path, reference: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, ctrl_c_raises) -> None:
    """A real Ctrl-C the moment a part has been renamed into place: the part is in inputs.parquet (not left out)
    and is not committed a second time by the save on the way out."""
    out = tmp_path / "out"
    commit = BatchStore.commit

    def commit_then_ctrl_c(self, results):
        path = commit(self, results)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # delivered here unless held
        return path

    monkeypatch.setattr(BatchStore, "commit", commit_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_batch(_all_inputs(collection), out, part_inputs=3)
    monkeypatch.undo()
    parts = sorted((out / "faces").glob("part-*.parquet"))
    inputs = read_inputs(out)
    assert len(parts) == 1 and len(inputs) == 3
    assert set(inputs.column("part").to_pylist()) == {parts[0].name}
    run_batch(_all_inputs(collection), out, part_inputs=3)
    assert read_faces(out).equals(read_faces(reference))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_command_resumes(collection: Path, reference: Path, tmp_path: Path, sig: signal.Signals) -> None:
    """`ferkit batch` killed after its second part; the same command then finishes only the rest.

    SIGKILL leaves what was committed; SIGTERM is taken as Ctrl-C: finished inputs are saved, status 130.
    """
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ferkit.cli", "batch", *_all_inputs(collection), "--out", str(out),
               "--part-size", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and len(list(out.glob("faces/part-*"))) < 2:
            time.sleep(0.02)
    finally:
        proc.send_signal(sig)
        returncode = proc.wait(timeout=60)
    kept = len(list(out.glob("faces/part-*")))
    assert 2 <= kept < 8, f"the job was not killed half-way: {kept} parts kept, status {returncode}"
    if sig == signal.SIGTERM:
        assert returncode == 130, f"status {returncode} after SIGTERM with {kept} parts kept"
        # the tables were brought up to date before it stopped
        assert len(read_inputs(out)) == kept, f"{len(read_inputs(out))} inputs saved for {kept} parts kept"
    else:
        assert not (out / "inputs.parquet").exists()  # it never reached its end
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # 1: the output folder has failed inputs
    assert "8 input(s): " in done.stdout and f", {kept} skipped (finished before)" in done.stdout, done.stdout
    assert read_faces(out).equals(read_faces(reference))
    assert read_errors(out).equals(read_errors(reference))
    assert not list((out / "faces").glob(".*"))  # no temporary file left


def test_unreadable_leftovers_and_settings(collection: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "faces" / ".part-x.parquet.abc.tmp").write_bytes(b"half a file")
    run_batch(_all_inputs(collection), out)
    assert not (out / "faces" / ".part-x.parquet.abc.tmp").exists()
    with pytest.raises(FerkitError, match="stride: 1 before, 2 now"):
        run_batch(_all_inputs(collection), out, BatchSettings(Options(stride=2)))
    with pytest.raises(FerkitError, match="model: 'ferkit/weights/default.pt' before, 'ferkit/weights/fast.pt' now"):
        run_batch(_all_inputs(collection), out, BatchSettings(Options(model="fast")))  # a shipped name, by its file
    with BatchStore(out, face_schema(EMOTIONS), {}), pytest.raises(FerkitError, match="another ferkit batch"):
        BatchStore(out, face_schema(EMOTIONS), {}).__enter__()
    (out / "faces" / "part-zzz.parquet").write_bytes(b"not parquet")
    with pytest.raises(FerkitError, match="part-zzz.parquet: not a readable ferkit batch part"):
        run_batch(_all_inputs(collection), out)


def test_a_folder_of_an_older_row_layout_is_refused(collection: Path, tmp_path: Path, monkeypatch) -> None:
    from ferkit.batch import run as batch_run

    out, inputs = tmp_path / "out", tmp_path / "in"
    inputs.mkdir()
    shutil.copy(collection / "good" / "couple.jpg", inputs / "couple.jpg")
    monkeypatch.setattr(batch_run, "ROWS_VERSION", batch_run.ROWS_VERSION - 1)  # as a previous release wrote it
    run_batch(inputs, out)
    written = read_faces(out)
    monkeypatch.undo()
    with pytest.raises(FerkitError, match=f"rows: {batch_run.ROWS_VERSION - 1} before, {batch_run.ROWS_VERSION} now"):
        run_batch(inputs, out)
    assert read_faces(out).equals(written)  # the refused run touched nothing


def test_retry_failed(collection: Path, tmp_path: Path) -> None:
    out, inputs = tmp_path / "out", tmp_path / "in"
    shutil.copytree(collection / "bad", inputs / "bad")
    shutil.copy(collection / "good" / "couple.jpg", inputs / "couple.jpg")
    run_batch(inputs, out)
    shutil.copy(inputs / "couple.jpg", inputs / "bad" / "text.jpg")  # mend one bad file
    assert run_batch(inputs, out).done == 0  # failures are not retried...
    summary = run_batch(inputs, out, retry_failed=True)  # ...unless asked
    assert (summary.done, summary.failed, summary.failed_total) == (1, 3, 3)
    assert "text.jpg" not in {Path(s).name for s in read_errors(out)["source"].to_pylist()}
    faces = read_faces(out)
    assert sum(Path(s).name == "text.jpg" for s in faces["source"].to_pylist()) == 2
    keys = list(zip(*(faces[k].to_pylist() for k in ("source", "frame", "face"))))
    assert len(set(keys)) == len(keys)


# -- the command line ------------------------------------------------------------------------------------------


def test_cli_batch_annotates_and_summarises(collection: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    listing = tmp_path / "list.txt"
    listing.write_text(f"{collection / 'good' / 'couple.jpg'}\n{collection / 'good' / 'clip.mp4'}\n")
    assert cli_main(["batch", str(listing), "--out", str(out), "--annotate", "--stride", "2"]) == 0
    text = capsys.readouterr().out
    assert "2 input(s): 2 analysed, 0 skipped (finished before), 0 failed; 5 face(s)" in text
    assert (out / "media" / "couple_annotated.jpg").is_file()
    video = cv2.VideoCapture(str(out / "media" / "clip_annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == VIDEO_FRAMES // 2
    video.release()
    assert pq.read_table(out / "faces").num_rows == 5  # a plain Parquet dataset
    assert cli_main(["batch", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "input not found" in capsys.readouterr().err


def test_run_batch_checks_options(collection: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid engines: local, ray"):
        BatchEngine("spark")
    with pytest.raises(ValueError, match="stride"):
        BatchSettings(Options(stride=0))
    with pytest.raises(ValueError, match="detector 'mtcnn': valid are"):
        BatchSettings(Options(detector="mtcnn"))
    assert BatchSettings(**BatchSettings(Options(stride=3)).to_dict()).options.stride == 3  # as Ray hands it over
    assert pa.Table.from_pylist([], schema=face_schema(EMOTIONS)).num_rows == 0


def test_ray_engine_says_how_to_install(collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(FerkitError, match=r"pip install 'ferkit\[ray\]'"):
        run_batch(collection / "good", tmp_path / "out", engine=BatchEngine("ray"))
