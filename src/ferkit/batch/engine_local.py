"""The local engine: one Recognizer in this process, the inputs one after another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ..inference.recognizer import Recognizer
from ..inference.sources import Source
from .analyze import BatchSettings, InputResult, analyze_source


def run_local(sources: Sequence[Source], settings: BatchSettings, media_dir: Path, *,
              recognizer: Recognizer | None = None) -> Iterator[InputResult]:
    """The result of each source in order (a generator); ``recognizer`` defaults to one built from ``settings``."""
    rec = recognizer or settings.recognizer()
    for source in sources:
        yield analyze_source(rec, source, settings, media_dir)
