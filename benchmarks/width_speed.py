"""How narrow must the default's network be to classify twice as fast? int8 faces/s of ``ferkit_cnn`` by width.

    python benchmarks/width_speed.py [--bases 32 28 24 20 16] [--shapes 16-32-64-256 ...] [--batch 256]
                                     [--rounds 8] [--threads 1] [--separable 32-64-128-256 ...]

For each base width ``w`` (blocks ``w-2w-4w-8w``, dense ``8w``; 32 is the shipped default's shape), and for each
``--shapes`` entry (the blocks' widths, dense as wide as the last block; e.g. narrow early blocks only), a network with
random weights is exported to int8 ONNX exactly as ``ferkit export --format onnx-int8`` does (calibrated on 256
FER2013 Training faces when ../shared is there, else on noise: speed does not depend on the weights) and timed
by onnxruntime at batch ``--batch``; the files take turns, round after round, and each keeps its fastest round,
so a busy machine slows them alike. Also timed: the shipped ``default-int8.onnx``. Prints multiply-adds,
parameters, faces/s and the speed relative to the shipped file (``fer``'s classifier runs at about the shipped
file's speed: docs/results/fer_comparison.md, so 2x the shipped file is issue 28's speed goal).

``--separable`` adds, for each shape, ``ferkit_cnn_separable``: the same network with depthwise-separable
convolutions (a 3x3 depthwise conv and a 1x1 pointwise one, each with BN and ReLU) in every block but the first.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ferkit.data.preprocessing import Preprocessing
from ferkit.evaluation import count_multiply_adds, count_parameters
from ferkit.inference.backends import OnnxBackend
from ferkit.machine import describe as describe_machine
from ferkit.models import create_model
from ferkit.models.export import onnx_bytes
from ferkit.models.quantize import quantize_onnx

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_INT8 = ROOT / "src" / "ferkit" / "weights" / "default-int8.onnx"
FER2013 = ROOT / ".." / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def calibration(n: int = 256) -> tuple[np.ndarray, str]:
    """FER2013 Training faces when the shared data is here, else uniform noise faces."""
    if FER2013.is_file():
        from ferkit.data.fer2013 import read_fer2013
        from ferkit.models.quantize import calibration_faces

        return calibration_faces(read_fer2013(FER2013), n), "FER2013 Training faces"
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8), "noise (no ../shared)"


def parse_shape(text: str) -> list[int]:
    """Block widths from ``"16-32-64-256"`` (an argparse type: anything else is refused before any work)."""
    try:
        widths = [int(part) for part in text.split("-")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive block widths joined by '-', e.g. 16-32-64-256")
    return widths


def network_backend(name: str, widths: list[int], faces: np.ndarray, threads: int) -> tuple[OnnxBackend, int, int]:
    """The int8 ONNX copy of the registered network ``name`` (``ferkit_cnn`` or ``ferkit_cnn_separable``) with
    blocks ``widths`` and dense as wide as the last, as ``ferkit export --format onnx-int8`` writes it (random
    weights); its multiply-adds and parameters."""
    import torch

    from ferkit.labels import EMOTIONS
    from ferkit.models import ModelInfo

    torch.manual_seed(0)
    model = create_model(name, widths=list(widths), hidden=widths[-1]).eval()
    info = ModelInfo(name=name, args={}, labels=EMOTIONS, preprocessing=Preprocessing())
    int8 = quantize_onnx(onnx_bytes(model, info), faces, info.preprocessing)
    return OnnxBackend(int8, threads=threads), count_multiply_adds(model, (1, 48, 48)), count_parameters(model)


def fastest_faces_per_second(backends: dict[str, OnnxBackend], batch: int, rounds: int) -> dict[str, float]:
    """Faces/s of each backend's fastest round; the backends take turns every round."""
    import torch

    x = torch.rand(batch, 1, 48, 48)
    best = dict.fromkeys(backends, float("inf"))
    for backend in backends.values():
        backend.logits(x)  # warm-up
    for _ in range(rounds):
        for name, backend in backends.items():
            start = time.perf_counter()
            backend.logits(x)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: batch / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, nargs="*", default=[32, 28, 24, 20, 16])
    parser.add_argument("--shapes", type=parse_shape, nargs="*", default=[], help="block widths such as 16-32-64-256")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--separable", type=parse_shape, nargs="*", default=[],
                        help="shapes also timed with depthwise-separable convolutions after the first block")
    args = parser.parse_args()
    faces, source = calibration()
    backends, sizes = {"shipped default-int8.onnx": OnnxBackend(SHIPPED_INT8, threads=args.threads)}, {}
    shapes = [[base, 2 * base, 4 * base, 8 * base] for base in args.bases] + args.shapes
    networks = ([("ferkit_cnn", "ferkit_cnn", widths) for widths in shapes]
                + [("ferkit_cnn_separable", "separable", widths) for widths in args.separable])
    for network, row_label, widths in networks:
        name = f"{row_label} " + "-".join(map(str, widths))
        backend, macs, params = network_backend(network, widths, faces, args.threads)
        backends[name], sizes[name] = backend, (macs, params)
    speed = fastest_faces_per_second(backends, args.batch, args.rounds)
    shipped = speed["shipped default-int8.onnx"]
    print(f"# {describe_machine()}; onnxruntime {args.threads} thread(s), batch {args.batch}, "  # noqa: T201
          f"fastest of {args.rounds} rounds; calibrated on {source}")
    print("| int8 network | multiply-adds | parameters | faces/s | vs shipped |\n| --- | ---: | ---: | ---: | ---: |")  # noqa: T201
    for name, faces_per_second in speed.items():
        macs, params = sizes.get(name, ("", ""))
        print(f"| {name} | {f'{macs / 1e6:.1f} M' if macs else ''} | {f'{params:,}' if params else ''} | "  # noqa: T201
              f"{faces_per_second:,.0f} | {faces_per_second / shipped:.2f}x |")


if __name__ == "__main__":
    main()
