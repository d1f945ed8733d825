"""Experiment settings as dataclasses: defaults < TOML file < ``key=value`` overrides; unknown keys raise."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import tomllib

from .data.augment import UNIT_RANGE, Augment
from .errors import FerkitError
from .training.store import in_store

#: The values each enumerated setting takes; checked when a config is loaded, before any data is read.
DATA_FORMATS = ("fer2013", "ferplus", "folder", "kdef")
TASKS = ("classify", "reconstruct", "contrast")
#: Tasks that pre-train a body without labels: no accuracy to monitor, weights kept as trained
PRETRAIN_TASKS = ("reconstruct", "contrast")
CHOICES = {
    "data.format": DATA_FORMATS,
    "train.task": TASKS,
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.scheduler": ("none", "plateau", "onecycle", "cosine"),
    "train.mode": ("min", "max"),
    "train.frozen_bn": ("train", "eval"),
}


@dataclass
class DataConfig:
    """Where the faces come from and how they are split (see ``ferkit.data.sources``)."""

    format: str = "fer2013"  # fer2013 | ferplus | folder | kdef
    path: str = ""
    ferplus_path: str = ""  # fer2013new.csv when format = "ferplus"
    cache_dir: str = ""
    train_split: str = "Training"
    val_split: str = "PublicTest"
    test_split: str = "PrivateTest"
    train_limit: int = 0  # keep only the first N training images (0 = all), stratified
    val_ratio: float = 0.1  # for formats without official splits
    test_ratio: float = 0.2
    split_by: str = "random"  # random | subject (formats with subject ids)
    folds: int = 0  # k folds (0 = off): ratio splits test on fold ``fold``; official ones leave it out of training
    fold: int = 0
    contempt: bool = False
    soft_labels: bool = False
    ferplus_soft: float = 0.0  # fer2013: targets (1-w)*one-hot + w*FER+ votes (needs ferplus_path, soft_labels)
    split_seed: int = 0
    ignore_splits: bool = False  # ignore a format's own splits (FER2013 Usage): ratio-split all rows instead


@dataclass
class ModelConfig:
    name: str = "ferkit_cnn"
    args: dict[str, Any] = field(default_factory=dict)
    mean: float = 0.0
    std: float = 1.0
    input_size: int = 48
    channels: int = 1
    init_from: str = ""  # checkpoint whose matching weights initialise the model (e.g. a CAE's encoder)
    init_prefix: str = ""  # only weights whose names start with this (e.g. "encoder.")
    pretrained: str = ""  # your own ImageNet weights (torchvision .pth, Keras ResNet50 .h5); see docs/transfer.md
    pretrained_strict: bool = True  # false: load what fits and log the rest


@dataclass
class TrainConfig:
    task: str = "classify"  # classify | reconstruct (autoencoder pre-training) | contrast (SimCLR pre-training)
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "plateau"  # none | plateau | onecycle | cosine
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    min_lr: float = 1e-6
    onecycle_pct_start: float = 0.3
    monitor: str = "val_acc"
    mode: str = "max"
    early_stopping_patience: int = 0  # 0 = off
    label_smoothing: float = 0.0
    freeze_body_epochs: int = 0
    frozen_bn: str = "train"  # a frozen body's batch norm: "train" (fastai's: batch statistics) or "eval" (running)
    # train the head on the frozen body's features, computed once per split (docs/transfer.md); used only where
    # that is exact (body frozen all run, no batch norm or dropout in it, flip-only augmentation), else logged why
    cache_frozen_features: bool = False
    body_lr_factor: float = 1.0  # discriminative LRs: the first layers get lr * this, the head lr (geometric)
    bf16: bool = True
    channels_last: bool = True
    threads: int = 0  # 0 = torch's default
    seed: int = 0
    eval_batch_size: int = 512
    # Where and how long this invocation runs; on --resume these come from the resuming command, not last.pt
    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:N; see docs/gpu.md
    compile: bool = False  # torch.compile the model for training (worth it on a GPU; slow to start)
    time_limit_s: float = 0.0  # stop after the epoch in which this many seconds have passed (0 = off); --resume goes on
    # Training recipe (docs/recipe.md); each is off by default and then draws nothing
    mixup: float = 0.0  # mixup Beta(alpha, alpha) alpha (0 = off; e.g. 0.2)
    cutmix: float = 0.0  # cutmix Beta(alpha, alpha) alpha (0 = off; e.g. 1.0); with mixup, each batch picks one
    mix_prob: float = 1.0  # probability that a batch is mixed when mixup or cutmix is on
    ema_decay: float = 0.0  # EMA of the weights (0 = off; e.g. 0.999): validation, best.pt and test use the EMA
    sam_rho: float = 0.0  # sharpness-aware minimisation radius (0 = off; e.g. 0.05): two passes a step
    # teacher checkpoints for knowledge distillation (several: an ensemble); on the command line a TOML list,
    # quoted for the shell: 'train.teacher=["runs/a/best.pt", "runs/b/best.pt"]' ([] = off)
    teacher: list[str] = field(default_factory=list)
    # instead of teacher checkpoints: their probabilities cached once by `ferkit teachers --out FILE` (FILE here)
    teacher_cache: str = ""
    kd_alpha: float = 0.5  # loss = (1 - kd_alpha) * CE + kd_alpha * T^2 * KL(teacher || student)
    kd_temperature: float = 4.0  # T, softening both the teacher's and the student's probabilities
    contrast_temperature: float = 0.2  # train.task = "contrast": the NT-Xent temperature of cosine similarities

    def check(self) -> None:
        """Raise a FerkitError naming the first recipe setting out of its range."""
        ranges = {
            "mixup": (self.mixup >= 0, ">= 0 (0 = off)"),
            "cutmix": (self.cutmix >= 0, ">= 0 (0 = off)"),
            "mix_prob": (0 <= self.mix_prob <= 1, "between 0 and 1"),
            "ema_decay": (0 <= self.ema_decay < 1, ">= 0 and < 1 (0 = off, e.g. 0.999)"),
            "sam_rho": (self.sam_rho >= 0, ">= 0 (0 = off, e.g. 0.05)"),
            "kd_alpha": (0 <= self.kd_alpha <= 1, "between 0 and 1"),
            "kd_temperature": (self.kd_temperature > 0, "> 0"),
            "contrast_temperature": (self.contrast_temperature > 0, "> 0"),
        }
        for key, (ok, want) in ranges.items():
            if not ok:  # also catches NaN
                raise FerkitError(f"train.{key} must be {want}, got {getattr(self, key)!r}")
        if not all(isinstance(path, str) and path for path in self.teacher):
            raise FerkitError(f"train.teacher must be a list of checkpoint paths, got {self.teacher!r}")
        if self.teacher_cache and (self.teacher or self.mixup > 0 or self.cutmix > 0):
            raise FerkitError("train.teacher_cache holds each Training face's teacher probabilities: it cannot be "
                              "combined with train.teacher or with mixup/cutmix (mixed faces have no cached targets)")
        recipe = {"teacher": bool(self.teacher), "teacher_cache": bool(self.teacher_cache), "mixup": self.mixup > 0,
                  "cutmix": self.cutmix > 0, "cache_frozen_features": self.cache_frozen_features,
                  "sam_rho": self.sam_rho > 0}
        for key, used in recipe.items():
            if used and self.task != "classify":
                raise FerkitError(f"train.{key} is only for train.task = 'classify', not {self.task!r}")


@dataclass
class Config:
    name: str = "experiment"
    out_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: Augment = field(default_factory=Augment)  # no augmentation unless the config asks
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def run_dir(self) -> Path:
        """``out_dir/name``; an ``out_dir`` under ``runs/`` is in the run store (:mod:`ferkit.training.store`)."""
        return in_store(self.out_dir) / self.name

    def to_dict(self) -> dict:
        return asdict(self)


def _valid(obj) -> list[str]:
    return [f.name for f in fields(obj)]


def _set(obj, key: str, value: Any, where: str, prefix: str = "") -> None:
    """Set dotted ``key`` on nested dataclasses, checking names and types."""
    head, _, rest = key.partition(".")
    if head not in _valid(obj):
        valid = ", ".join(prefix + name for name in _valid(obj))
        raise FerkitError(f"{where}: unknown key {prefix + key!r}; valid keys: {valid}")
    current = getattr(obj, head)
    if is_dataclass(current):
        if rest:
            return _set(current, rest, value, where, f"{prefix}{head}.")
        if not isinstance(value, dict):
            raise FerkitError(f"{where}: {prefix + head!r} is a section, not a value")
        for k, v in value.items():
            _set(current, k, v, where, f"{prefix}{head}.")
        return None
    if isinstance(current, dict):
        if rest:
            current[rest] = value
        elif isinstance(value, dict):
            current.update(value)
        else:
            raise FerkitError(f"{where}: {head!r} is a table of values")
        return None
    if rest:
        raise FerkitError(f"{where}: {head!r} is a value, not a section")
    setattr(obj, head, _coerce(value, current, key, where))
    return None


def _coerce(value: Any, current: Any, key: str, where: str) -> Any:
    kind = type(current)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FerkitError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    return value


def _parse_value(text: str) -> Any:
    """Read a command-line value as TOML (numbers, booleans, lists, quoted strings), else a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the TOML file at ``path``, then ``key=value`` overrides (dotted keys)."""
    config = Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FerkitError(f"config file not found: {path}")
        try:
            table = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise FerkitError(f"{path}: not valid TOML ({exc})") from None
        for key, value in table.items():
            _set(config, key, value, str(path))
        if "name" not in table:
            config.name = path.stem
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise FerkitError(f"override {item!r} is not of the form key=value (e.g. train.lr=0.001)")
        _set(config, key.strip(), _parse_value(text.strip()), "command line")
    check_config(config)
    return config


def check_config(config: Config) -> None:
    """Refuse an enumerated setting outside its values (naming them) or a recipe setting out of range."""
    for key, valid in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in valid:
            raise FerkitError(f"{key} = {value!r} is not one of: {', '.join(valid)}")
    _check_augment(config)
    config.train.check()


def _check_augment(config: Config) -> None:
    """Refuse an augmentation setting out of its range, or one that needs inputs in [0, 1] when they are not."""
    config.augment.check()
    model = config.model
    if model.mean == 0.0 and model.std == 1.0:
        return
    for name in UNIT_RANGE:
        if getattr(config.augment, name) > 0:
            raise FerkitError(f"augment.{name} works on inputs in [0, 1] (model.mean = 0, model.std = 1), but "
                              f"model.mean = {model.mean!r}, model.std = {model.std!r}: set augment.{name} = 0 "
                              "or train on [0, 1] inputs")


def config_from_dict(table: dict) -> Config:
    """Rebuild a Config from ``Config.to_dict()`` output (e.g. one stored in a checkpoint)."""
    config = Config()
    for key, value in table.items():
        _set(config, key, value, "stored config")
    check_config(config)
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def to_toml(config: Config) -> str:
    """The resolved config as TOML (loadable by :func:`load_config`)."""
    table = config.to_dict()
    lines = [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for section, values in table.items():
        if not isinstance(values, dict):
            continue
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
        for sub, inner in values.items():
            if isinstance(inner, dict):
                lines += ["", f"[{section}.{sub}]"]
                lines += [f"{k} = {_toml_value(v)}" for k, v in inner.items()]
    return "\n".join(lines) + "\n"
