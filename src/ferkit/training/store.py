"""The run store: where training runs live, outside the work tree by default.

A path in a config, a queue or on the command line that begins with ``runs/`` names a folder of
the store: ``runs/system_c/x`` is ``<store>/system_c/x``. The store is ``$FERKIT_RUNS_DIR``, else
``$XDG_DATA_HOME/ferkit/runs`` (``~/.local/share/ferkit/runs``), so a run survives a fresh checkout
of the repository on the same machine and never lands in git. ``FERKIT_RUNS_DIR=runs`` keeps runs in
the working folder as before. Other paths (absolute, or relative without ``runs/``) mean what they say.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "runs"


def run_store() -> Path:
    """The folder that ``runs/...`` paths name (not created here)."""
    chosen = os.environ.get("FERKIT_RUNS_DIR")
    if chosen:
        return Path(chosen).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "ferkit" / PREFIX


def in_store(path: str | os.PathLike) -> Path:
    """``path`` with a leading ``runs/`` replaced by the run store; any other path unchanged."""
    path = Path(path)
    if path.is_absolute() or path.parts[:1] != (PREFIX,):
        return path
    return run_store().joinpath(*path.parts[1:])


def existing_run_file(path: str | os.PathLike) -> Path:
    """For reading: ``path`` itself where it exists (a ``runs/`` folder made before the store), else
    :func:`in_store` of it."""
    path = Path(path)
    return path if path.exists() else in_store(path)


def as_runs_path(path: str | os.PathLike) -> str:
    """The inverse of :func:`in_store` for writing down: a path inside the run store as ``runs/...`` (the same on
    every machine), any other path as given."""
    resolved, store = Path(path).resolve(), run_store().resolve()
    return str(Path(PREFIX, resolved.relative_to(store))) if resolved.is_relative_to(store) else str(path)
