"""ferkit batch on a local Ray cluster (``ray.init(num_cpus=2)``, one session for the module).

The Ray rows must equal the local engine's bit for bit on the shared photos and both shared
videos (every 4th frame, to keep the module near a minute on 2 cores). Ray workers run torch
with one thread each, so the local reference does too: with another thread count the model's
float32 probabilities can differ in their last bits (see docs/batch.md), everything else not.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest
import torch

from ferkit.batch import BatchEngine, BatchSettings, read_errors, read_faces, read_inputs, run_batch
from ferkit.batch import run as run_module
from ferkit.inference import Options

pytestmark = pytest.mark.slow  # starts a Ray cluster

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ferkit[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ferkit[ray]')")

SETTINGS = BatchSettings(Options(stride=4))


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray cluster of 2 CPUs for the module, shut down at its end."""
    if ray.is_initialized():
        pytest.skip("a Ray session is already running in this process")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(shared_data: Path, tmp_path_factory) -> list[str]:
    """The shared photos and videos, plus two bad files."""
    if not (shared_data / "photos").is_dir() or not (shared_data / "videos").is_dir():
        pytest.skip(f"shared photos or videos not found under {shared_data}")
    bad = tmp_path_factory.mktemp("bad")
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.mp4").write_text("not a video\n")
    return [str(shared_data / "photos"), str(shared_data / "videos"), str(bad)]


@pytest.fixture(scope="module")
def local_reference(inputs: list[str], tmp_path_factory) -> Path:
    """The local engine's output, with torch on one thread like each Ray worker."""
    out = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_batch(inputs, out, SETTINGS)
    finally:
        torch.set_num_threads(threads)
    return out


def test_ray_rows_equal_local_rows(ray_session, inputs: list[str], local_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray"
    summary = run_batch(inputs, out, SETTINGS, engine=BatchEngine("ray", photos_per_batch=4))
    assert (summary.inputs, summary.done, summary.failed) == (18, 16, 2)
    local, remote = read_faces(local_reference), read_faces(out)
    assert remote.num_rows == local.num_rows > 0
    assert remote.equals(local)  # every column, floats bit for bit
    videos = local.filter(pc.and_(pc.equal(local["kind"], "video"), pc.is_valid(local["face"])))
    assert set(pc.unique(videos["source"]).to_pylist()) == {str(Path(inputs[1]) / "single_face.mp4")}
    assert videos.num_rows == 18  # one face in each of the 72 / 4 analysed frames; none in no_face.mp4
    columns = ["source", "kind", "status", "frames", "faces", "error"]
    assert read_inputs(out).select(columns).equals(read_inputs(local_reference).select(columns))
    assert read_errors(out).equals(read_errors(local_reference))


def test_interrupted_ray_run_resumes(ray_session, inputs: list[str], local_reference: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in the driver after 3 photos: Ray stops, the 3 are kept, the re-run on Ray does only the rest."""
    out, photos = tmp_path / "ray", str(Path(inputs[0]) / "person0*.jpg")  # 8 photos
    add = run_module._PartBuffer.add
    calls = {"n": 0}

    def interrupt_after_3(self, result):
        if calls["n"] == 3:
            raise KeyboardInterrupt
        calls["n"] += 1
        add(self, result)

    monkeypatch.setattr(run_module._PartBuffer, "add", interrupt_after_3)
    with pytest.raises(KeyboardInterrupt):
        run_batch(photos, out, SETTINGS, engine=BatchEngine("ray", photos_per_batch=2), part_inputs=2)
    monkeypatch.undo()
    assert len(read_inputs(out)) == 3
    summary = run_batch(photos, out, SETTINGS, engine=BatchEngine("ray", photos_per_batch=2), part_inputs=2)
    assert (summary.skipped, summary.done) == (3, 5)
    local = read_faces(local_reference)
    expected = local.filter(pc.match_substring(local["source"], "/person0"))
    assert expected.num_rows == 8 and read_faces(out).equals(expected)
