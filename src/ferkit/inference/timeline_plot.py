"""The emotion-over-time plot, drawn with Pillow rather than matplotlib.

A plot is drawn at twice its size and halved (smooth edges). It takes a few milliseconds where matplotlib's
fixed cost per figure (70-100 ms) was a quarter of a short video's whole analysis. Layout in pixels: one
panel per track, stacked over a shared time axis, the legend on the right.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

_SS = 2  # drawn at this multiple of the output size, then shrunk
WIDTH, PANEL, GAP = 900, 180, 45
LEFT, RIGHT, TOP, BOTTOM = 75, 135, 60, 50
_INK, _GRID = (0, 0, 0), (200, 200, 200)


@dataclass(slots=True)
class Panel:
    """One track's panel: its title, the times (seconds) and the probabilities, one column per label."""

    title: str
    times: np.ndarray
    probs: np.ndarray


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size * _SS)


def nice_ticks(low: float, high: float, most: int = 8) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) within ``[low, high]``, at most ``most``."""
    span = max(high - low, 1e-9)
    power = 10.0 ** math.floor(math.log10(span / most))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if span / (m * power) <= most)
    first = math.ceil(low / step - 1e-9)
    return [round(i * step, 10) for i in range(first, math.floor(high / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.1f}"


class _Canvas:
    """A white RGB image drawn in output pixels (scaled by ``_SS`` here)."""

    def __init__(self, width: int, height: int) -> None:
        self.image = Image.new("RGB", (width * _SS, height * _SS), "white")
        self.draw = ImageDraw.Draw(self.image)

    def text(self, xy: tuple[float, float], text: str, size: int = 10, anchor: str = "la") -> None:
        self.draw.text((xy[0] * _SS, xy[1] * _SS), text, fill=_INK, font=_font(size), anchor=anchor)

    def vertical_text(self, centre: tuple[float, float], text: str, size: int = 10) -> None:
        font = _font(size)
        left, top, right, bottom = font.getbbox(text)
        label = Image.new("RGB", (right - left + 4, bottom - top + 4), "white")
        ImageDraw.Draw(label).text((2 - left, 2 - top), text, fill=_INK, font=font)
        label = label.rotate(90, expand=True)
        self.image.paste(label, (round(centre[0] * _SS - label.width / 2), round(centre[1] * _SS - label.height / 2)))

    def line(self, points: Sequence[tuple[float, float]], colour=_INK, width: int = 1) -> None:
        self.draw.line([(x * _SS, y * _SS) for x, y in points], fill=colour, width=width * _SS)

    def polygon(self, xs: np.ndarray, ys: np.ndarray, colour) -> None:
        self.draw.polygon(list(zip((xs * _SS).tolist(), (ys * _SS).tolist())), fill=colour)

    def rgb(self) -> np.ndarray:
        big = np.asarray(self.image)
        return cv2.resize(big, (big.shape[1] // _SS, big.shape[0] // _SS), interpolation=cv2.INTER_AREA)


def _x_range(panels: Sequence[Panel]) -> tuple[float, float]:
    """The panels' time span with 5% margins each side; 0-1 s without panels."""
    if not panels:
        return 0.0, 1.0
    low = min(float(p.times.min()) for p in panels)
    high = max(float(p.times.max()) for p in panels)
    pad = 0.05 * max(high - low, 1e-3)
    return low - pad, high + pad


def _to_x(times, x_range: tuple[float, float]) -> np.ndarray:
    """Times in seconds to output pixels across the panels."""
    return LEFT + (np.asarray(times, float) - x_range[0]) / (x_range[1] - x_range[0]) * (WIDTH - RIGHT - LEFT)


def _draw_panel(canvas: _Canvas, top: float, panel: Panel | None, x_range: tuple[float, float],
                colours: Sequence[tuple[int, int, int]], ticks: list[float]) -> None:
    left, right, bottom = LEFT, WIDTH - RIGHT, top + PANEL
    if panel is None:
        canvas.text(((left + right) / 2, (top + bottom) / 2), "no faces found", 13, "mm")
    else:
        xs, base = _to_x(panel.times, x_range), np.zeros(len(panel.times))
        for column, colour in zip(panel.probs.T, colours):  # stacked areas, the first label at the bottom
            upper = base + column
            canvas.polygon(np.concatenate([xs, xs[::-1]]), bottom - np.concatenate([upper, base[::-1]]) * PANEL,
                           colour)
            base = upper
        canvas.text((left, top - 4), panel.title, 12, "ld")
        for value in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            y = bottom - value * PANEL
            canvas.line([(left - 4, y), (left, y)])
            canvas.text((left - 7, y), f"{value:.1f}", 11, "rm")
        canvas.vertical_text((left - 50, (top + bottom) / 2), "probability", 12)
    for x in _to_x(ticks, x_range).tolist():
        canvas.line([(x, bottom), (x, bottom + 4)])
    canvas.line([(left, top), (right, top), (right, bottom), (left, bottom), (left, top)])


def render_timeline(panels: Sequence[Panel], labels: Sequence[str], colours: Sequence[tuple[int, int, int]],
                    title: str = "") -> np.ndarray:
    """The plot as an RGB array: one panel per entry of ``panels`` ("no faces found" when there is none)."""
    count = max(1, len(panels))
    canvas = _Canvas(WIDTH, TOP + BOTTOM + count * PANEL + (count - 1) * GAP)
    x_range = _x_range(panels)
    ticks = nice_ticks(*x_range)
    for index in range(count):
        top = TOP + index * (PANEL + GAP)
        _draw_panel(canvas, top, panels[index] if panels else None, x_range, colours, ticks)
    bottom = TOP + count * PANEL + (count - 1) * GAP
    for value, x in zip(ticks, _to_x(ticks, x_range).tolist()):
        canvas.text((x, bottom + 7), _label(value), 11, "ma")
    canvas.text(((LEFT + WIDTH - RIGHT) / 2, bottom + 26), "time (s)", 12, "ma")
    if title:
        canvas.text((WIDTH / 2, 12), title, 13, "ma")
    if panels:
        _draw_legend(canvas, labels, colours)
    return canvas.rgb()


def _draw_legend(canvas: _Canvas, labels: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> None:
    """Swatches and names right of the first panel, listed top to bottom as the areas are stacked."""
    x, y = WIDTH - RIGHT + 14, TOP + 6
    for label, colour in reversed(list(zip(labels, colours))):
        canvas.polygon(np.array([x, x + 18, x + 18, x]), np.array([y, y, y + 8, y + 8]), colour)
        canvas.text((x + 26, y + 4), label, 11, "lm")
        y += 18
