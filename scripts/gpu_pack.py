"""Pack FER2013 (and FER+ votes) for the GPU machine: one .npz, xz-compressed, cut into parts small enough to carry.

    python scripts/gpu_pack.py ../shared/data/fer2013/fer2013.csv.gz [--ferplus fer2013new.csv] \
        [--out out/gpu_pack/fer2013] [--part-mb 20]

Writes OUT.npz (the pack: ``data.path=OUT.npz`` reads it, see ferkit.data.npz), its xz stream cut into
OUT.npz.xz.000, .001, ... and OUT.manifest.json (sizes and sha256 of the pack and of every part), then says
which part to carry in which device call. A device call carries the working tree too (64 MiB in all), so by
default a part is at most 30 MB and at most what the tree leaves free. scripts/gpu_unpack.py reverses it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import lzma
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from gpu_unpack import BLOCK, MANIFEST_FORMAT, sha256_file  # scripts/ beside this file

log = logging.getLogger("gpu_pack")

MB = 1_000_000
CALL_LIMIT = 64 * 2**20  # what one device call may carry, working tree included
MAX_PART = 30 * MB
MARGIN = 2 * 2**20  # room for the tree to grow a little between packing and sending
# delta 48 = the difference to the pixel above (48 px rows): ~8% smaller than plain LZMA2 on FER2013
XZ_FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 48}, {"id": lzma.FILTER_LZMA2, "preset": 9}]


def travelling_tree_bytes(root: Path) -> int | None:
    """Bytes of the files a device call sends besides the carried ones (tracked + untracked-not-ignored)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    files = (root / name for name in out.decode().split("\0") if name)
    return sum(f.stat().st_size for f in files if f.is_file())


def default_part_bytes(root: Path) -> int:
    """30 MB, or less where the working tree leaves less of a call's 64 MiB free."""
    tree = travelling_tree_bytes(root)
    if tree is None:
        return MAX_PART
    free = CALL_LIMIT - tree - MARGIN
    if free < MB:
        raise SystemExit(f"the working tree ({tree / MB:.1f} MB) leaves no room in a device call's 64 MiB")
    return min(MAX_PART, free)


def xz_chunks(path: Path) -> Iterator[bytes]:
    """The xz stream of ``path``, block by block."""
    compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, filters=XZ_FILTERS)
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            yield compressor.compress(block)
    yield compressor.flush()


def write_parts(chunks: Iterable[bytes], prefix: Path, part_bytes: int) -> list[dict]:
    """Cut the byte stream ``chunks`` into files ``prefix.000``, ``prefix.001``, ... of at most ``part_bytes``."""
    parts: list[dict] = []
    handle, h, size = None, None, 0

    def close() -> None:
        handle.close()
        parts[-1].update(size=size, sha256=h.hexdigest())

    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                if handle is None or size == part_bytes:
                    if handle is not None:
                        close()
                    name = f"{prefix.name}.{len(parts):03d}"
                    handle, h, size = (prefix.parent / name).open("wb"), hashlib.sha256(), 0
                    parts.append({"name": name})
                take = view[:part_bytes - size]
                handle.write(take)
                h.update(take)
                size += len(take)
                view = view[len(take):]
    finally:
        if handle is not None:
            close()
    return parts


def write_manifest(path: Path, target: Path, parts: list[dict], compression: str, **extra) -> dict:
    """The manifest beside the parts: the target file's name, size and sha256, and each part's."""
    manifest = {"format": MANIFEST_FORMAT, "file": target.name, "size": target.stat().st_size,
                "sha256": sha256_file(target), "compression": compression, "parts": parts, **extra}
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def pack(csv_path: str, out: Path, *, ferplus: str | None = None, part_bytes: int = MAX_PART) -> dict:
    """Read the CSVs, write ``out.npz``, its xz parts and ``out.manifest.json``; return the manifest."""
    from ferkit.data.fer2013 import read_fer2013
    from ferkit.data.ferplus import read_ferplus
    from ferkit.data.npz import write_pack

    fer2013 = read_fer2013(csv_path)
    votes = read_ferplus(ferplus) if ferplus else None
    out.parent.mkdir(parents=True, exist_ok=True)
    npz = write_pack(out.with_name(out.name + ".npz"), fer2013, votes)
    for old in out.parent.glob(f"{npz.name}.xz.[0-9][0-9][0-9]"):
        old.unlink()  # parts of an earlier pack
    log.info("compressing %s (%.1f MB) with xz; a few minutes", npz, npz.stat().st_size / MB)
    parts = write_parts(xz_chunks(npz), npz.with_name(npz.name + ".xz"), part_bytes)
    return write_manifest(out.with_name(out.name + ".manifest.json"), npz, parts, "xz", rows=len(fer2013),
                          ferplus=votes is not None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fer2013", help="fer2013.csv or fer2013.csv.gz")
    parser.add_argument("--ferplus", help="FER+ fer2013new.csv, packed beside (data.format=ferplus reads it)")
    parser.add_argument("--out", default="out/gpu_pack/fer2013", help="path prefix (default: %(default)s)")
    parser.add_argument("--part-mb", type=float, help="largest part in MB (default: 30, or what the working tree "
                                                      "leaves free of a call's 64 MiB)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = Path(__file__).resolve().parents[1]
    part_bytes = int(args.part_mb * MB) if args.part_mb else default_part_bytes(root)
    manifest = pack(args.fer2013, Path(args.out), ferplus=args.ferplus, part_bytes=part_bytes)
    folder = Path(args.out).parent
    manifest_path = str(folder / Path(args.out).name) + ".manifest.json"
    total = sum(p["size"] for p in manifest["parts"])
    print(f"{manifest['file']}: {manifest['rows']} rows, {manifest['size'] / MB:.1f} MB -> xz {total / MB:.1f} MB "
          f"in {len(manifest['parts'])} part(s) of at most {part_bytes / MB:.1f} MB; sha256 {manifest['sha256']}")
    for i, part in enumerate(manifest["parts"]):
        carry = [str(folder / part["name"])] + ([manifest_path] if i == 0 else [])
        print(f"  device call {i + 1}: carry {json.dumps(carry)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
