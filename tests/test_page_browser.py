"""The page in headless Chromium (Debian's package): a real photo gets a box and a label on every face.

Skips, saying why, when Playwright or /usr/bin/chromium is missing (``.ci/run`` installs Chromium
with apt-get). Nothing is downloaded: Playwright drives the system browser.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'ferkit[serve]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright's Python package (the dev extra)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)",
                allow_module_level=True)

from ferkit.serving import ServeSettings, create_app  # noqa: E402
from serving_support import live_server, shared_recognizer  # noqa: E402

# The flags a root, offline, headless machine needs; the fake camera plays a real clip.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TIMEOUT_MS = 180_000  # generous: CI machines may be busy


def _y4m(video: Path, out: Path, width: int = 320) -> Path:
    """The clip as Y4M, the format Chromium's fake camera reads (it loops the file)."""
    cap = cv2.VideoCapture(str(video))
    with open(out, "wb") as handle:
        header = False
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            h = round(bgr.shape[0] * width / bgr.shape[1]) // 2 * 2
            bgr = cv2.resize(bgr, (width, h), interpolation=cv2.INTER_AREA)
            if not header:
                handle.write(f"YUV4MPEG2 W{width} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
                header = True
            handle.write(b"FRAME\n" + cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
    return out


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    app = create_app(ServeSettings(jobs_dir=tmp_path_factory.mktemp("jobs"), workers=2),
                     recognizer=shared_recognizer())
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser(shared_data, tmp_path_factory):
    camera = _y4m(shared_data / "videos" / "single_face.mp4", tmp_path_factory.mktemp("cam") / "cam.y4m")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=[*FLAGS, f"--use-file-for-fake-video-capture={camera}"])
        yield b
        b.close()


def _colour(rgb: str) -> list[int]:
    return [int(v) for v in rgb[rgb.index("(") + 1:-1].split(",")]


def _pixels(page, canvas: str, x0: float, y0: float, x1: float, y1: float) -> list[list[int]]:
    """RGB of every pixel of ``canvas`` in the rectangle (x0, y0)-(x1, y1), ends included."""
    x0, y0, x1, y1 = (round(v) for v in (x0, y0, x1, y1))
    data = page.evaluate("""([id, x, y, w, h]) => Array.from(
        document.getElementById(id).getContext('2d').getImageData(x, y, w, h).data)""",
                         [canvas, x0, y0, x1 - x0 + 1, y1 - y0 + 1])
    return [data[i:i + 3] for i in range(0, len(data), 4)]


def _has(pixels: list[list[int]], colour: list[int]) -> bool:
    """Whether some pixel is ``colour``, antialiasing aside."""
    return min(sum(abs(a - b) for a, b in zip(p, colour)) for p in pixels) < 40


def test_upload_a_photo_and_see_a_box_and_label_on_every_face(browser, base_url, shared_data):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base_url)
    page.set_input_files("#file-input", str(shared_data / "photos" / "group_outdoor.jpg"))
    page.wait_for_selector("#photo-canvas[data-faces]", state="attached", timeout=TIMEOUT_MS)
    faces = page.evaluate("window.ferkit.photo.result.faces")
    scale = page.evaluate("window.ferkit.photo.scale")
    assert len(faces) == 5  # faces.csv: five people
    assert page.locator("#face-list li").count() == 5
    assert "5 faces found" in page.text_content("#message")
    colours = page.evaluate("COLOURS")
    for face in faces:
        x, y, w, h = (v * scale for v in face["box"])
        colour = _colour(colours[face["label"]])
        for edge in (x, x + w):  # the left and right sides of the box, around their middle
            assert _has(_pixels(page, "photo-canvas", edge - 2, y + h / 3, edge + 2, y + 2 * h / 3), colour), face
        # The label tag: a band of the label's colour just above the box (inside it when at the top);
        # tags of neighbouring faces may cover part of it, never all.
        tag_y = y - 3 if y >= 30 else y + 3
        assert _has(_pixels(page, "photo-canvas", x + 2, tag_y, x + w - 2, tag_y), colour), f"no tag for {face}"
    # The bar chart follows the pointer: point at the last face.
    last = faces[-1]
    box = page.locator("#photo-canvas").bounding_box()
    css = box["width"] / page.evaluate("document.getElementById('photo-canvas').width")
    bx, by, bw, bh = (v * scale * css for v in last["box"])
    page.mouse.move(box["x"] + bx + bw / 2, box["y"] + by + bh / 2)
    page.wait_for_function("document.getElementById('bars').dataset.label !== undefined"
                           f" && window.ferkit.hover === {len(faces) - 1}", timeout=10_000)
    assert last["label"] in page.text_content("#bars-title")
    assert not errors, errors


def test_webcam_mode_draws_a_live_overlay(browser, base_url):
    context = browser.new_context(permissions=["camera"])
    page = context.new_page()
    page.goto(base_url)
    page.click("#tab-webcam")
    page.click("#cam-start")
    page.wait_for_selector("#cam-overlay[data-faces='1']", state="attached", timeout=TIMEOUT_MS)
    first = page.evaluate("window.ferkit.live.replies")
    page.wait_for_timeout(3000)  # the loop keeps going: frames out, replies in, the overlay redrawn
    replies = page.evaluate("window.ferkit.live.replies") - first
    rate = float(page.get_attribute("#cam-rate", "data-rate"))
    print(f"live overlay: {replies} updates in 3 s, counter {rate:.1f} updates/s")
    assert replies > 1 and rate > 0 and "updates/s" in page.text_content("#cam-rate")
    page.click("#cam-stop")
    context.close()
