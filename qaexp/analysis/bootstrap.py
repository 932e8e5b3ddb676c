"""The paired bootstrap over questions: is run B's F1 really different from run A's on the same questions?

Each resample draws the questions with replacement (the same draw for both runs, hence paired) and takes the
mean per-question F1 difference B - A. The 2.5th and 97.5th percentiles of those means are the 95% interval;
the share of resamples where B's mean is higher is how often B beats A.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_SAMPLES = 1000
_ROWS_PER_BLOCK = 200  # resamples drawn at once: bounds memory at 200 x questions indices


@dataclass(frozen=True)
class BootstrapResult:
    difference: float  # mean F1 of B minus A, x 100, on all questions
    low: float
    high: float
    b_wins: float  # share of resamples in which B's mean F1 is above A's
    samples: int
    seed: int
    questions: int


def paired_bootstrap(f1_a, f1_b, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> BootstrapResult:
    """Per-question F1 in [0, 1] of runs A and B, aligned on the same questions."""
    a, b = np.asarray(f1_a, dtype=float), np.asarray(f1_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError("paired_bootstrap needs two equally long, non-empty lists of per-question scores")
    if samples < 1:
        raise ValueError("samples must be >= 1")
    difference = b - a
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for lo in range(0, samples, _ROWS_PER_BLOCK):
        rows = min(_ROWS_PER_BLOCK, samples - lo)
        means[lo:lo + rows] = difference[rng.integers(0, len(a), size=(rows, len(a)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return BootstrapResult(100.0 * difference.mean(), 100.0 * low, 100.0 * high, float((means > 0).mean()),
                           samples, seed, len(a))
