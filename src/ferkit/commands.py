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


def models(args: argparse.Namespace) -> int:
    from .models import list_models, model_builder

    for name in list_models():
        doc = (model_builder(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:24s} {doc}")  # noqa: T201
    return 0


def export(args: argparse.Namespace) -> int:
    from .evaluation import size_on_disk_mb
    from .models.export import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out, args.format)
    log.info("wrote %s (%s, %.2f MB)", out, args.format, size_on_disk_mb(out))
    return 0


def _evaluation_data(args: argparse.Namespace, info):
    """The faces to evaluate: a named Usage split, the checkpoint's own train/val/test split, or all."""
    from dataclasses import replace
    from pathlib import Path

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
    if args.split not in names:
        raise FerkitError(f"{args.data}: no split {args.split!r}; it has {names} (or use train, val, test)")
    return data.split(args.split), f"{args.data} [{args.split}]"


def evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .evaluation import evaluate_model, evaluate_with_tta, random_rounds, size_on_disk_mb
    from .evaluation.model_size import count_parameters
    from .models import load_model

    model, info = load_model(args.checkpoint)
    data, where = _evaluation_data(args, info)
    reports = evaluate_with_tta(model, info, data) if args.tta else {"plain": evaluate_model(model, info, data)}
    print(f"{args.checkpoint}: {info.name}, {count_parameters(model):,} parameters, "  # noqa: T201
          f"{size_on_disk_mb(args.checkpoint):.2f} MB on disk; {len(data)} images from {where}")
    for name, report in reports.items():
        print(f"\n== {name} ==\n{report.to_text()}")  # noqa: T201
    if args.rounds:
        plain = reports["plain"]
        rounds = random_rounds(plain.y_true, plain.y_pred, rounds=args.rounds, n=args.round_size)
        print(f"\n== {args.rounds} rounds of {args.round_size} random images ==\n{rounds.to_text()}")  # noqa: T201
    if args.out:
        for name, report in reports.items():
            report.save(Path(args.out) / name, title=f"{info.name} on {where} ({name})")
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


def _expand(paths: list[str]) -> list:
    """Files as given; folders walked recursively for images."""
    from pathlib import Path

    from .errors import FerkitError

    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise FerkitError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in folder {p}")
            out += found
        else:
            out.append(p)
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


def predict(args: argparse.Namespace) -> int:
    import csv
    import io
    from pathlib import Path

    from .errors import FerkitError
    from .inference import Recognizer, draw_faces, load_rgb, results_to_rows, save_rgb
    from .io import atomic_write_text

    inputs = _expand(args.paths)
    rec = Recognizer(checkpoint=args.model, detector=args.detector)
    out = Path(args.out)
    results, failed = [], []
    for path in inputs:
        try:
            rgb = load_rgb(path)  # read once: for the recognizer and for the annotated copy
        except FerkitError as exc:
            failed.append((path, str(exc)))
            print(f"ferkit predict: skipped: {exc}", file=sys.stderr)  # noqa: T201
            continue
        result = rec(rgb)
        result.path = str(path)
        results.append(result)
        if not args.no_draw:
            target = out / f"{path.stem}_annotated{path.suffix if path.suffix.lower() in {'.png', '.jpg'} else '.jpg'}"
            save_rgb(target, draw_faces(rgb, result.faces))
    if results:
        print(_face_table(results))  # noqa: T201
        rows = results_to_rows(results)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(out / "results.csv", buffer.getvalue())
        n_faces = sum(len(r.faces) for r in results)
        log.info("%d image(s), %d face(s); table and annotated copies in %s/", len(results), n_faces, out)
    if failed:
        print(f"ferkit predict: {len(failed)} of {len(failed) + len(results)} input(s) skipped", file=sys.stderr)  # noqa: T201
        return 1 if results else 2
    return 0
