"""Load the user's own ImageNet weights into ferkit's ResNet / VGG: torchvision ``.pth`` files, Keras ResNet50 ``.h5``.

Nothing is ever downloaded. :func:`load_pretrained` is strict by default: every weight of the model must come
from the file with its shape, except

* the first convolution, adapted to the model's input channels (3 -> 1 sums the RGB filters, so a gray face
  gives exactly what the RGB model gives on the face repeated in three channels; 1 -> 3 repeats and divides);
* name prefixes the model declares in ``pretrained_exempt()`` (a head for another class count or of another
  kind, the small stem's 3x3 ``conv1``): loaded where the shapes fit, otherwise left as built and reported;
* ``num_batches_tracked`` counters, which old files lack.

Anything else missing, unexpected or mis-shaped raises a :class:`FerkitError` listing a few of each with
counts; ``strict=False`` loads what fits and logs the rest.

Keras: the ``keras.applications`` ResNet50 weights (``conv2_block1_1_conv`` names, or the older
``res2a_branch2a`` ones), saved by Keras 2 as HDF5 (needs ``h5py``), map exactly onto ``resnet50`` built with
``stride_in_1x1=True`` (Keras' ResNet is v1: strides on the 1x1 convs). Keras' convolutions have biases and its
batch norms another epsilon; both fold into the batch-norm statistics, exactly. Its first conv expects BGR
(Caffe preprocessing: 0-255 minus the mean pixel), so its filters are flipped to RGB. Keras 3
``.weights.h5`` files (``layers/<name>/vars``) are refused with a message.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import FerkitError
from ..io import existing_file
from .checkpoint import load_weights_only

log = logging.getLogger(__name__)
TORCH_BN_EPS = 1e-5
KERAS_SUFFIXES = (".h5", ".hdf5")
_SHOW = 5  # keys listed per kind of problem


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: loaded keys, adapted ones (how) and skipped ones (why)."""

    loaded: list[str] = field(default_factory=list)
    adapted: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # only with strict=False

    def summary(self) -> str:
        lines = [f"{len(self.loaded)} tensors loaded"]
        lines += [f"adapted {k}: {how}" for k, how in self.adapted.items()]
        lines += [f"skipped {k}: {why}" for k, why in self.skipped.items()]
        return "; ".join(lines + self.problems)


def _strip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel's ``module.`` and torch.compile's ``_orig_mod.`` prefixes."""
    out = {}
    for key, value in state.items():
        while key.startswith(("module.", "_orig_mod.")):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A torchvision-named state dict from a ``.pth``/``.pt`` file (plain, or under ``state_dict``/``model``;
    ferkit checkpoints too) or a Keras ResNet50 ``.h5`` file."""
    path = existing_file(path, "pretrained weights")
    if path.suffix.lower() in KERAS_SUFFIXES:
        return read_keras_resnet50(path)
    payload = load_weights_only(path, "weights file")
    for key in ("state_dict", "model"):
        if isinstance(payload, Mapping) and isinstance(payload.get(key), Mapping):
            payload = payload[key]
            break
    if not isinstance(payload, Mapping) or not payload or not all(torch.is_tensor(v) for v in payload.values()):
        raise FerkitError(f"{path}: no state dict inside (expected name -> tensor, or one under 'state_dict' "
                          "or 'model')")
    return _strip(payload)


