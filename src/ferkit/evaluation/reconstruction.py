"""Autoencoder outputs beside their inputs, as a PNG grid."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ..data.preprocessing import Preprocessing
from ..io import atomic_savefig


@torch.inference_mode()
def plot_reconstructions(model: nn.Module, images_uint8: np.ndarray, preprocessing: Preprocessing,
                         path: str | os.PathLike, title: str = "input (top) vs reconstruction (bottom)") -> None:
    """Two rows: the faces and the model's reconstructions of them (model in eval mode)."""
    from matplotlib.figure import Figure

    model.eval()
    x = preprocessing(images_uint8)
    out = model(x).float().clamp(0, 1)
    n = len(x)
    fig = Figure(figsize=(1.2 * n, 2.8), dpi=100)
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        for row, img in enumerate((x[i, 0], out[i, 0])):
            axes[row, i].imshow(img.numpy(), cmap="gray", vmin=0, vmax=1)
            axes[row, i].axis("off")
    fig.suptitle(title)
    atomic_savefig(fig, path, bbox_inches="tight")
