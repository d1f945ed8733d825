"""``ferkit evaluate``: evaluate a checkpoint (or an ensemble) on a data set split."""

from __future__ import annotations

import argparse
import logging

from .common import add_detection_options, detection_options

log = logging.getLogger("ferkit")

NAME = "evaluate"
HELP = "Evaluate a checkpoint on a data set split: report, confusion matrix, TTA."
EXAMPLES = """examples:
  ferkit evaluate runs/default/best.pt --data ../shared/data/fer2013/fer2013.csv.gz
  ferkit evaluate src/ferkit/weights/default.pt --data fer2013.csv --split PublicTest --tta --out reports/
  ferkit evaluate runs/cae/subject/cnn_cae_ck_fold0/best.pt --data ../shared/data/ckplus48 --split test
  ferkit evaluate checkpoints/se_cnn_fer2013_s*.pt --data fer2013.csv.gz   # three seeds: each, mean +- sd, ensemble
  ferkit evaluate checkpoints/plain_cnn_fer2013_s0.pt --data fer2013.csv.gz --gradcam --out cams/   # + gradcam.png
  ferkit evaluate src/ferkit/weights/default.pt --data ../shared/data/ckplus48 --record src/ferkit/weights/default.json
      # the headline figures (and this command) into the model's record, as its "ckplus48" block
  ferkit evaluate src/ferkit/weights/default.pt --data kdef_photos/ --detect   # <class>/<photos>, uncropped:
      # each photo's largest face found and cut as ferkit predict does; photos without a face count as wrong
  ferkit evaluate src/ferkit/weights/default.pt --data fer2013.csv.gz --slices --out reports/
      # + accuracy by the faces' brightness, contrast, sharpness, turn and tilt: slices.json, slices.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit evaluate``."""
    parser.add_argument("checkpoint", nargs="+",
                        help="a checkpoint or ONNX file; several: their ensemble (the mean of their probabilities)")
    parser.add_argument("--data", required=True, help="FER2013 CSV, or a folder tree <root>/<class>/<images>")
    parser.add_argument("--format", default="", help="fer2013 | ferplus | folder | kdef (default: from the path)")
    parser.add_argument("--ferplus", default="", help="fer2013new.csv, for --format ferplus")
    parser.add_argument("--split", default="PrivateTest",
                        help="a FER2013 Usage split (default PrivateTest), or train/val/test: the split the "
                             "checkpoint's own config makes (e.g. its k-fold test fold); several joined with + "
                             "(PublicTest+PrivateTest); data without splits: all")
    parser.add_argument("--tta", action="store_true", help="also report flip and ten-crop test-time augmentation")
    parser.add_argument("--rounds", type=int, default=0, help="also run K rounds of --round-size random images")
    parser.add_argument("--round-size", type=int, default=100)
    parser.add_argument("--out", default="",
                        help="folder for report.txt/json, confusion PNGs, rounds.json, an ensemble's members.json")
    parser.add_argument("--cache-dir", default="", help="cache parsed CSVs here")
    parser.add_argument("--gradcam", action="store_true",
                        help="also write --out/gradcam.png: one face per emotion (the first one the model gets "
                             "right) with the Grad-CAM of its prediction; one PyTorch checkpoint only")
    parser.add_argument("--record", default="",
                        help="also write each view's accuracy (95%% interval), macro-F1, lowest recall and this "
                             "command into this JSON record (created if missing; other keys kept)")
    parser.add_argument("--record-key", default="",
                        help="the record's key for this evaluation (default: the split in lower case, e.g. "
                             "privatetest, or the data folder's name, e.g. ckplus48)")
    parser.add_argument("--record-note", default="", help="a sentence kept in the record's block (e.g. the protocol)")
    parser.add_argument("--detect", action="store_true",
                        help="--data is a folder of uncropped photos: find each photo's largest face with the face "
                             "detector and classify it, as ferkit predict does; also reports the end-to-end "
                             "accuracy, where a photo without a face counts as wrong")
    add_detection_options(parser)  # used with --detect
    parser.add_argument("--slices", action="store_true",
                        help="also report the plain view's accuracy by the faces' brightness, contrast, sharpness, "
                             "turn and tilt (each measure's quarters; the pose from the face detector's landmarks), "
                             "into --out/slices.json and slices.png and the --record")
    parser.add_argument("--predictions", action="store_true",
                        help="also write --out/<view>/predictions.csv: each image's source (file or row), label, "
                             "prediction, confidence and class probabilities, for error analysis")


