"""``ferkit predict --report``: the offline HTML page of a run."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from urllib.parse import unquote

from ferkit.cli import main
from ferkit.inference.pipeline import VideoSummary
from ferkit.inference.report import ReportPhoto, report_html, write_report
from ferkit.inference.results import Face, ImageResult
from ferkit.inference.timeline import TrackStats
from ferkit.inference.video import VideoInfo
from ferkit.labels import EMOTIONS


class _Page(HTMLParser):
    """Every tag with its attributes, and the text between tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def links(self) -> list[str]:
        return [attrs.get("src") or attrs["href"] for tag, attrs in self.tags if tag in ("img", "video", "a")]


def _face(label: str, confidence: float) -> Face:
    rest = (1.0 - confidence) / (len(EMOTIONS) - 1)
    return Face(box=(1, 2, 30, 40), detector_score=0.9, label=label, confidence=confidence,
                scores={name: confidence if name == label else rest for name in EMOTIONS})


def test_the_page_counts_faces_and_tracks_per_emotion_and_escapes_every_name(tmp_path):
    hostile = '<img src=x onerror=alert(1)>" <script>.jpg'
    photos = [ReportPhoto(ImageResult(f"/in/{hostile}", 64, 48, [_face("happy", 0.8), _face("sad", 0.6)]),
                          tmp_path / "sub dir" / "a&b_annotated.jpg"),
              ReportPhoto(ImageResult("/in/empty.jpg", 64, 48, []))]
    track = TrackStats(track=3, frames=10, start_s=0.0, end_s=1.5, mean_scores={"happy": 0.7, "sad": 0.3},
                       label_frames={"happy": 8, "sad": 2})
    video = VideoSummary(VideoInfo("/in/clip.mp4", 25.0, 64, 48, 10), frames=10, frames_with_faces=10,
                         tracks=[track], outputs={"video": tmp_path / "clip_annotated.mp4"})
    text = report_html(tmp_path, photos, [video], ["/in/bad.jpg: not an image file"], EMOTIONS, "m.pt")
    page = _Page(text)
    assert "<script" not in text and not any("onerror" in attrs or "script" in tag for tag, attrs in page.tags)
    assert hostile in "".join(page.text)  # shown as text
    assert page.links() == ["sub%20dir/a%26b_annotated.jpg", "clip_annotated.mp4"]  # relative, quoted
    cells = "|".join(page.text)
    assert "happy|1|50%|1" in cells and "sad|1|50%|0" in cells and "angry|0|0%|0" in cells
    assert "no face found" in cells and "/in/bad.jpg: not an image file" in cells and "8 of 10" in cells
    assert "2 photo(s) with 2 face(s) · 1 video(s) · 1 skipped" in cells
    policy = [attrs["content"] for tag, attrs in page.tags if attrs.get("http-equiv") == "Content-Security-Policy"]
    assert policy and "default-src 'none'" in policy[0] and "script" not in policy[0]

    assert "How far to trust it" not in text  # nothing said of a model of one's own
    path = write_report(tmp_path / "report.html", photos, [], [], EMOTIONS, "m.pt", about=["<b>fair</b> & square"])
    written = path.read_text()
    assert written.startswith("<!doctype html>") and not list(tmp_path.glob("*.tmp*"))
    assert "How far to trust it" in written and "<li>&lt;b&gt;fair&lt;/b&gt; &amp; square</li>" in written


def test_predict_report_links_every_file_it_wrote_and_lists_every_face(shared_data, tmp_path, capsys):
    photos = shared_data / "photos"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    code = main(["predict", str(photos / "group_outdoor.jpg"), str(photos / "no_face_mountains.jpg"), str(broken),
                 str(shared_data / "videos" / "single_face.mp4"), "--stride", "6", "--out", str(out), "--report"])
    assert code == 1  # the broken photo skipped
    capsys.readouterr()
    page = _Page((out / "report.html").read_text())
    links = page.links()
    assert len(links) == 5  # two annotated photos; the video, its timeline and its table
    assert all((out / unquote(link)).is_file() for link in links)
    boxes = [row["x"] + "," + row["y"] + "," + row["w"] + "," + row["h"]
             for row in csv.DictReader((out / "results.csv").open()) if row["label"]]
    assert len(boxes) == 5 and [text for text in page.text if re.fullmatch(r"\d+,\d+,\d+,\d+", text)] == boxes
    assert "broken.jpg" in "".join(page.text) and "no face found" in "".join(page.text)
    from ferkit.inference.card import trust_notes

    ran = [notes for notes in (trust_notes("default"), trust_notes("default", int8=True))  # float or int8: the CPU's
           if all(note in page.text for note in notes)]
    assert ran and ran[0][0].startswith("FER2013 PrivateTest") and "How far to trust it" in page.text


def test_without_report_no_page_is_written(shared_data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(shared_data / "photos" / "no_face_mountains.jpg"), "--out", str(out)]) == 0
    assert not (out / "report.html").exists() and (out / "results.csv").is_file()
