"""``ferkit explain``: Grad-CAM heat maps of where the model looks."""

from __future__ import annotations

import argparse
import sys

from .common import add_detection_options, detection_options, face_table

NAME = "explain"
HELP = "Show where the model looks: a Grad-CAM heat map over every face of each photo."
EXAMPLES = """examples:
  ferkit explain photo.jpg                       # ferkit-out/photo_explain.png: where the model looked, per face
  ferkit explain a.jpg b.png --out cams/ --model checkpoints/se_cnn_fer2013_s0.pt
  ferkit explain photo.jpg --model checkpoints/system_d_vgg16_bn_simclr8_f1_e50_reg.pt   # System D (VGG16-BN)
  ferkit explain group.jpg --target happy        # every face's map for "happy", whatever it was predicted
  ferkit explain photo.jpg --layer features.19   # the shipped model one block earlier: a finer 12x12 map"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit explain``."""
    parser.add_argument("paths", nargs="+", metavar="PHOTO", help="photos, or folders (searched recursively)")
    parser.add_argument("--model", default=None,
                        help="checkpoint, .pt, or a shipped model: default or fast (default: default)")
    add_detection_options(parser)
    parser.add_argument("--out", default="ferkit-out", help="folder for <photo>_explain.png (default ferkit-out)")
    parser.add_argument("--target", default="predicted", metavar="predicted|LABEL",
                        help="the class each map explains: each face's predicted class (default) or one label")
    parser.add_argument("--layer", default=None,
                        help="the layer to explain, a name from model.named_modules(), or several joined by "
                             "commas (their maps summed; default: the model's own, e.g. layer4 of a ResNet, else its "
                             "body, else its last Conv2d; for an ensemble, each member's)")


def _explain_one(rec, path, name: str, args: argparse.Namespace, layer: str):
    """Explain one photo: its ImageResult, and ``<out>/<name>_explain.png`` when it has a face."""
    from pathlib import Path

    from ..errors import FerkitError
    from ..inference import is_video_file
    from ..inference.explain import explain_photo, save_explanation

    if is_video_file(path):
        raise FerkitError(f"{path}: a video; ferkit explain reads photos")
    explanation = explain_photo(rec, path, target=args.target, layer=layer)
    if not explanation.faces:
        print(f"{path}: no face found; nothing written")  # noqa: T201
        return explanation.result
    what = "each face's predicted class" if args.target == "predicted" else repr(args.target)
    title = f"{Path(path).name}: Grad-CAM of {what} at {layer} ({rec.info.name})"
    save_explanation(Path(args.out) / f"{name}_explain.png", explanation, title)
    return explanation.result


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import FerkitError
    from ..inference import Options
    from ..inference.backends import is_onnx_file
    from ..inference.explain import explain_settings
    from ..inference.sources import expand_inputs
    from ..io import output_folder

    out = Path(args.out)
    inputs = expand_inputs(args.paths, exclude=out)
    output_folder(out, "--out folder")  # before the model loads: a bad --out costs nothing
    if args.model and is_onnx_file(args.model):
        raise FerkitError(f"{args.model}: Grad-CAM needs the PyTorch model; give a .pt checkpoint")
    rec = Options(model=args.model, backend="torch", **detection_options(args)).recognizer()  # Grad-CAM: torch
    _, layer = explain_settings(rec, args.target, args.layer)  # a bad --target or --layer: before any photo
    results, skipped, written = [], [], 0
    for source in inputs:
        try:
            results.append(_explain_one(rec, Path(source.path), source.name, args, layer))
        except FerkitError as exc:
            skipped.append(str(exc))
            continue
        written += bool(results[-1].faces)
    if results:
        print(face_table(results))  # noqa: T201
    print(f"ferkit explain: {len(results)} photo(s) processed, {written} explained, {len(skipped)} skipped"  # noqa: T201
          + (f"; images in {out}/" if written else ""))
    for reason in skipped:
        print(f"ferkit explain: skipped: {reason}", file=sys.stderr)  # noqa: T201
    if skipped:
        return 1 if results else 2
    return 0
