"""The ``ferkit`` command: thin calls into the package's modules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .errors import FerkitError

log = logging.getLogger("ferkit")

EXAMPLES = {
    "train": """examples:
  ferkit train configs/default.toml
  ferkit train configs/default.toml train.epochs=5 data.train_limit=2000 name=smoke
  ferkit train configs/default.toml --resume          # continue runs/default after an interruption
  (runs/... is the run store, ~/.local/share/ferkit/runs unless FERKIT_RUNS_DIR says otherwise)""",
    "publish": """examples:
  ferkit publish runs/system_b/se_cnn_fer2013_s0 --command "ferkit train configs/se_cnn_fer2013.toml train.seed=0"
  ferkit publish runs/system_c/x --command "..." --note "20 epochs, one core"   # a ResNet50: weights stay in the
                                                                                # run store, sha256 in the json""",
    "teachers": """examples:
  ferkit teachers checkpoints/*_fer2013*.pt src/ferkit/weights/default.pt --data ../shared/data/fer2013/fer2013.csv.gz
  (each model's probabilities on Training, its mirror images, PublicTest and PrivateTest are cached once in
   ~/.cache/ferkit/teachers; the ensemble and its temperature are chosen on PublicTest)""",
    "queue": """examples:
  ferkit queue scripts/queues/transfer_random70_30.txt          # train, resume or skip each run in turn
  ferkit queue scripts/queues/transfer.txt --time-limit 150     # stop at an epoch boundary after 150 min
  ferkit queue scripts/queues/transfer.txt --list               # what is done, published, cut off or new
  (a line: OUT_DIR/NAME CONFIG [key=value ...]; runs/... lives in the run store, outside the repository)""",
    "evaluate": """examples:
  ferkit evaluate runs/default/best.pt --data ../shared/data/fer2013/fer2013.csv.gz
  ferkit evaluate src/ferkit/weights/default.pt --data fer2013.csv --split PublicTest --tta --out reports/
  ferkit evaluate checkpoints/cae_cnn_ckplus_subject_fold0.pt --data ../shared/data/ckplus48 --split test
  ferkit evaluate checkpoints/se_cnn_fer2013_s*.pt --data fer2013.csv.gz   # three seeds as one ensemble""",
    "lr-find": """examples:
  ferkit lr-find configs/default.toml
  ferkit lr-find configs/default.toml --start 1e-6 --end 1 --steps 150 --out lr.png""",
    "export": """examples:
  ferkit export runs/default/best.pt --format fp16 --out default-fp16.pt   # half the size
  ferkit export runs/default/best.pt --format onnx --out model.onnx
  ferkit export runs/default/best.pt --format onnx-int8 --calibration fer2013.csv.gz --out model-int8.onnx
  ferkit export runs/default/best.pt --format torchscript --out model.ts""",
    "models": """examples:
  ferkit models""",
    "predict": """examples:
  ferkit predict photo.jpg                       # table on the terminal, annotated copy in ferkit-out/
  ferkit predict a.jpg b.png --out results/ --model runs/default/best.pt --detector haar
  ferkit predict photos/ --format parquet        # every photo and video under photos/, recursively
  ferkit predict clip.mp4 --stride 2 --smooth 0.3 # clip_frames.csv, clip_annotated.mp4, clip_emotions.png
  ferkit predict photos/ --backend int8            # the shipped model's int8 copy: ~3x faster classifier
  ferkit predict clip.mp4 --backend int8 --detect-side 320   # the fastest settings for video""",
    "explain": """examples:
  ferkit explain photo.jpg                       # ferkit-out/photo_explain.png: where the model looked, per face
  ferkit explain a.jpg b.png --out cams/ --model checkpoints/se_cnn_fer2013_s0.pt
  ferkit explain group.jpg --target happy        # every face's map for "happy", whatever it was predicted
  ferkit explain photo.jpg --layer features.19   # the shipped model one block earlier: a finer 12x12 map""",
    "webcam": """examples:
  ferkit webcam                                  # camera 0; press q or Esc to quit
  ferkit webcam --camera 1 --model runs/default/best.pt --smooth 0.3""",
    "serve": """examples:
  ferkit serve                                   # page and API on http://127.0.0.1:8000 (spec: /openapi.json)
  ferkit serve --port 9000 --model runs/default/best.pt --jobs-dir /var/tmp/ferkit-jobs
  ferkit serve --allow-origin http://localhost:3000   # let your own front end on port 3000 call the API
  curl -F file=@photo.jpg 'http://127.0.0.1:8000/v1/analyze?annotate=true'""",
    "batch": """examples:
  ferkit batch photos/ --out results/            # every photo and video under photos/ -> results/faces/*.parquet
  ferkit batch list.txt --out results/ --annotate # one path a line; annotated copies in results/media/
  ferkit batch 'shots/**/*.jpg' --out results/ --engine ray                   # a local Ray cluster
  ferkit batch videos/ --out results/ --engine ray --address auto --stride 2  # a running cluster
  (run the same command again after an interruption: finished inputs are skipped)""",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial emotion recognition toolkit.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("train", "Train a model from a config file; key=value pairs override the config.")
    p.add_argument("config", help="TOML config (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.lr=0.001 data.path=...")
    p.add_argument("--resume", action="store_true", help="continue the run in the config's run folder")

    p = add("queue", "Train the runs of queue files one at a time: skip finished and published ones, resume "
                     "cut-off ones; a second queue is refused.")
    p.add_argument("queues", nargs="+", metavar="QUEUE", help="queue file(s), run in order")
    p.add_argument("--time-limit", type=float, default=0.0, metavar="MIN",
                   help="stop after the epoch in which this many minutes have passed (the next call resumes)")
    p.add_argument("--published", default="checkpoints", metavar="DIR",
                   help="a run with DIR/NAME.json is published: skipped (default checkpoints)")
    p.add_argument("--list", action="store_true", help="only list each run's status")

    p = add("publish", "Publish a finished run: fp16 weights (under --max-mb) and metrics under checkpoints/, "
                       "history and curves under docs/; never its training state.")
    p.add_argument("run", help="the run's folder (runs/... is in the run store)")
    p.add_argument("--command", dest="train_command", required=True, help="the command that trained the run")
    p.add_argument("--name", default=None, help="published name (default: the run folder's name)")
    p.add_argument("--note", default="", help="anything a reader must know (data subset, initialisation, ...)")
    p.add_argument("--data", default=None, help="data path to score the published weights on (default: the run's)")
    p.add_argument("--max-mb", type=float, default=50.0, help="largest weights file put in the repository (50)")

    p = add("teachers", "Cache FER2013 classifiers' probabilities and choose a teacher ensemble on PublicTest.")
    p.add_argument("checkpoint", nargs="+", help="classifiers over the FER2013 classes")
    p.add_argument("--data", required=True, help="the FER2013 CSV (Training, PublicTest, PrivateTest)")
    p.add_argument("--cache", default=None, help="cache folder (default ~/.cache/ferkit/teachers)")
    p.add_argument("--out", default=None, help="also write the record as JSON here")

    p = add("evaluate", "Evaluate a checkpoint on a data set split: report, confusion matrix, TTA.")
    p.add_argument("checkpoint", nargs="+",
                   help="a checkpoint or ONNX file; several: their ensemble (the mean of their probabilities)")
    p.add_argument("--data", required=True, help="FER2013 CSV, or a folder tree <root>/<class>/<images>")
    p.add_argument("--format", default="", help="fer2013 | ferplus | folder | kdef (default: from the path)")
    p.add_argument("--ferplus", default="", help="fer2013new.csv, for --format ferplus")
    p.add_argument("--split", default="PrivateTest",
                   help="a FER2013 Usage split (default PrivateTest), or train/val/test: the split the "
                        "checkpoint's own config makes (e.g. its k-fold test fold); several joined with + "
                        "(PublicTest+PrivateTest); data without splits: all")
    p.add_argument("--tta", action="store_true", help="also report flip and ten-crop test-time augmentation")
    p.add_argument("--rounds", type=int, default=0, help="also run K rounds of --round-size random images")
    p.add_argument("--round-size", type=int, default=100)
    p.add_argument("--out", default="", help="folder for report.txt/json and confusion PNGs")
    p.add_argument("--cache-dir", default="", help="cache parsed CSVs here")

    p = add("lr-find", "Sweep the learning rate exponentially; plot loss vs LR and suggest a rate.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--start", type=float, default=1e-7)
    p.add_argument("--end", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--out", default="", help="plot path (default: <run dir>/lr_find.png)")

    add("models", "List the registered models.")

    p = add("export", "Export a checkpoint as an fp16 ferkit checkpoint, ONNX (float or int8) or TorchScript.")
    p.add_argument("checkpoint")
    p.add_argument("--format", default="onnx", help="fp16 | onnx | onnx-int8 | torchscript")
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--calibration", default=None, metavar="DATA",
                   help="onnx-int8: training faces to calibrate on (FER2013 CSV: its Training rows; or a folder)")
    p.add_argument("--calibration-format", default=None, help="format of DATA (default: folder for a folder, "
                                                               "else fer2013)")
    p.add_argument("--calibration-faces", type=int, default=1024, metavar="N",
                   help="onnx-int8: faces drawn at random (seed 0) for calibration (default 1024)")

    p = add("predict", "Find every face in photos and videos and recognise its emotion.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="photos, videos, or folders (searched recursively)")
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--out", default="ferkit-out", help="folder for annotated copies and the results tables")
    p.add_argument("--format", default="csv", choices=["csv", "json", "jsonl", "parquet"],
                   help="results table format (default csv; parquet needs pyarrow)")
    p.add_argument("--no-draw", action="store_true", help="do not write annotated copies")
    p.add_argument("--stride", type=int, default=1, help="videos: analyse every Nth frame (default 1)")
    p.add_argument("--smooth", type=float, default=None, metavar="ALPHA",
                   help="videos: smooth each face's probabilities over frames, weight ALPHA in (0, 1] on the "
                        "newest (e.g. 0.3; default off)")
    _add_backend_options(p)

    p = add("explain", "Show where the model looks: a Grad-CAM heat map over every face of each photo.")
    p.add_argument("paths", nargs="+", metavar="PHOTO", help="photos, or folders (searched recursively)")
    p.add_argument("--model", default=None, help="checkpoint, .pt (default: the shipped model)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--out", default="ferkit-out", help="folder for <photo>_explain.png (default ferkit-out)")
    p.add_argument("--target", default="predicted", metavar="predicted|LABEL",
                   help="the class each map explains: each face's predicted class (default) or one label")
    p.add_argument("--layer", default=None,
                   help="the layer to explain, a name from model.named_modules() (default: the model's own, e.g. "
                        "layer4 of a ResNet, else its body, else its last Conv2d)")

    p = add("webcam", "Show a camera live with each face's emotion (needs a display and opencv-python).")
    p.add_argument("--camera", type=int, default=0, help="camera index (default 0)")
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--smooth", type=float, default=None, metavar="ALPHA",
                   help="smooth each face's probabilities over frames (e.g. 0.3; default off)")
    _add_backend_options(p)

    p = add("serve", "Run the web service and its page: photo API, video jobs, live webcam overlay.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--detect-side", type=int, default=320, metavar="PX",
                   help="detect faces on a copy shrunk to PX on its long side (default 320; 640 finds "
                        "smaller faces, ~3x slower)")
    p.add_argument("--workers", type=int, default=None, help="inference threads (default: cores, at most 4)")
    p.add_argument("--threads", type=int, default=None,
                   help="OpenMP/PyTorch threads per computation (default: cores / workers)")
    p.add_argument("--jobs-dir", default=None,
                   help="folder for video uploads and their results (default: $FERKIT_JOBS_DIR, else "
                        "~/.cache/ferkit/jobs; at most --jobs-max-mb in all, oldest finished jobs go first)")
    p.add_argument("--jobs-max-mb", type=int, default=2048, metavar="MB", help="size cap of the jobs folder")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web origin (e.g. http://localhost:3000) whose pages may call the service; repeat for "
                        "more. Other pages are refused (403); scripts and curl send no origin and are served")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name the service answers to besides the loopback names (default: those, or any "
                        "name when --host is 0.0.0.0 or ::)")

    p = add("batch", "Recognise the faces of a large collection of photos and videos into a Parquet dataset "
                     "(resumable; locally or on Ray).")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a folder (searched recursively), a list file (.txt/.lst/.list, one path a line), a quoted "
                        "glob ('a/**/*.jpg'), or a photo or video")
    p.add_argument("--out", required=True, help="output folder: faces/ (the Parquet dataset), inputs.parquet, "
                                                "errors.parquet, media/")
    p.add_argument("--engine", default="local", choices=["local", "ray"], help="default local (this process)")
    p.add_argument("--address", default=None, help="ray: a running cluster (auto, HOST:PORT or ray://HOST:10001); "
                                                   "default: start a local one")
    p.add_argument("--workers", type=int, default=None, help="ray: model workers (default: one per cluster CPU)")
    p.add_argument("--photos-per-batch", type=int, default=16, help="ray: photos per worker call (default 16)")
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--stride", type=int, default=1, help="videos: analyse every Nth frame (default 1)")
    p.add_argument("--annotate", action="store_true", help="also write annotated photos and videos to OUT/media/")
    p.add_argument("--retry-failed", action="store_true", help="analyse again the inputs that failed before")
    p.add_argument("--part-size", type=int, default=256, metavar="N",
                   help="inputs per Parquet part (default 256; a part is also written each minute): after an "
                        "interruption at most this much work is redone")
    return parser


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="torch",  # checked by the Recognizer (ferkit.inference.backends.BACKENDS)
                   help="classifier runtime: torch (default), onnx, or int8 (onnxruntime on an int8 model: the "
                        "fastest; --model must then be an int8 .onnx file, the shipped model has one)")
    p.add_argument("--threads", type=int, default=None, help="onnx/int8: onnxruntime threads (default: one per core)")
    p.add_argument("--align", action="store_true", help="turn each face so the eyes are level before classifying")
    p.add_argument("--tta", default="none", choices=["none", "flip", "tencrop"],
                   help="average each face over views: flip (2x the classifier's work; for the shipped model +0.7 "
                        "points on FER2013 PrivateTest but -1.2 on CK+48 zero-shot) or tencrop (10x; +1.5 on "
                        "FER2013 PrivateTest, not measured elsewhere); default none")
    p.add_argument("--detect-side", type=int, default=None, metavar="PX",
                   help="detect faces on a copy shrunk to PX on its long side (default: the detector's, 960 for "
                        "yunet; 320 is ~3x faster on video but misses faces under ~30 px in a 1,000 px photo)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(message)s", datefmt="%H:%M:%S")
    from . import commands

    try:
        if args.command == "serve":  # lives in ferkit.serving, which needs the optional serve extra
            from .serving.server import serve_command

            return serve_command(args)
        if args.command == "batch":  # lives in ferkit.batch (needs pyarrow; ray for --engine ray)
            from .batch.command import batch_command

            return batch_command(args)
        return getattr(commands, args.command.replace("-", "_"))(args)
    except (FerkitError, ValueError) as exc:  # ValueError: a bad option value, named by the API
        if args.verbose:
            raise
        print(f"ferkit {args.command}: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        hint = " (continue with --resume)" if args.command == "train" else ""
        print(f"ferkit {args.command}: interrupted{hint}", file=sys.stderr)  # noqa: T201
        return 130


if __name__ == "__main__":
    sys.exit(main())
