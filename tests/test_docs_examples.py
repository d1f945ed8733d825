"""docs/python_api.md runs as written: its Python blocks, in order, as one script on the shared photos and video."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"


def python_blocks(text: str) -> list[str]:
    """The bodies of the page's ```python fences, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_every_python_fence_of_the_page_is_found():  # else the test below would run less than the page shows
    text = PAGE.read_text()
    blocks = python_blocks(text)
    assert len(blocks) == text.count("```python") >= 7
    assert all(block.strip() and "```" not in block for block in blocks)


@pytest.mark.slow  # three recognizers, a video analysed twice and Grad-CAM: several seconds
def test_the_python_api_page_runs_as_written(shared_data, tmp_path, monkeypatch, capsys):
    shutil.copy(shared_data / "photos" / "couple.jpg", tmp_path / "photo.jpg")
    shutil.copy(shared_data / "photos" / "group_outdoor.jpg", tmp_path / "group.jpg")
    shutil.copy(shared_data / "videos" / "single_face.mp4", tmp_path / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in python_blocks(PAGE.read_text()):
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102 - the page's own examples
    printed = capsys.readouterr().out
    assert "missing.jpg" in printed and "[2, 5]" in printed  # the error names the file; both photos' faces
    assert {"faces.csv", "photo_cam.png"} <= {p.name for p in tmp_path.iterdir()}
    assert (tmp_path / "out" / "clip_frames.csv").is_file()
    report = (tmp_path / "out" / "report.html").read_text()
    assert all(f'src="{name}"' in report for name in ("photo_annotated.jpg", "group_annotated.jpg",
                                                      "clip_annotated.mp4", "clip_emotions.png"))
    assert (tmp_path / "out" / "group_annotated.jpg").is_file()
    assert namespace["summary"].faces > 0 and len(namespace["table"]) == 7
    assert len(namespace["found"]) == 5  # fer's call on the BGR group photo: its five faces
