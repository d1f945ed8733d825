"""Reassemble files cut into parts for the trip to or from the GPU machine, checking every sha256.

    # on the device machine: the data pack (scripts/gpu_pack.py), parts found beside the manifest
    python3 scripts/gpu_unpack.py out/gpu_pack/fer2013.manifest.json
    # here: what scripts/gpu_collect.py sent back, the folders of one or more calls' files
    python scripts/gpu_unpack.py --results out/gpu_results --to .

A manifest names the file, its size and sha256, how it was compressed (xz or none) and its parts with
their sizes and sha256. A missing or damaged part is named; nothing is written unless the whole file checks
out. An output that already matches the manifest is left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import sys
import tarfile
import tempfile
from pathlib import Path

MANIFEST_FORMAT = "ferkit-gpu-parts/1"
BLOCK = 1 << 20
RESULTS = "results.tar.gz"
PARTS_DIR = "_gpu_parts"  # where a results archive keeps its manifests
EXTRAS_DIR = "_gpu"  # and the queue's log and summary, extracted to out/gpu/


class UnpackError(Exception):
    """A manifest, a part or the reassembled file does not check out."""


def sha256_file(path: Path) -> str:
    """The sha256 of the file at ``path``, as hex."""
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UnpackError(f"{path}: not a readable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise UnpackError(f"{path}: not a {MANIFEST_FORMAT} manifest")
    return manifest


def find_parts(manifest: dict, folders: list[Path]) -> tuple[list[Path], list[str]]:
    """The parts found in ``folders`` (first match wins), and the names of those missing."""
    found, missing = [], []
    for part in manifest["parts"]:
        hit = next((f / part["name"] for f in folders if (f / part["name"]).is_file()), None)
        if hit is None:
            missing.append(part["name"])
        else:
            found.append(hit)
    return found, missing


def _check_part(path: Path, part: dict) -> None:
    if path.stat().st_size != part["size"] or sha256_file(path) != part["sha256"]:
        raise UnpackError(f"{path}: damaged part (size or sha256 differs from the manifest); fetch it again")


def join_parts(manifest_path: str | os.PathLike, out: str | os.PathLike | None = None,
               folders: list[str | os.PathLike] = ()) -> Path:
    """Check every part, concatenate them, decompress (``xz``) and write the file the manifest describes.

    Parts are looked for in ``folders`` and beside the manifest; ``out`` defaults to the manifest's file name
    beside the manifest. The file is written atomically and only once its size and sha256 match.
    """
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    out = Path(out) if out is not None else manifest_path.parent / manifest["file"]
    if out.is_file() and out.stat().st_size == manifest["size"] and sha256_file(out) == manifest["sha256"]:
        return out
    search = [Path(f) for f in folders] + [manifest_path.parent]
    paths, missing = find_parts(manifest, search)
    if missing:
        raise UnpackError(f"{manifest_path}: {len(missing)} of {len(manifest['parts'])} part(s) missing: "
                          f"{', '.join(missing)} (looked in {', '.join(map(str, search))})")
    for path, part in zip(paths, manifest["parts"]):
        _check_part(path, part)
    if manifest["compression"] not in ("xz", "none"):
        raise UnpackError(f"{manifest_path}: unknown compression {manifest['compression']!r}")
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ) if manifest["compression"] == "xz" else None
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    h, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for path in paths:
                with path.open("rb") as part:
                    while block := part.read(BLOCK):
                        data = decompressor.decompress(block) if decompressor else block
                        handle.write(data)
                        h.update(data)
                        size += len(data)
        if decompressor is not None and not decompressor.eof:
            raise UnpackError(f"{manifest_path}: the xz stream ends early")
        if size != manifest["size"] or h.hexdigest() != manifest["sha256"]:
            raise UnpackError(f"{manifest_path}: the reassembled file does not match the manifest's size/sha256")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def unpack_results(folders: list[str | os.PathLike], to: str | os.PathLike) -> dict[str, list[str]]:
    """Extract the newest ``results.tar.gz`` of ``folders`` into ``to`` (the runs' files at their paths, the log
    and summary in ``to/out/gpu/``) and rebuild the checkpoints whose parts have all arrived (in any of
    ``folders``). Returns ``{"files", "rebuilt", "incomplete"}``."""
    folders = [Path(f) for f in folders]
    archives = sorted((f / RESULTS for f in folders if (f / RESULTS).is_file()), key=lambda p: p.stat().st_mtime)
    if not archives:
        raise UnpackError(f"no {RESULTS} in {', '.join(map(str, folders))}")
    to = Path(to)
    report: dict[str, list[str]] = {"files": [], "rebuilt": [], "incomplete": []}
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(archives[-1]) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        tar.extractall(tmp, members=members, filter="data")
        for m in members:
            source = Path(tmp) / m.name
            if m.name.startswith(PARTS_DIR + "/"):
                continue
            target = to / "out" / "gpu" / m.name[len(EXTRAS_DIR) + 1:] if m.name.startswith(EXTRAS_DIR + "/") \
                else to / m.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            report["files"].append(m.name)
        for manifest_path in sorted((Path(tmp) / PARTS_DIR).glob("*.manifest.json")):
            manifest = read_manifest(manifest_path)
            relative = Path(manifest["path"])
            if relative.is_absolute() or ".." in relative.parts:
                raise UnpackError(f"{manifest_path.name}: unsafe path {manifest['path']!r}")
            _, missing = find_parts(manifest, folders)
            if missing:
                report["incomplete"].append(f"{relative} ({len(missing)} of {len(manifest['parts'])} parts to come)")
                continue
            join_parts(manifest_path, to / relative, folders)
            report["rebuilt"].append(str(relative))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", nargs="?", help="a manifest: rebuild its file")
    parser.add_argument("--out", help="where to write the file (default: its name beside the manifest)")
    parser.add_argument("--parts-dir", action="append", default=[], help="another folder holding parts")
    parser.add_argument("--results", nargs="+", metavar="DIR", help="folders of files fetched from device calls")
    parser.add_argument("--to", help="with --results: the repo root to extract the runs into")
    args = parser.parse_args(argv)
    try:
        if args.results:
            if not args.to:
                parser.error("--results needs --to (e.g. --to . for this repo's runs/)")
            report = unpack_results(args.results, args.to)
            print(f"{len(report['files'])} file(s) extracted into {args.to}")
            for line in report["rebuilt"]:
                print(f"  rebuilt {line}")
            for line in report["incomplete"]:
                print(f"  incomplete {line}")
            return 0
        if not args.manifest:
            parser.error("give a manifest or --results DIR")
        out = join_parts(args.manifest, args.out, args.parts_dir)
        print(f"{out}: {out.stat().st_size} bytes, sha256 checked")
    except UnpackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
