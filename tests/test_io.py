"""ferkit.io: atomic writes, file digests, interrupts held over a write."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time

import numpy as np
import pytest

from ferkit.errors import FerkitError
from ferkit.io import atomic_open, file_sha256, interrupts_held


def test_atomic_open_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "new" / "out.bin"
    with atomic_open(path) as handle:
        handle.write(b"first")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write(b"half")
        raise RuntimeError("cut off")
    assert path.read_bytes() == b"first"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.bin"]


@pytest.mark.parametrize("where", ["a folder", "under a file", "under a file's child"])
def test_atomic_open_refuses_a_path_it_cannot_write_naming_it(where, tmp_path):
    blocker = tmp_path / "taken.txt"
    blocker.write_text("keep me")
    path = {"a folder": tmp_path, "under a file": blocker / "out.bin",
            "under a file's child": blocker / "sub" / "out.bin"}[where]
    with pytest.raises(FerkitError, match="cannot write") as caught, atomic_open(path) as handle:
        handle.write(b"never")
    assert str(path) in str(caught.value)
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.txt"]


def test_file_sha256_matches_hashlib_across_blocks(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (1 << 22) + 12345, dtype=np.uint8).tobytes()  # over one block
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit of the last block changed
    assert file_sha256(path) != hashlib.sha256(data).hexdigest()


def test_file_sha256_of_an_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert file_sha256(str(path)) == hashlib.sha256(b"").hexdigest()


def test_interrupts_held_delivers_ctrl_c_after_the_block(ctrl_c_raises):
    finished = []
    with pytest.raises(KeyboardInterrupt), interrupts_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # a signal is handled between bytecodes: the block must still run to its end
        finished.append(True)
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupts_held_calls_a_python_handler_once_and_restores_it():
    calls = []

    def handler(signum, frame):
        calls.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert calls == []  # held
        assert calls == [signal.SIGTERM]  # the first one delivered, after the block
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_interrupts_held_outside_the_main_thread_changes_nothing(ctrl_c_raises):
    seen = []

    def work():
        with interrupts_held():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
