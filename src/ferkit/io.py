"""Small file helpers: atomic writes, path checks, the per-user cache location, and interrupts held over a
write that must happen whole."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import FerkitError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    fd, tmp = _temporary_beside(path)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _temporary_beside(path: Path) -> tuple[int, str]:
    """Create the folder of ``path`` and a temporary file in it, or raise a FerkitError naming ``path``."""
    if path.is_dir():
        raise FerkitError(f"cannot write {path}: it is a folder, expected a file name")
    if path.parent.exists() and not path.parent.is_dir():
        raise FerkitError(f"cannot write {path}: {path.parent} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FerkitError(f"cannot write {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def interrupts_held(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM for the block, then hand the first that came to its handler (often raising
    KeyboardInterrupt there): for a file and the bookkeeping that says it exists, written together or not at all.
    Only the main thread receives signals; elsewhere, and for a handler not set from Python, nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, object]] = []
    held = {number: handler for number in signals if (handler := signal.getsignal(number)) is not None}
    for number in held:
        signal.signal(number, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
        if caught:
            number, frame = caught[0]
            if callable(held[number]):
                held[number](number, frame)
            elif held[number] == signal.SIG_DFL:
                signal.raise_signal(number)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_savefig(fig, path: str | os.PathLike, **kwargs) -> None:
    """Save a matplotlib figure atomically (the format follows the path's suffix)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format=fmt, **kwargs)


def existing_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise a FerkitError if it is missing, a folder or empty."""
    path = Path(path)
    if not path.exists():
        raise FerkitError(f"{what} not found: {path}")
    if path.is_dir():
        raise FerkitError(f"{what} is a folder, expected a file: {path}")
    if path.stat().st_size == 0:
        raise FerkitError(f"{what} is empty: {path}")
    return path


def output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) if needed and check it is a writable folder, before any work is done.

    Raises a FerkitError naming the path when it is a file, cannot be created or is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FerkitError(f"{what} {path} is a file; give a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FerkitError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise FerkitError(f"{what} {path} is not writable")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def user_cache_dir(*parts: str) -> Path:
    """ferkit's per-user cache folder (``$XDG_CACHE_HOME/ferkit`` or ``~/.cache/ferkit``), joined with ``parts``.

    ``FERKIT_CACHE_DIR`` replaces the base. Nothing is created here.
    """
    base = os.environ.get("FERKIT_CACHE_DIR") or ""
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(xdg) / "ferkit")
    return Path(base).expanduser().joinpath(*parts)