def evaluation_data(args: argparse.Namespace, info):
    """The faces to evaluate: a named Usage split, the checkpoint's own train/val/test split, or all."""
    from dataclasses import replace
    from pathlib import Path

    import numpy as np

    from ..config import DataConfig, config_from_dict
    from ..data.sources import load_splits, read_source
    from ..errors import FerkitError

    fmt = args.format or ("folder" if Path(args.data).is_dir() else "ferplus" if args.ferplus else "fer2013")
    given = {"format": fmt, "path": args.data, "ferplus_path": args.ferplus, "cache_dir": args.cache_dir}
    if args.split in ("train", "val", "test"):  # re-create the split the checkpoint was trained with
        stored = config_from_dict(info.config).data if info.config else DataConfig()
        if info.config and not args.format and not Path(args.data).is_dir():  # e.g. FER+ from the FER2013 CSV
            given = {**given, "format": stored.format, "ferplus_path": args.ferplus or stored.ferplus_path}
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
    from ..evaluation.model_size import count_parameters
    from ..inference.backends import OnnxModule, load_classifier

    model, info = load_classifier(path)
    what = "ONNX (onnxruntime)" if isinstance(model, OnnxModule) else f"{count_parameters(model):,} parameters"
    return model, info, what


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..evaluation import evaluate_model, evaluate_with_tta, plot_split_gradcam, random_rounds, size_on_disk_mb
    from ..inference.tables import write_table
    from ..io import atomic_write_text
    from ..training.store import existing_run_file

    paths = [str(existing_run_file(path)) for path in args.checkpoint]  # runs/... is in the run store
    loaded = [_load_for_evaluation(path) for path in paths]
    model, info, what = loaded[0]
    _check_request(args, loaded)
    detected = _detected_photos(args, info) if args.detect else None
    data, where = (detected.faces, detected.describe(args.data)) if detected else evaluation_data(args, info)
    members: dict = {}
    if len(loaded) == 1:
        reports = evaluate_with_tta(model, info, data) if args.tta else {"plain": evaluate_model(model, info, data)}
        title = info.name
        print(f"{paths[0]}: {info.name}, {what}, "  # noqa: T201
              f"{size_on_disk_mb(paths[0]):.2f} MB on disk; {len(data)} images from {where}")
    else:
        reports, title, members = _ensemble_reports(paths, loaded, data, where, args.tta)
    for name, report in reports.items():
        if detected:
            detected.add_to(report)
        print(f"\n== {name} ==\n{report.to_text()}")  # noqa: T201
    if detected and detected.no_face:
        print(f"\nno face found in {len(detected.no_face)} photo(s): {', '.join(detected.no_face)}")  # noqa: T201
    slices = _report_slices(args, data, reports["plain"], f"{title} on {where}") if args.slices else None
    rounds = None
    if args.rounds:
        plain = reports["plain"]
        rounds = random_rounds(plain.y_true, plain.y_pred, rounds=args.rounds, n=args.round_size)
        print(f"\n== {args.rounds} rounds of {args.round_size} random images ==\n{rounds.to_text()}")  # noqa: T201
    if args.out:
        for name, report in reports.items():
            report.save(Path(args.out) / name, title=f"{title} on {where} ({name})")
            if args.predictions:
                write_table(Path(args.out) / name / "predictions.csv", report.prediction_rows(data.sources))
        extras = {"members.json": members or None, "rounds.json": rounds.to_dict() if rounds else None}
        for file_name, record in extras.items():
            if record:
                atomic_write_text(Path(args.out) / file_name, json.dumps(record, indent=2) + "\n")
        if args.gradcam:
            cams = plot_split_gradcam(model, info, data.images, reports["plain"], Path(args.out) / "gradcam.png",
                                      title=f"{Path(paths[0]).stem}: Grad-CAM, one face per emotion "
                                            f"({where.replace(str(args.data), Path(args.data).name)})")
            print(f"Grad-CAM grid: {cams or 'not written (see the warning)'}")  # noqa: T201
        log.info("reports written to %s", args.out)
    if args.record:
        _write_record(args, reports, where, slices)
    return 0


def _report_slices(args: argparse.Namespace, data, report, heading: str) -> list:
    """The plain view's accuracy by the condition of the faces: printed, and with ``--out`` into slices.json and
    slices.png."""
    import json
    from pathlib import Path

    from ..evaluation.slices import face_conditions, plot_slices, slices_by_condition, slices_json, slices_text
    from ..io import atomic_write_text

    log.info("measuring the condition of %d faces (the pose with the face detector)", len(data))
    slices = slices_by_condition(report.y_true, report.y_pred, face_conditions(data.images))
    print(f"\n== plain, by the condition of the faces ==\n{slices_text(slices, report.accuracy)}")  # noqa: T201
    if args.out:
        table = slices_json(slices, report.accuracy)
        atomic_write_text(Path(args.out) / "slices.json", json.dumps(table, indent=2) + "\n")
        plot_slices(slices, report.accuracy, Path(args.out) / "slices.png",
                    title=f"{heading}: accuracy by the condition of the faces (plain)")
    return slices


