"""ferkit.io: file digests."""

from __future__ import annotations

import hashlib

import numpy as np

from ferkit.io import file_sha256


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
