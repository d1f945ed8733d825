"""Shared test fixtures: the location of ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("FERKIT_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def private_run_store(tmp_path_factory):
    """Runs that tests start under ``runs/`` go to a temporary run store, never the user's own."""
    store = tmp_path_factory.mktemp("run_store")
    saved = os.environ.get("FERKIT_RUNS_DIR")
    os.environ["FERKIT_RUNS_DIR"] = str(store)
    yield store
    if saved is None:
        os.environ.pop("FERKIT_RUNS_DIR", None)
    else:
        os.environ["FERKIT_RUNS_DIR"] = saved


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the real data beside the repo; tests using it skip when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set FERKIT_SHARED_DATA)")
    return SHARED_DATA.resolve()


@pytest.fixture(scope="session")
def real_fer2013(shared_data: Path, request, tmp_path_factory):
    """The real FER2013, parsed once and kept in pytest's cache folder (keyed by the file's sha256)."""
    from ferkit.data.fer2013 import read_fer2013

    cache = getattr(request.config, "cache", None)
    cache_dir = cache.mkdir("ferkit_fer2013") if cache is not None else tmp_path_factory.mktemp("fer2013")
    return read_fer2013(shared_data / "fer2013" / "fer2013.csv.gz", cache_dir=cache_dir)


@pytest.fixture
def one_thread():
    """One torch thread for the test (training tests: fast and deterministic on 2 shared cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C (SIGINT) raises KeyboardInterrupt during the test, as in a terminal: a shell that starts pytest in the
    background hands it SIGINT ignored, and Python then leaves it ignored."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
