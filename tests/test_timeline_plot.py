"""The emotion-over-time plot: round ticks, areas where the probabilities put them, one panel per track."""

import math

import numpy as np
import pytest
from PIL import Image

from ferkit.inference.draw import label_colour
from ferkit.inference.results import Face, ImageResult
from ferkit.inference.timeline import EmotionTimeline
from ferkit.inference.timeline_plot import (
    BOTTOM,
    GAP,
    LEFT,
    PANEL,
    RIGHT,
    TOP,
    WIDTH,
    Panel,
    nice_ticks,
    render_timeline,
)

LABELS = ["happy", "sad", "surprise"]  # no gray: anti-aliased black lines are gray
COLOURS = [label_colour(label) for label in LABELS]


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-0.15, 3.1), (2.0, 2.001), (0.0, 1800.0), (-5.0, 37.0)])
def test_ticks_are_round_evenly_spaced_and_inside_the_range(low, high):
    ticks = nice_ticks(low, high)
    assert 2 <= len(ticks) <= 8 and all(low - 1e-9 <= t <= high + 1e-9 for t in ticks)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))


def _pixels(rgb: np.ndarray, colour) -> np.ndarray:
    return (np.abs(rgb.astype(int) - colour).sum(axis=2) < 6)


def test_areas_follow_the_probabilities():
    times = np.linspace(0, 10, 101)
    happy = (times < 5).astype(float)  # all happy, then all sad
    panel = Panel("track 0", times, np.stack([happy, 1 - happy, np.zeros_like(times)], axis=1))
    rgb = render_timeline([panel], LABELS, COLOURS)
    assert rgb.shape == (TOP + BOTTOM + PANEL, WIDTH, 3)
    inside = rgb[TOP + 5:TOP + PANEL - 5, LEFT:WIDTH - RIGHT]  # the legend lies outside the panel
    columns = inside.shape[1]
    left_half, right_half = inside[:, columns // 10:columns * 4 // 10], inside[:, columns * 6 // 10:columns * 9 // 10]
    assert _pixels(left_half, COLOURS[0]).mean() > 0.99 and _pixels(right_half, COLOURS[1]).mean() > 0.99
    assert not _pixels(inside, COLOURS[2]).any()


def test_a_stacked_panel_splits_its_height_by_probability():
    times = np.array([0.0, 1.0])
    panel = Panel("track 0", times, np.array([[0.25, 0.75, 0.0], [0.25, 0.75, 0.0]]))
    rgb = render_timeline([panel], LABELS, COLOURS)
    column = rgb[TOP + 2:TOP + PANEL - 2, (LEFT + WIDTH - RIGHT) // 2]
    happy, sad = _pixels(column[None], COLOURS[0]).sum(), _pixels(column[None], COLOURS[1]).sum()
    assert happy / (happy + sad) == pytest.approx(0.25, abs=0.02)


def test_one_panel_per_track_and_an_empty_plot_without_faces(tmp_path):
    timeline = EmotionTimeline(LABELS)
    path = timeline.save(tmp_path / "empty.png", title="no one")
    empty = np.asarray(Image.open(path).convert("RGB"))
    assert empty.shape == (TOP + BOTTOM + PANEL, WIDTH, 3)
    assert not any(_pixels(empty, colour).any() for colour in COLOURS)
    for frame in range(20):
        faces = [Face(box=(0, 0, 9, 9), detector_score=1, label="", confidence=1, track=track,
                      scores=dict(zip(LABELS, np.eye(3)[track]))) for track in range(3)]
        timeline.add(ImageResult(path=None, width=9, height=9, faces=faces, frame=frame, time_s=frame / 10))
    rgb = np.asarray(Image.open(timeline.save(tmp_path / "three.png", max_tracks=2)).convert("RGB"))
    assert rgb.shape == (TOP + BOTTOM + 2 * PANEL + GAP, WIDTH, 3)
    panels = [rgb[top + 5:top + PANEL - 5, LEFT + 20:WIDTH - RIGHT - 20] for top in (TOP, TOP + PANEL + GAP)]
    assert [_pixels(panel, COLOURS[index]).mean() > 0.95 for index, panel in enumerate(panels)] == [True, True]
