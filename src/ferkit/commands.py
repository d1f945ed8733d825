"""The CLI's subcommands, each a short function of the parsed arguments."""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("ferkit")


def train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .training.run import train as run_training

    config = load_config(args.config, args.overrides)
    result = run_training(config, resume=args.resume)
    log.info("best checkpoint: %s (%s)", result.best_checkpoint, result.stop_reason)
    return 0


def queue(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .training.queue import entry_status, read_queue, run_queue
    from .training.store import run_store

    published = Path(args.published)
    if args.list:
        print(f"run store: {run_store()}")  # noqa: T201
        for entry in read_queue(args.queues):
            print(f"{entry_status(entry, published):9s} {entry.run}")  # noqa: T201
        return 0
    outcomes = run_queue(args.queues, published=published, time_limit_s=args.time_limit * 60)
    return 1 if any(outcome == "failed" for _, outcome in outcomes) else 0


def publish(args: argparse.Namespace) -> int:
    from .training.publish import publish_run
    from .training.store import existing_run_file

    record = publish_run(existing_run_file(args.run), args.train_command, name=args.name, note=args.note,
                         data=args.data, max_mb=args.max_mb)
    where = record.get("weights_path") or f"checkpoints/{args.name or existing_run_file(args.run).name}.pt"
    scores = ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith(("test_", "fp16_test_"))
                       and isinstance(v, float))
    print(f"{where}: {record['size_mb']} MB ({record['weights']}), {scores}; {record['epochs_run']} epochs, "  # noqa: T201
          f"{record['stop_reason']}")
    return 0