def first_conv_key(model: nn.Module) -> str | None:
    """The name of the first convolution's weight (the one that sees the input channels)."""
    return next((f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def adapt_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """A conv weight ``(out, c, kh, kw)`` for ``channels`` inputs: summed to 1, or a 1-channel one repeated / n."""
    if channels == 1:
        return weight.sum(1, keepdim=True)
    if weight.shape[1] == 1:
        return weight.repeat(1, channels, 1, 1) / channels
    raise FerkitError(f"cannot adapt a first convolution from {weight.shape[1]} to {channels} input channels")


def _listing(kind: str, items: list[str]) -> str:
    more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return f"  {len(items)} {kind}: {', '.join(items[:_SHOW])}{more}"


def load_pretrained(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], *,
                    strict: bool = True, adapt_first_conv: bool = True) -> LoadReport:
    """Copy ``source``'s weights (a path, see :func:`read_state_dict`, or a state dict) into ``model``.

    Strict by default (see the module doc for what may differ); raises :class:`FerkitError` naming the
    missing, unexpected and mis-shaped keys. Returns a :class:`LoadReport`, also logged.
    """
    where = str(source) if not isinstance(source, Mapping) else "state dict"
    src = _strip(source) if isinstance(source, Mapping) else read_state_dict(source)
    own = model.state_dict()
    report = LoadReport()
    if adapt_first_conv:
        _adapt_first_conv(first_conv_key(model), src, own, report)
    problems = _mismatches(own, src, model.pretrained_exempt() if hasattr(model, "pretrained_exempt") else {},
                           report)
    fits = {k: src[k].to(own[k].dtype) for k in own if k in src and src[k].shape == own[k].shape}
    name = type(model).__name__
    if problems and strict:
        counts = ", ".join(f"{len(items)} {kind.split(' ')[0]}" for kind, items in problems.items())
        raise FerkitError(f"{where}: the weights do not fit this {name} ({counts} keys; {len(fits)} fit):\n"
                          + _listings(problems) + "\nis it the same architecture? strict=False "
                          "(model.pretrained_strict = false) loads what fits")
    if not fits:
        raise FerkitError(f"{where}: not one weight fits this {name}:\n" + _listings(problems))
    model.load_state_dict(fits, strict=False)
    report.loaded, report.problems = sorted(fits), [p.strip() for p in _listings(problems).splitlines() if p]
    if problems:
        log.warning("%s: loaded %d tensors, the rest left as built:\n%s", where, len(fits), _listings(problems))
    log.info("pretrained weights from %s: %s", where, report.summary())
    if isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(KERAS_SUFFIXES) \
            and getattr(model, "stride_in_1x1", None) is False:
        log.warning("%s: Keras' ResNet50 strides on the 1x1 convs; build the model with stride_in_1x1=True for "
                    "the function these weights were trained as", where)
    return report


def _adapt_first_conv(first: str, src: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor],
                      report: LoadReport) -> None:
    """RGB filters of the file's first conv summed to one grey channel (or repeated), in place in ``src``."""
    if first not in src or first not in own:
        return
    s, o = src[first], own[first]
    if s.ndim == 4 and s.shape[1] != o.shape[1] and (s.shape[0], *s.shape[2:]) == (o.shape[0], *o.shape[2:]):
        src[first] = adapt_channels(s.float(), o.shape[1])
        how = "summed over the RGB filters" if o.shape[1] == 1 else "repeated over the channels"
        report.adapted[first] = f"{s.shape[1]} -> {o.shape[1]} input channels ({how})"


def _mismatches(own: Mapping[str, torch.Tensor], src: Mapping[str, torch.Tensor], exempt: Mapping[str, str],
                report: LoadReport) -> dict[str, list[str]]:
    """The missing, unexpected and mis-shaped keys, by kind (only kinds that have some); keys the model exempts
    (``pretrained_exempt``: prefix -> reason, e.g. a new head) go to ``report.skipped`` instead."""
    def why(key: str) -> str | None:
        return next((reason for prefix, reason in exempt.items() if key.startswith(prefix)), None)

    missing, unexpected, misshaped = [], [], []
    for key in own:
        if key not in src:
            if key.endswith("num_batches_tracked"):
                continue
            if why(key):
                report.skipped[key] = f"not in the file ({why(key)})"
            else:
                missing.append(key)
        elif src[key].shape != own[key].shape:
            text = f"{key} file {tuple(src[key].shape)} vs model {tuple(own[key].shape)}"
            if why(key):
                report.skipped[key] = f"{text[len(key) + 1:]} ({why(key)})"
            else:
                misshaped.append(text)
    for key in src:
        if key not in own:
            if why(key):
                report.skipped[key] = f"not in this model ({why(key)})"
            else:
                unexpected.append(key)
    kinds = {"missing (in the model, not in the file)": missing,
             "unexpected (in the file, not in the model)": unexpected, "mis-shaped": misshaped}
    return {kind: items for kind, items in kinds.items() if items}


def _listings(problems: Mapping[str, list[str]]) -> str:
    return "\n".join(_listing(kind, items) for kind, items in problems.items())


# --- Keras ResNet50 -----------------------------------------------------------------------------------------

_NEW = re.compile(r"conv(\d)_block(\d+)_(\d)_(conv|bn)$")
_OLD = re.compile(r"(res|bn)(\d)([a-z])_branch(1|2a|2b|2c)$")
KERAS_EPS = {"new": 1.001e-5, "old": 1e-3}  # keras.applications' resnet.py / the older resnet50.py


