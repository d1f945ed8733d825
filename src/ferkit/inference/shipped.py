"""The models shipped inside the package, by name.

Each name has a float checkpoint ``ferkit/weights/<name>.pt``, its int8 ONNX copy ``<name>-int8.onnx`` (what
``backend="auto"`` runs on a CPU with VNNI) and their records ``<name>.json`` and ``<name>-int8.json`` (how they
were made and scored). ``Recognizer()``, ``Recognizer("fast")`` and ``ferkit predict --model accurate`` take a name;
a file whose path is one of these names is given as ``./fast``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import FerkitError

DEFAULT_MODEL = "default"
#: The shipped models: name -> what it is for (FER2013 PrivateTest accuracy and the int8 speed, docs/results.md).
SHIPPED_MODELS: dict[str, str] = {
    DEFAULT_MODEL: "speed and accuracy: ferkit_cnn 32-64-128-256, 70.2% plain on FER2013 PrivateTest",
    "fast": "a quarter of the default's compute, about 2x its int8 faces/s: ferkit_cnn 16-32-64-128, 66.6%",
    "accurate": "about four times the default's compute: four networks of two families averaged, 72.0%",
}


def shipped_name(model: str | os.PathLike | None) -> str | None:
    """The shipped model ``model`` names ("default" for None), or None when it is a path."""
    if model is None:
        return DEFAULT_MODEL
    return model if isinstance(model, str) and model in SHIPPED_MODELS else None


def shipped_filename(name: str, *, int8: bool = False) -> str:
    """The file of shipped model ``name`` in ``ferkit/weights``: ``<name>.pt``, or ``<name>-int8.onnx``."""
    if name not in SHIPPED_MODELS:
        raise ValueError(f"unknown shipped model {name!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    return f"{name}-int8.onnx" if int8 else f"{name}.pt"


def shipped_label(name: str, *, int8: bool = False) -> str:
    """How a shipped file is named in results and logs: ``ferkit/weights/<file>``."""
    return f"ferkit/weights/{shipped_filename(name, int8=int8)}"


@contextlib.contextmanager
def shipped_file(name: str, *, int8: bool = False) -> Iterator[Path]:
    """Yield a file-system path to shipped model ``name`` (its int8 copy with ``int8``); raise if it is missing."""
    filename = shipped_filename(name, int8=int8)
    resource = importlib.resources.files("ferkit") / "weights" / filename
    if not resource.is_file():
        raise FerkitError(f"the shipped model {name!r} is not installed (ferkit/weights/{filename} is missing); "
                          "pass the path of a checkpoint instead, e.g. Recognizer('model.pt')")
    with importlib.resources.as_file(resource) as path:
        yield path