def _write_record(args: argparse.Namespace, reports: dict, where: str, slices: list | None) -> None:
    """Put this evaluation's headline figures and command into ``--record`` under ``--record-key``."""
    import shlex

    from ..evaluation.record import record_key, score_block, write_scores
    from ..evaluation.slices import slice_rows

    from_split = not args.detect and where != str(args.data)  # evaluation_data names the split it took
    key = args.record_key or record_key(args.split, args.data, from_split)
    options = [("--data", args.data), ("--format", args.format), ("--ferplus", args.ferplus),
               ("--split", args.split if from_split else "")]
    command = shlex.join(["ferkit", "evaluate", *args.checkpoint,
                          *[part for option, value in options if value for part in (option, value)],
                          *(_detection_flags(args) if args.detect else [])])
    command += " --tta" if args.tta else ""
    command += " --slices" if slices else ""
    block = score_block(reports, data=where, command=command) | ({"note": args.record_note} if args.record_note else {})
    if slices:
        block["slices"] = slice_rows(slices)
    write_scores(args.record, key, block)
    print(f"record: {args.record} [{key}]")  # noqa: T201


def _detection_flags(args: argparse.Namespace) -> list[str]:
    """``--detect`` and the detection options that differ from their defaults, for the record's command."""
    from ..inference.options import Options

    chosen, default = detection_options(args), Options().to_dict()
    flags = ["--detect"]
    for name, value in chosen.items():
        if value != default[name]:
            flag = "--" + name.replace("_", "-")
            flags += [flag] if value is True else [flag, str(value)]
    return flags


def _detected_photos(args: argparse.Namespace, info):
    """Each photo's largest face under the ``--data`` folder, found and cut as ``ferkit predict`` does."""
    from pathlib import Path

    from ..errors import FerkitError
    from ..inference.end_to_end import detect_photos
    from ..inference.options import Options

    if not Path(args.data).is_dir() or args.format not in ("", "folder"):
        raise FerkitError(f"--detect reads a folder of photos, <root>/<class>/<photos>; {args.data} is not one")
    options = Options(**detection_options(args))
    return detect_photos(args.data, options, info.preprocessing.size, contempt="contempt" in info.labels)


def _check_request(args: argparse.Namespace, loaded: list) -> None:
    """Refuse a request that cannot be carried out before any work: options that need another, an unwritable
    ``--out`` or ``--record``."""
    from ..errors import FerkitError
    from ..evaluation.record import read_record
    from ..io import output_folder

    if not args.detect and len(_detection_flags(args)) > 1:
        raise FerkitError(f"{' '.join(_detection_flags(args)[1:])}: detection options apply with --detect only")
    if args.gradcam:
        _check_gradcam_request(args, loaded)
    if args.predictions and not args.out:
        raise FerkitError("--predictions writes predictions.csv into the --out folder: give --out")
    if args.out:
        output_folder(args.out, "--out folder")
    if args.record:
        read_record(args.record)  # refused before the work, not after it


def _check_gradcam_request(args: argparse.Namespace, loaded: list) -> None:
    """``--gradcam`` needs ``--out`` and one PyTorch checkpoint (an ensemble or an ONNX file has no layer to read)."""
    from ..errors import FerkitError
    from ..inference.backends import OnnxModule

    if not args.out:
        raise FerkitError("--gradcam writes gradcam.png into the --out folder: give --out")
    if len(loaded) > 1:
        raise FerkitError(f"--gradcam explains one model; {len(loaded)} checkpoints were given")
    if isinstance(loaded[0][0], OnnxModule):
        raise FerkitError(f"{args.checkpoint[0]}: --gradcam needs a PyTorch checkpoint (.pt), not an ONNX file")


def _ensemble_reports(paths: list[str], loaded: list, data, where: str, tta: bool) -> tuple[dict, str, dict]:
    """An ensemble's reports (the mean of the members' probabilities), title and members' record; prints each
    member's own accuracy and their mean and spread (e.g. the seeds of one recipe)."""
    import numpy as np

    from ..evaluation import TTA_MODES, TTA_REPORT_NAMES, evaluate_ensemble, size_on_disk_mb
    from ..evaluation.record import headline
    from ..training.store import as_runs_path

    members, reports, own = [(m, i) for m, i, _ in loaded], {}, {}
    for mode in TTA_MODES if tta else ("none",):
        name = TTA_REPORT_NAMES[mode]
        reports[name], own[name] = evaluate_ensemble(members, data, mode, names=paths)
    alone = [report.accuracy for report in own["plain"]]
    for path, (_, member_info, member_what), accuracy in zip(paths, loaded, alone, strict=True):
        print(f"{path}: {member_info.name}, {member_what}, "  # noqa: T201
              f"{size_on_disk_mb(path):.2f} MB on disk; plain accuracy alone {accuracy:.4f}")
    mean, sd = float(np.mean(alone)), float(np.std(alone, ddof=1))
    print(f"members alone: mean {mean:.4f} +- {sd:.4f} (sample sd over {len(alone)})")  # noqa: T201
    title = f"ensemble of {len(paths)} models"
    print(f"{title} (the mean of their probabilities); {len(data)} images from {where}")  # noqa: T201
    figures = [{view: headline(own[view][k]) for view in own} for k in range(len(paths))]
    record = {"members": [{"path": as_runs_path(path), "name": member_info.name, **member_figures}
                          for path, (_, member_info, _), member_figures in zip(paths, loaded, figures, strict=True)],
              "plain_accuracy_mean": mean, "plain_accuracy_sd": sd}
    return reports, title, record
