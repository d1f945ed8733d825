"""Evaluation protocols from the literature, applied to a fixed set of predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import label_arrays


@dataclass(frozen=True)
class RoundsResult:
    """Per-round accuracies of :func:`random_rounds` with their mean and sample SD (ddof=1)."""

    accuracies: tuple[float, ...]
    mean: float
    sd: float
    n: int
    seed: int

    @property
    def rounds(self) -> int:
        return len(self.accuracies)

    def to_text(self, digits: int = 4) -> str:
        """A two-column table (round, accuracy) followed by the mean and SD."""
        lines = [f"{'round':>5}  {'accuracy':>10}"]
        lines += [f"{i:>5}  {acc:>10.{digits}f}" for i, acc in enumerate(self.accuracies, 1)]
        lines.append(f"{'mean':>5}  {self.mean:>10.{digits}f}")
        lines.append(f"{'sd':>5}  {self.sd:>10.{digits}f}")
        lines.append(f"({self.rounds} rounds of {self.n} random test images, seed {self.seed})")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"accuracies": list(self.accuracies), "mean": self.mean, "sd": self.sd,
                "n": self.n, "rounds": self.rounds, "seed": self.seed}


def random_rounds(y_true, y_pred, rounds: int = 15, n: int = 100, seed: int = 0) -> RoundsResult:
    """Accuracy on ``rounds`` random draws of ``n`` test images ("15 rounds of 100 random images").

    Within a round the ``n`` rows are drawn without replacement; rounds are independent draws.
    """
    t, p = label_arrays(y_true, y_pred)
    if not 0 < n <= t.size:
        raise ValueError(f"n must lie in 1..{t.size} (the number of predictions), got {n}")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    correct = t == p
    rng = np.random.default_rng(seed)
    accs = np.array([correct[rng.choice(t.size, size=n, replace=False)].mean() for _ in range(rounds)])
    sd = float(accs.std(ddof=1)) if rounds > 1 else 0.0
    return RoundsResult(tuple(accs.tolist()), float(accs.mean()), sd, n, seed)