def teachers(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .config import DataConfig
    from .data.sources import read_source
    from .errors import FerkitError
    from .evaluation.teachers import teacher_ensemble
    from .io import atomic_write_text, user_cache_dir
    from .training.store import in_store

    data = read_source(DataConfig(format="fer2013", path=args.data))
    if data.splits is None:
        raise FerkitError(f"{args.data}: no Usage column; the teachers need Training, PublicTest and PrivateTest")
    record = teacher_ensemble(args.checkpoint, data, Path(args.cache) if args.cache else user_cache_dir("teachers"))
    for name, acc in record["members"].items():
        print(f"{name:40s} PublicTest {acc['PublicTest']:.4f}  PrivateTest {acc['PrivateTest']:.4f}")  # noqa: T201
    for kind in ("uniform_mean", "selected"):
        r = record[kind]
        print(f"{kind:40s} PublicTest {r['PublicTest']['accuracy']:.4f}  "  # noqa: T201
              f"PrivateTest {r['PrivateTest']['accuracy']:.4f} {r['PrivateTest']['ci95']}")
    print(f"selected weights {record['selected']['weights']}, temperature {record['temperature']:.2f}")  # noqa: T201
    if args.out:  # runs/... is in the run store, where a student's train.teacher_cache finds it
        atomic_write_text(in_store(args.out), json.dumps(record, indent=2) + "\n")
        print(f"record written to {in_store(args.out)}")  # noqa: T201
    return 0


def models(args: argparse.Namespace) -> int:
    from .models import list_models, model_builder

    for name in list_models():
        doc = (model_builder(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:24s} {doc}")  # noqa: T201
    return 0


def export(args: argparse.Namespace) -> int:
    from .evaluation import size_on_disk_mb
    from .models.export import export_checkpoint

    calibration = None
    if args.calibration:
        from pathlib import Path

        from .config import DataConfig
        from .data.sources import read_source
        from .models.quantize import calibration_faces

        fmt = args.calibration_format or ("folder" if Path(args.calibration).is_dir() else "fer2013")
        calibration = calibration_faces(read_source(DataConfig(format=fmt, path=args.calibration)),
                                        args.calibration_faces)
    out = export_checkpoint(args.checkpoint, args.out, args.format, calibration=calibration)
    log.info("wrote %s (%s, %.2f MB)", out, args.format, size_on_disk_mb(out))
    return 0


def _evaluation_data(args: argparse.Namespace, info):
    """The faces to evaluate: a named Usage split, the checkpoint's own train/val/test split, or all."""
    from dataclasses import replace
    from pathlib import Path

    import numpy as np

    from .config import DataConfig, config_from_dict
    from .data.sources import load_splits, read_source
    from .errors import FerkitError

    fmt = args.format or ("folder" if Path(args.data).is_dir() else "ferplus" if args.ferplus else "fer2013")
    given = {"format": fmt, "path": args.data, "ferplus_path": args.ferplus, "cache_dir": args.cache_dir}
    if args.split in ("train", "val", "test"):  # re-create the split the checkpoint was trained with
        stored = config_from_dict(info.config).data if info.config else DataConfig()
        part = getattr(load_splits(replace(stored, **given)), args.split)
        if part is None:
            raise FerkitError(f"{args.data}: the checkpoint's data settings give no {args.split} split")
        return part, f"{args.data} [{args.split} split of the checkpoint's config]"
    data = read_source(DataConfig(**given, contempt="contempt" in info.labels))
    if data.splits is None:
        return data, str(args.data)
    names = sorted(set(data.splits.tolist()))
    wanted = args.split.split("+")  # e.g. PublicTest+PrivateTest: the union, in file order
    for name in wanted:
        if name not in names:
            raise FerkitError(f"{args.data}: no split {name!r}; it has {names} (or use train, val, test; "
                              "join splits with +)")
    if len(wanted) == 1:
        return data.split(args.split), f"{args.data} [{args.split}]"
    return data.subset(np.isin(data.splits, wanted)), f"{args.data} [{args.split}]"


def _load_for_evaluation(path: str):
    """``(model, info, what)`` for a checkpoint or an exported ONNX file (float or int8, run by onnxruntime)."""
    from .evaluation.model_size import count_parameters
    from .inference.backends import OnnxBackend, OnnxModule, is_onnx_file, model_info_from_onnx
    from .io import existing_file
    from .models import load_model

    if is_onnx_file(path):
        backend = OnnxBackend(existing_file(path, "ONNX model"))
        return OnnxModule(backend), model_info_from_onnx(backend, path), "ONNX (onnxruntime)"
    model, info = load_model(path)
    return model, info, f"{count_parameters(model):,} parameters"


def evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .evaluation import (
        TTA_MODES,
        TTA_REPORT_NAMES,
        evaluate_ensemble,
        evaluate_model,
        evaluate_with_tta,
        random_rounds,
        size_on_disk_mb,
    )
    from .io import output_folder

    paths = args.checkpoint
    if args.out:
        output_folder(args.out, "--out folder")
    loaded = [_load_for_evaluation(path) for path in paths]
    model, info, what = loaded[0]
    data, where = _evaluation_data(args, info)
    if len(loaded) == 1:
        reports = evaluate_with_tta(model, info, data) if args.tta else {"plain": evaluate_model(model, info, data)}
        title = info.name
        print(f"{paths[0]}: {info.name}, {what}, "  # noqa: T201
              f"{size_on_disk_mb(paths[0]):.2f} MB on disk; {len(data)} images from {where}")
    else:  # an ensemble: the mean of the members' probabilities, each member's own accuracy beside it
        members, reports, alone = [(m, i) for m, i, _ in loaded], {}, []
        for tta in TTA_MODES if args.tta else ("none",):
            reports[TTA_REPORT_NAMES[tta]], own = evaluate_ensemble(members, data, tta, names=paths)
            alone = alone or [report.accuracy for report in own]
        title = f"ensemble of {len(paths)} models"
        for path, (_, member_info, member_what), accuracy in zip(paths, loaded, alone, strict=True):
            print(f"{path}: {member_info.name}, {member_what}, "  # noqa: T201
                  f"{size_on_disk_mb(path):.2f} MB on disk; plain accuracy alone {accuracy:.4f}")
        print(f"{title} (the mean of their probabilities); {len(data)} images from {where}")  # noqa: T201
    for name, report in reports.items():
        print(f"\n== {name} ==\n{report.to_text()}")  # noqa: T201
    if args.rounds:
        plain = reports["plain"]
        rounds = random_rounds(plain.y_true, plain.y_pred, rounds=args.rounds, n=args.round_size)
        print(f"\n== {args.rounds} rounds of {args.round_size} random images ==\n{rounds.to_text()}")  # noqa: T201
    if args.out:
        for name, report in reports.items():
            report.save(Path(args.out) / name, title=f"{title} on {where} ({name})")
        log.info("reports written to %s", args.out)
    return 0


def lr_find(args: argparse.Namespace) -> int:
    from .config import load_config
    from .training.lr_finder import lr_find_from_config

    config = load_config(args.config, args.overrides)
    result = lr_find_from_config(config, start=args.start, end=args.end, steps=args.steps, out=args.out or None)
    print(f"suggested learning rate: {result.suggestion:.2e}")  # noqa: T201
    return 0


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _expand(paths: list[str], exclude=None) -> list:
    """``(file, output name)`` pairs: files as given; folders searched recursively for photos and videos.

    Files found in a folder keep their subfolders in the output name (``sub/a``) and equal names
    get a number, so no output overwrites another. Hidden files and anything under ``exclude``
    (the output folder) are left out of folder searches.
    """
    from pathlib import Path

    from .errors import FerkitError
    from .inference import VIDEO_SUFFIXES

    wanted = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    skip = Path(exclude).resolve() if exclude else None
    out, used = [], set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in wanted and not f.name.startswith(".")
                           and f.is_file() and not (skip and f.resolve().is_relative_to(skip)))
            if not found:
                raise FerkitError(f"no images or videos found in folder {p} (looked for {', '.join(sorted(wanted))})")
            pairs = [(f, f.relative_to(p).with_suffix("").as_posix()) for f in found]
        else:
            pairs = [(p, p.stem)]
        for f, name in pairs:
            unique, n = name, 1
            while unique in used:
                n += 1
                unique = f"{name}_{n}"
            used.add(unique)
            out.append((f, unique))
    return out


def _face_table(results) -> str:
    from pathlib import Path

    lines = [f"{'image':30s} {'face':>4s} {'box (x,y,w,h)':>22s}  {'emotion':9s} {'conf':>5s}  runner-up"]
    for r in results:
        name = Path(r.path).name[-30:] if r.path else "(array)"
        if not r.faces:
            lines.append(f"{name:30s} {'-':>4s} {'no face found':>22s}")
        for i, f in enumerate(r.faces):
            second = sorted(f.scores.items(), key=lambda kv: -kv[1])[1]
            box = ",".join(map(str, f.box))
            lines.append(f"{name:30s} {i:4d} {box:>22s}  {f.label:9s} {f.confidence:5.0%}  {second[0]} {second[1]:.0%}")
    return "\n".join(lines)


def _predict_photo(rec, path, name: str, args: argparse.Namespace):
    from pathlib import Path

    from .inference import draw_faces, load_rgb, save_rgb

    rgb = load_rgb(path)  # read once: for the recognizer and for the annotated copy
    result = rec(rgb)
    result.path = str(path)
    if not args.no_draw:
        suffix = path.suffix if path.suffix.lower() in {".png", ".jpg"} else ".jpg"
        save_rgb(Path(args.out) / f"{name}_annotated{suffix}", draw_faces(rgb, result.faces))
    return result


def _predict_video(rec, path, name: str, args: argparse.Namespace):
    from .inference import FaceTracker, VideoReader, analyze_video

    reader = VideoReader(path, stride=args.stride)  # a bad video fails here, before any file is made
    return analyze_video(rec, reader, args.out, table_format=args.format, tracker=FaceTracker(smoothing=args.smooth),
                         annotate=not args.no_draw, name=name, progress=True)


def _predict_one(rec, path, name: str, args: argparse.Namespace):
    """An ImageResult for a photo or a VideoSummary for a video; a suffix neither names is tried as both."""
    from .errors import FerkitError
    from .inference import is_video_file
    from .io import existing_file

    if is_video_file(path):
        return _predict_video(rec, path, name, args)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _predict_photo(rec, path, name, args)
    existing_file(path, "input")
    try:
        return _predict_photo(rec, path, name, args)
    except FerkitError:
        try:
            return _predict_video(rec, path, name, args)
        except FerkitError:
            raise FerkitError(f"{path}: neither a photo nor a video that OpenCV can read") from None


def _recognizer(args: argparse.Namespace):
    """The Recognizer of ``predict`` and ``webcam``: model, detector (and its size), backend, threads, alignment,
    test-time augmentation."""
    from .inference import Recognizer, create_detector

    options = {} if args.detect_side is None else {"max_side": args.detect_side}
    return Recognizer(checkpoint=args.model, detector=create_detector(args.detector, **options),
                      backend=args.backend, threads=args.threads, align=args.align, tta=args.tta)


def predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from .errors import FerkitError
    from .inference import TABLE_FORMATS, FaceTracker, ImageResult, results_to_rows, write_table
    from .io import output_folder

    if args.stride < 1:
        raise FerkitError(f"--stride must be 1 or more, got {args.stride}")
    FaceTracker(smoothing=args.smooth)  # check --smooth before any work
    out = Path(args.out)
    inputs = _expand(args.paths, exclude=out)
    output_folder(out, "--out folder")  # before the model loads: a bad --out costs nothing
    rec = _recognizer(args)
    photos, videos, skipped = [], [], []
    bar = tqdm(inputs, desc="predict", unit="file", dynamic_ncols=True, disable=None if len(inputs) > 1 else True)
    for path, name in bar:
        try:
            result = _predict_one(rec, path, name, args)
        except FerkitError as exc:
            skipped.append(str(exc))
            continue
        (photos if isinstance(result, ImageResult) else videos).append(result)
    bar.close()
    if photos:
        print(_face_table(photos))  # noqa: T201
        write_table(out / f"results{TABLE_FORMATS[args.format]}", results_to_rows(photos), args.format)
    for summary in videos:
        print(summary.to_text())  # noqa: T201
    print(f"ferkit predict: {len(photos) + len(videos)} processed ({len(photos)} photo(s), "  # noqa: T201
          f"{len(videos)} video(s)), {len(skipped)} skipped" + (f"; results in {out}/" if photos or videos else ""))
    for reason in skipped:
        print(f"ferkit predict: skipped: {reason}", file=sys.stderr)  # noqa: T201
    if skipped:
        return 1 if photos or videos else 2
    return 0


def _explain_one(rec, path, name: str, args: argparse.Namespace, layer: str):
    """Explain one photo: its ImageResult, and ``<out>/<name>_explain.png`` when it has a face."""
    from pathlib import Path

    from .errors import FerkitError
    from .inference import is_video_file
    from .inference.explain import explain_photo, save_explanation

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


def explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .errors import FerkitError
    from .inference import Recognizer, create_detector
    from .inference.backends import is_onnx_file
    from .inference.explain import explain_settings
    from .io import output_folder

    out = Path(args.out)
    inputs = _expand(args.paths, exclude=out)
    output_folder(out, "--out folder")  # before the model loads: a bad --out costs nothing
    if args.model and is_onnx_file(args.model):
        raise FerkitError(f"{args.model}: Grad-CAM needs the PyTorch model; give a .pt checkpoint")
    rec = Recognizer(checkpoint=args.model, detector=create_detector(args.detector))
    _, layer = explain_settings(rec, args.target, args.layer)  # a bad --target or --layer: before any photo
    results, skipped, written = [], [], 0
    for path, name in inputs:
        try:
            results.append(_explain_one(rec, path, name, args, layer))
        except FerkitError as exc:
            skipped.append(str(exc))
            continue
        written += bool(results[-1].faces)
    if results:
        print(_face_table(results))  # noqa: T201
    print(f"ferkit explain: {len(results)} photo(s) processed, {written} explained, {len(skipped)} skipped"  # noqa: T201
          + (f"; images in {out}/" if written else ""))
    for reason in skipped:
        print(f"ferkit explain: skipped: {reason}", file=sys.stderr)  # noqa: T201
    if skipped:
        return 1 if results else 2
    return 0


def webcam(args: argparse.Namespace) -> int:
    from .errors import FerkitError
    from .inference import FaceTracker, display_problem, run_webcam

    problem = display_problem()  # before loading anything
    if problem:
        raise FerkitError(f"cannot show the webcam window: {problem}")
    tracker = FaceTracker(smoothing=args.smooth)
    rec = _recognizer(args)
    run_webcam(rec, args.camera, tracker=tracker)
    return 0