def _keras_target(name: str, scheme: str) -> tuple[str, str] | None:
    """``(torchvision prefix, conv|bn|dense)`` for a Keras layer name, or None for a layer without weights."""
    if scheme == "new":
        fixed = {"conv1_conv": ("conv1", "conv"), "conv1_bn": ("bn1", "bn"), "predictions": ("fc", "dense")}
        if name in fixed:
            return fixed[name]
        m = _NEW.match(name)
        if not m:
            return None
        stage, block, i, kind = int(m[1]), int(m[2]), int(m[3]), m[4]
        block_prefix = f"layer{stage - 1}.{block - 1}"
    else:
        fixed = {"conv1": ("conv1", "conv"), "bn_conv1": ("bn1", "bn"), "fc1000": ("fc", "dense")}
        if name in fixed:
            return fixed[name]
        m = _OLD.match(name)
        if not m:
            return None
        kind = "conv" if m[1] == "res" else "bn"
        stage, block, i = int(m[2]), ord(m[3]) - ord("a"), {"1": 0, "2a": 1, "2b": 2, "2c": 3}[m[4]]
        block_prefix = f"layer{stage - 1}.{block}"
    if i == 0:
        return f"{block_prefix}.downsample.{0 if kind == 'conv' else 1}", kind
    return f"{block_prefix}.{kind}{i}", kind


def fold_keras_bn(gamma, beta, mean, var, conv_bias, eps: float) -> dict[str, torch.Tensor]:
    """torch BN (eps 1e-5, bias-free conv before it) equal in eval mode to Keras' conv bias + BN (``eps``)."""
    t = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32)
         for k, v in (("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var))}
    if conv_bias is not None:
        t["running_mean"] = t["running_mean"] - torch.as_tensor(np.asarray(conv_bias), dtype=torch.float32)
    t["running_var"] = t["running_var"] + (eps - TORCH_BN_EPS)
    t["num_batches_tracked"] = torch.tensor(0)
    return t


def _keras_layers(path) -> dict[str, dict[str, np.ndarray]]:
    """``{layer name: {kernel|bias|gamma|...: array}}`` from a Keras 2 HDF5 weights or model file."""
    try:
        import h5py
    except ImportError:
        raise FerkitError(f"{path}: reading Keras .h5 weights needs h5py (pip install h5py)") from None
    layers: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        root = f.get("model_weights", f)
        if "layer_names" not in root.attrs and "layers" in root:
            raise FerkitError(f"{path}: a Keras 3 .weights.h5 file; save the model with Keras 2 (h5 format) or "
                              "convert it to a torchvision state dict")
        for name in root:
            arrays: dict[str, np.ndarray] = {}
            if isinstance(root[name], h5py.Group):
                root[name].visititems(lambda key, obj, arrays=arrays: arrays.__setitem__(
                    key.rsplit("/", 1)[-1].split(":")[0], np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
            if arrays:
                layers[name] = arrays
    return layers


def read_keras_resnet50(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A torchvision-named ResNet50 state dict from Keras' ResNet50 weights (see the module doc)."""
    layers = _keras_layers(path)
    scheme = "new" if "conv1_conv" in layers else "old" if "bn_conv1" in layers else None
    if scheme is None:
        raise FerkitError(f"{path}: not Keras ResNet50 weights (no conv1_conv or bn_conv1 layer among "
                          f"{sorted(layers)[:6]})")
    convs: dict[str, tuple[str, dict]] = {}
    state: dict[str, torch.Tensor] = {}
    unmapped = []
    for name, arrays in layers.items():
        target = _keras_target(name, scheme)
        if target is None:
            unmapped.append(name)
            continue
        prefix, kind = target
        if kind == "conv":
            weight = torch.as_tensor(arrays["kernel"], dtype=torch.float32).permute(3, 2, 0, 1)
            state[f"{prefix}.weight"] = weight.flip(1).contiguous() if prefix == "conv1" else weight.contiguous()
            bn_prefix = "bn1" if prefix == "conv1" else prefix.replace(".conv", ".bn").replace("downsample.0",
                                                                                                 "downsample.1")
            convs[bn_prefix] = (name, arrays)
        elif kind == "dense":
            state["fc.weight"] = torch.as_tensor(arrays["kernel"], dtype=torch.float32).t().contiguous()
            state["fc.bias"] = torch.as_tensor(arrays["bias"], dtype=torch.float32)
    for name, arrays in layers.items():
        target = _keras_target(name, scheme)
        if target is None or target[1] != "bn":
            continue
        conv = convs.get(target[0])
        folded = fold_keras_bn(arrays["gamma"], arrays["beta"], arrays["moving_mean"], arrays["moving_variance"],
                               None if conv is None else conv[1].get("bias"), KERAS_EPS[scheme])
        state.update({f"{target[0]}.{k}": v for k, v in folded.items()})
    if unmapped:
        log.warning("%s: %d Keras layer(s) with weights not mapped: %s", path, len(unmapped), unmapped[:_SHOW])
    return state
