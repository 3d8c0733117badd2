"""Small statistics used across analyses: paired bootstrap over problems, Cohen's kappa, Spearman's rho."""

from __future__ import annotations

import hashlib

import numpy as np


def aligned(a: dict[str, float], b: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-problem values of two models on the problems both were scored on (sorted by id)."""
    ids = sorted(set(a) & set(b))
    return np.array([a[i] for i in ids], dtype=float), np.array([b[i] for i in ids], dtype=float)


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices drawn with replacement; the same draws pair every model on a benchmark."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def scope_seed(seed: int, name: str) -> int:
    """A bootstrap seed of its own for one benchmark / domain / scope: draws do not depend on the others."""
    return seed * 1_000_003 + int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big")


def percentile_ci(draws: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary labelings; 1.0 when both are the same constant labeling."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.size == 0:
        return float("nan")
    po = float(np.mean(a == b))
    pa, pb = float(a.mean()), float(b.mean())
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0:
        return 1.0 if po == 1.0 else 0.0
    return (po - pe) / (1 - pe)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    union = int(np.sum(a | b))
    return float(np.sum(a & b)) / union if union else 1.0


def average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis; tied values share the mean of the ranks they span ([3, 1, 3] -> [2.5, 1,
    2.5]). Exact and vectorised (a comparison of every pair), for the few values a rank over models has."""
    a = np.asarray(a, dtype=float)
    below = (a[..., None, :] < a[..., :, None]).sum(-1)
    tied = (a[..., None, :] == a[..., :, None]).sum(-1)  # counts the value itself
    return below + (tied + 1) / 2


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis: Pearson's r of the average ranks (the tie-corrected rho); NaN where x
    or y is constant (the rank correlation is undefined there). A (n,) pair gives a 0-d array."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx = rx - rx.mean(-1, keepdims=True)
    ry = ry - ry.mean(-1, keepdims=True)
    sxx, syy, sxy = (rx * rx).sum(-1), (ry * ry).sum(-1), (rx * ry).sum(-1)
    ok = (sxx > 1e-12) & (syy > 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(ok, sxy / np.sqrt(np.where(ok, sxx * syy, 1.0)), np.nan)
    return np.clip(rho, -1.0, 1.0)


def finite(x: float | None) -> float | None:
    """None for NaN / inf (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None
