"""One input, one set of rows: the Python API, ``ferkit predict``, ``ferkit batch`` and a service job agree.

Every front end runs the one pipeline (ferkit.inference.pipeline) and writes the one row schema
(ferkit.inference.rows); only ``source`` names the input as each front end was given it.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from pathlib import Path

import pytest

from ferkit.cli import main as cli
from ferkit.inference import Options, analyze_video, results_to_rows, row_columns

pytestmark = pytest.mark.slow


def _text(rows: list[dict]) -> list[dict[str, str]]:
    """Rows as CSV would hold them (None -> "", numbers as ``str``), without ``source``."""
    return [{k: "" if v is None else str(v) for k, v in row.items() if k != "source"} for row in rows]


def _read_csv(path_or_text) -> list[dict[str, str]]:
    text = path_or_text if isinstance(path_or_text, str) else Path(path_or_text).read_text()
    return [{k: v for k, v in row.items() if k != "source"} for row in csv.DictReader(io.StringIO(text))]


@pytest.fixture(scope="module")
def inputs(shared_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(shared_data / "videos" / "single_face.mp4", folder / "clip.mp4")
    shutil.copy(shared_data / "photos" / "group_outdoor.jpg", folder / "group.jpg")
    return folder


def _service_rows(video: Path, tmp_path: Path) -> list[dict[str, str]]:
    pytest.importorskip("fastapi", reason="the service needs the serve extra")
    from fastapi.testclient import TestClient

    from ferkit.serving import ServeSettings, create_app
    from serving_support import LOCAL

    app = create_app(ServeSettings(jobs_dir=tmp_path / "jobs", workers=1))
    with TestClient(app, base_url=LOCAL) as client:
        job = client.post("/v1/jobs", content=video.read_bytes(), headers={"content-type": "video/mp4"}).json()
        for _ in range(600):
            job = client.get(f"/v1/jobs/{job['id']}").json()
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        assert job["state"] == "done", job
        return _read_csv(client.get(job["results"]["frames.csv"]).text)


def test_api_predict_batch_and_service_give_identical_rows(inputs, tmp_path):
    pytest.importorskip("pyarrow", reason="ferkit batch writes Parquet")
    from ferkit.batch import BatchSettings, read_faces, run_batch

    rec = Options().recognizer()  # the defaults every front end starts from
    api_video = analyze_video(rec, inputs / "clip.mp4", tmp_path / "api", annotate=False, plot=False)
    api_rows = _read_csv(api_video.outputs["table"])
    api_photo = _text(results_to_rows([rec(inputs / "group.jpg")], rec.labels))

    assert cli(["predict", str(inputs), "--out", str(tmp_path / "predict"), "--no-draw"]) == 0
    assert _read_csv(tmp_path / "predict" / "clip_frames.csv") == api_rows
    assert _read_csv(tmp_path / "predict" / "results.csv") == api_photo

    run_batch([inputs], tmp_path / "batch", BatchSettings(Options()))
    batch = read_faces(tmp_path / "batch").to_pylist()
    assert list(batch[0]) == list(row_columns(rec.labels))
    assert _text([r for r in batch if r["kind"] == "video"]) == api_rows
    assert _text([r for r in batch if r["kind"] == "photo"]) == api_photo

    assert _service_rows(inputs / "clip.mp4", tmp_path) == api_rows
    assert len(api_rows) >= 72 and {r["track"] for r in api_rows} == {"0"}
