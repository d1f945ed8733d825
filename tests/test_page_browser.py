"""The page in headless Chromium (Debian's package), on a desktop and on a phone-sized screen.

A real photo gets a box and a readable label on every face, no two labels overlapping; a video
job's annotated result plays in the page; the webcam never sends a camera frame twice.

Skips, saying why, when Playwright or /usr/bin/chromium is missing (``.ci/run`` installs Chromium
with apt-get). Nothing is downloaded: Playwright drives the system browser.
"""

from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path

import cv2
import pytest

pytestmark = pytest.mark.slow  # drives a real browser

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'ferkit[serve]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright's Python package (the dev extra)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)",
                allow_module_level=True)

from serving_support import served_default  # noqa: E402

# The flags a root, offline, headless machine needs; the fake camera plays a real clip.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TIMEOUT_MS = 180_000  # generous: CI machines may be busy
CAMERA_FPS = 10  # the fake camera's rate: well below what the server answers, so a page that resends frames shows
SCREENS = {"desktop": {"viewport": {"width": 1280, "height": 800}},
           "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True,
                     "has_touch": True}}
MIN_TEXT_PX = 11  # the smallest tag text (CSS pixels, the font's size) that reads on a phone


def _y4m(video: Path, out: Path, width: int = 320, fps: int = 30) -> Path:
    """The clip as Y4M at ``fps`` frames a second, the format Chromium's fake camera reads (it loops the file)."""
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
                handle.write(f"YUV4MPEG2 W{width} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
                header = True
            handle.write(b"FRAME\n" + cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
    return out


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    with served_default(tmp_path_factory.mktemp("jobs")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(shared_data, tmp_path_factory):
    camera = _y4m(shared_data / "videos" / "single_face.mp4", tmp_path_factory.mktemp("cam") / "cam.y4m",
                  fps=CAMERA_FPS)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=[*FLAGS, f"--use-file-for-fake-video-capture={camera}"])
        yield b
        b.close()


@pytest.fixture(params=sorted(SCREENS))
def screen(request, browser):
    """A fresh page on each screen size, its page errors collected in ``page.errors``."""
    context = browser.new_context(permissions=["camera"], **SCREENS[request.param])
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def _colour(rgb: str) -> list[int]:
    return [int(v) for v in rgb[rgb.index("(") + 1:-1].split(",")]


def _device_rect(page, x0: float, y0: float, x1: float, y1: float) -> list[int]:
    """The canvas pixels (x, y, w, h) under the CSS pixels (x0, y0)-(x1, y1), ends included."""
    dpr = page.evaluate("devicePixelRatio")  # a canvas drawn for the screen has that many pixels per CSS pixel
    left, top = math.floor(x0 * dpr), math.floor(y0 * dpr)
    return [left, top, math.ceil((x1 + 1) * dpr) - left, math.ceil((y1 + 1) * dpr) - top]


def _has(page, canvas: str, colour: list[int], *rect: float) -> bool:
    """Whether some pixel of ``canvas`` in a rectangle of CSS pixels is ``colour``, antialiasing aside."""
    distance = page.evaluate("""([id, colour, x, y, w, h]) => {
        const data = document.getElementById(id).getContext('2d').getImageData(x, y, w, h).data;
        let best = Infinity;
        for (let i = 0; i < data.length; i += 4) {
          best = Math.min(best, Math.abs(data[i] - colour[0]) + Math.abs(data[i + 1] - colour[1])
                                + Math.abs(data[i + 2] - colour[2]));
        }
        return best; }""", [canvas, colour, *_device_rect(page, *rect)])
    return distance < 40


def _painted(page, canvas: str, *rect: float) -> int:
    """How many pixels of ``canvas`` in a rectangle of CSS pixels are not transparent."""
    return page.evaluate("""([id, x, y, w, h]) => document.getElementById(id).getContext('2d')
        .getImageData(x, y, w, h).data.filter((v, i) => i % 4 === 3 && v > 0).length""",
                         [canvas, *_device_rect(page, *rect)])


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def _check_tags(tags: list[dict], n: int, width: float, height: float) -> None:
    """One readable tag per face, all inside the canvas, no two overlapping."""
    assert sorted(t["face"] for t in tags) == list(range(n))
    for tag in tags:
        assert tag["font"] >= MIN_TEXT_PX and tag["h"] >= tag["font"], tag
        assert tag["x"] >= 0 and tag["y"] >= 0, tag
        assert tag["x"] + tag["w"] <= width + 0.5 and tag["y"] + tag["h"] <= height + 0.5, (tag, width, height)
    for a, b in itertools.combinations(tags, 2):
        assert not _overlap(a, b), (a, b)


def _point_at(page, canvas: str, x: float, y: float) -> None:
    """A mouse pointer on the desktop, a finger on the phone, at (x, y) CSS pixels of ``canvas``."""
    box = page.locator(f"#{canvas}").bounding_box()
    if page.evaluate("navigator.maxTouchPoints") > 0:
        page.touchscreen.tap(box["x"] + x, box["y"] + y)
    else:
        page.mouse.move(box["x"] + x, box["y"] + y)


def test_upload_a_photo_and_see_a_readable_tag_on_every_face(screen, base_url, shared_data):
    page = screen
    page.goto(base_url)
    page.set_input_files("#file-input", str(shared_data / "photos" / "group_outdoor.jpg"))
    page.wait_for_selector("#photo-canvas[data-faces]", state="attached", timeout=TIMEOUT_MS)
    photo = page.evaluate("({scale: ferkit.photo.scale, width: ferkit.photo.width, height: ferkit.photo.height,"
                          " faces: ferkit.photo.result.faces})")
    faces, scale = photo["faces"], photo["scale"]
    assert len(faces) == 5  # faces.csv: five people
    assert page.locator("#face-list li").count() == 5
    assert "5 faces found" in page.text_content("#message")
    # Drawn at the size it is shown (so the tags' CSS pixels are the screen's), one canvas pixel per device pixel.
    shown = page.locator("#photo-canvas").bounding_box()
    assert abs(shown["width"] - photo["width"]) < 1 and abs(shown["height"] - photo["height"]) < 1
    assert shown["x"] + shown["width"] <= page.viewport_size["width"]
    backing = page.evaluate("[document.getElementById('photo-canvas').width, devicePixelRatio]")
    assert abs(backing[0] - photo["width"] * backing[1]) <= 1
    tags = page.evaluate("ferkit.tags['photo-canvas']")
    _check_tags(tags, len(faces), photo["width"], photo["height"])
    colours = page.evaluate("COLOURS")
    for face, tag in zip(faces, sorted(tags, key=lambda t: t["face"])):
        x, y, w, h = (v * scale for v in face["box"])
        colour = _colour(colours[face["label"]])
        for edge in (x, x + w):  # the left and right sides of the box, around their middle
            assert _has(page, "photo-canvas", colour, edge - 2, y + h / 3, edge + 2, y + 2 * h / 3), face
        inside = (tag["x"] + 1, tag["y"] + 1, tag["x"] + tag["w"] - 2, tag["y"] + tag["h"] - 2)
        assert _has(page, "photo-canvas", colour, *inside), f"no tag for {face} at {tag}"
        assert _has(page, "photo-canvas", [255, 255, 255], *inside), f"no text in the tag for {face} at {tag}"
    # The bar chart follows the pointer (a tap on the phone): point at the last face.
    bx, by, bw, bh = (v * scale for v in faces[-1]["box"])
    _point_at(page, "photo-canvas", bx + bw / 2, by + bh / 2)
    page.wait_for_function("document.getElementById('bars').dataset.label !== undefined"
                           f" && window.ferkit.hover === {len(faces) - 1}", timeout=10_000)
    assert faces[-1]["label"] in page.text_content("#bars-title")
    assert not page.errors, page.errors


def test_tabs_fit_on_one_line_and_nothing_scrolls_sideways(screen, base_url):
    page = screen
    page.goto(base_url)
    page.wait_for_function("!document.getElementById('server-status').textContent.includes('connecting')")
    lines = page.evaluate("""() => Array.from(document.querySelectorAll('nav button'), (b) => {
        const r = document.createRange(); r.selectNodeContents(b);
        return new Set(Array.from(r.getClientRects(), (q) => Math.round(q.top))).size; })""")
    assert lines == [1, 1], lines
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


@pytest.mark.slow
def test_a_video_job_result_plays_and_the_next_upload_starts_clean(browser, base_url, shared_data):
    context = browser.new_context(**SCREENS["phone"])
    page = context.new_page()
    page.goto(base_url)
    page.set_input_files("#file-input", str(shared_data / "videos" / "single_face.mp4"))
    page.wait_for_function("document.getElementById('message').textContent.startsWith('Done')", timeout=TIMEOUT_MS)
    assert "done" in page.text_content("#job-status")
    links = page.eval_on_selector_all("#downloads a", "(as) => as.map((a) => a.href)")
    assert any(href.endswith("/annotated.mp4") for href in links), links
    page.wait_for_function("(() => { const v = document.getElementById('video-player');"
                           " return v.src.endsWith('/annotated.mp4') && (v.readyState >= 2 || v.error); })()",
                           timeout=30_000)
    player = page.evaluate("(() => { const v = document.getElementById('video-player'); return"
                           " {ready: v.readyState, error: v.error && v.error.message, width: v.videoWidth}; })()")
    assert player["ready"] >= 2 and player["width"] == 640, f"the annotated video does not play: {player}"
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    # The page's own tags over the original, on request.
    page.check("#show-original")
    page.evaluate("document.getElementById('video-player').currentTime = 1.0")
    page.wait_for_function("(ferkit.tags['video-overlay'] || []).length === 1", timeout=30_000)
    # A second upload: the moment it goes out, nothing of the first job is left on screen.
    page.evaluate("""() => { const send = window.fetch; window.atUpload = null;
        window.fetch = (url, init) => {
          if (url === '/v1/jobs' && !window.atUpload) window.atUpload = {
            status: document.getElementById('job-status').textContent,
            progress: document.getElementById('job-progress').getAttribute('value'),
            links: document.querySelectorAll('#downloads a').length,
            video: document.getElementById('video-player').src };
          return send(url, init); }; }""")
    page.set_input_files("#file-input", str(shared_data / "videos" / "no_face.mp4"))
    page.wait_for_function("window.atUpload !== null")
    seen = page.evaluate("window.atUpload")
    assert "done" not in seen["status"] and "100%" not in seen["status"], seen
    assert seen["progress"] is None and seen["links"] == 0 and seen["video"].startswith("blob:"), seen
    page.wait_for_function("document.getElementById('message').textContent.startsWith('Done')", timeout=TIMEOUT_MS)
    context.close()


def _rates(page, seconds: float) -> list[float]:
    """The page's updates/s counter, read four times a second."""
    values = []
    for _ in range(int(seconds * 4)):
        page.wait_for_timeout(250)
        values.append(float(page.get_attribute("#cam-rate", "data-rate")))
    return values


@pytest.mark.slow
def test_webcam_answers_each_camera_frame_at_most_once(browser, base_url):
    context = browser.new_context(permissions=["camera"], **SCREENS["phone"])
    page = context.new_page()
    page.goto(base_url)
    page.click("#tab-webcam")
    page.click("#cam-start")
    page.wait_for_selector("#cam-overlay[data-faces='1']", state="attached", timeout=TIMEOUT_MS)
    count = "[ferkit.live.replies, performance.now() / 1000]"
    first, start = page.evaluate(count)
    rates = _rates(page, 4)
    last, end = page.evaluate(count)
    replies, seconds = last - first, end - start
    print(f"live overlay: {replies} updates in {seconds:.2f} s from a {CAMERA_FPS} fps camera, counter {rates}")
    assert seconds * CAMERA_FPS / 4 <= replies <= seconds * CAMERA_FPS + 2  # live; never more than the camera gives
    # The counter: the camera's clock spaces frames to within a few ms, hence 2%.
    assert rates[-1] >= CAMERA_FPS / 4 and max(rates) <= CAMERA_FPS * 1.02, rates
    shown = float(page.text_content("#cam-rate").split()[0])
    assert 0 < shown <= CAMERA_FPS and "updates/s" in page.text_content("#cam-rate")
    size = page.evaluate("(() => { const c = document.getElementById('cam-overlay');"
                         " return [c.clientWidth, c.clientHeight]; })()")
    _check_tags(page.evaluate("ferkit.tags['cam-overlay']"), 1, *size)
    # Stop: the counter says 0 and stays there, no reply comes in late; Start again counts again.
    page.click("#cam-stop")
    stopped = page.evaluate("ferkit.live.replies")
    assert page.text_content("#cam-rate") == "0.0 updates/s"
    assert _rates(page, 1) == [0.0] * 4 and page.evaluate("ferkit.live.replies") == stopped
    assert page.get_attribute("#cam-overlay", "data-faces") is None
    page.click("#cam-start")
    page.wait_for_function("Number(document.getElementById('cam-rate').dataset.rate) > 0", timeout=TIMEOUT_MS)
    page.click("#cam-stop")
    context.close()


def test_probability_bars_fit_their_canvas(screen, base_url):
    """Even "100.0%" ends inside the chart, on a phone too."""
    page = screen
    page.goto(base_url)
    page.click("#tab-webcam")
    page.evaluate("""() => drawBars(document.getElementById('cam-bars'), 'cam-bars-title', {
        label: 'happy', confidence: 1,
        scores: {angry: 0, disgust: 0.0004, fear: 0, happy: 1, sad: 0.917, surprise: 0, neutral: 0.5}})""")
    width, height = page.evaluate("(() => { const c = document.getElementById('cam-bars');"
                                  " return [c.clientWidth, c.clientHeight]; })()")
    assert _painted(page, "cam-bars", width - 2, 0, width - 1, height - 1) == 0, "text runs off the right edge"
    assert _painted(page, "cam-bars", width - 40, 0, width - 3, height - 1) > 0, "no percentages drawn"


def test_tags_never_overlap_even_in_a_crowd(screen, base_url):
    """Twenty faces packed into a phone-sized photo: every tag still finds a free spot on the canvas."""
    page = screen
    page.goto(base_url)
    labels = ["surprise", "happy", "neutral", "contempt"]
    faces = [{"box": [10 + 62 * (i % 5), 20 + 70 * (i // 5), 40, 50], "label": labels[i % 4], "confidence": 1.0}
             for i in range(20)]
    tags = page.evaluate("""(faces) => { const canvas = document.createElement('canvas');
        return drawFaces(fitCanvas(canvas, 320, 300), faces, 1, {w: 320, h: 300}, 5); }""", faces)
    _check_tags(tags, len(faces), 320, 300)
