"""Evaluation metrics over a table of per-sample scores: Avg@K, pass@k, maj@K and bootstrap intervals.

A "score table" is a list with one entry per problem, each the list of its K sample scores in
[0, 1]. A sample counts as correct for pass@k and maj@K when its score is 1 (full credit); Avg@K
averages the raw scores, so partial credit (fraction rewards) counts there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

CORRECT = 1.0 - 1e-9  # a score at or above this is a fully correct sample


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) for n samples of which c are correct."""
    if n < 1 or k < 1 or k > n or c < 0 or c > n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # Product form: numerically stable for large n (no huge binomials).
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def avg_at_k(scores: Sequence[Sequence[float]] | Sequence[float]) -> float:
    """Avg@K: the mean score over every sample of every problem (problems weigh equally).

    Accepts a score table (one list of K scores per problem) or a flat list of one problem's scores.
    """
    if len(scores) == 0:
        raise ValueError("avg_at_k: no scores")
    if isinstance(scores[0], (int, float, np.floating, np.integer)):
        return float(np.mean(np.asarray(scores, dtype=np.float64)))
    per_problem = [_problem_mean(row, i) for i, row in enumerate(scores)]
    return float(np.mean(per_problem))


def _problem_mean(row: Sequence[float], index: int) -> float:
    if len(row) == 0:
        raise ValueError(f"avg_at_k: problem {index} has no samples")
    return float(np.mean(np.asarray(row, dtype=np.float64)))


def mean_pass_at_k(scores: Sequence[Sequence[float]], k: int) -> float:
    """pass@k averaged over problems, each with its own n samples (n >= k)."""
    vals = []
    for row in scores:
        n = len(row)
        c = sum(1 for s in row if s >= CORRECT)
        vals.append(pass_at_k(n, c, k))
    return float(np.mean(vals)) if vals else 0.0


def majority_correct(answers: Sequence[str | None], scores: Sequence[float]) -> float:
    """maj@K of one problem: 1 when the most voted answer is correct (ties: the first voted wins).

    Samples without an extracted answer do not vote; with no vote at all the problem scores 0. An
    answer's correctness is read from the samples that gave it (the best of their scores).
    """
    votes = Counter(a for a in answers if a is not None and a != "")
    if not votes:
        return 0.0
    top = max(votes.values())
    first = next(a for a in answers if a is not None and a != "" and votes[a] == top)
    best = max(s for a, s in zip(answers, scores, strict=True) if a == first)
    return 1.0 if best >= CORRECT else 0.0


def maj_at_k(answers: Sequence[Sequence[str | None]], scores: Sequence[Sequence[float]]) -> float:
    """maj@K over problems: the fraction whose majority-voted answer is correct."""
    if len(answers) != len(scores):
        raise ValueError(f"maj_at_k: {len(answers)} answer rows but {len(scores)} score rows")
    if not scores:
        raise ValueError("maj_at_k: no problems")
    return float(np.mean([majority_correct(a, s) for a, s in zip(answers, scores, strict=True)]))


def bootstrap_ci(
    values: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-problem values (resampling problems)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("bootstrap_ci: no values")
    if arr.size == 1:
        return float(arr[0]), float(arr[0])
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    step = max(1, 2_000_000 // arr.size)  # bound memory: at most ~2M indices at a time
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        idx = rng.integers(0, arr.size, size=(stop - start, arr.size))
        means[start:stop] = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def pass_ks(k: int) -> list[int]:
    """The k values reported for pass@k: 1, powers of two below K, and K itself."""
    ks = {1, k}
    p = 2
    while p < k:
        ks.add(p)
        p *= 2
    return sorted(ks)


def summarize(
    scores: Sequence[Sequence[float]],
    answers: Sequence[Sequence[str | None]] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric of one benchmark: avg_at_k, pass_at_<k>, maj_at_k (when answers vote), CI, sizes."""
    if not scores:
        raise ValueError("summarize: no problems")
    k = min(len(row) for row in scores)
    per_problem = [_problem_mean(row, i) for i, row in enumerate(scores)]
    out: dict[str, float] = {"avg_at_k": float(np.mean(per_problem))}
    for kk in pass_ks(k):
        out[f"pass_at_{kk}"] = mean_pass_at_k(scores, kk)
    if answers is not None:
        out["maj_at_k"] = maj_at_k(answers, scores)
    low, high = bootstrap_ci(per_problem, resamples=resamples, seed=seed)
    out["ci_low"], out["ci_high"] = low, high
    out["n_problems"] = float(len(scores))
    out["k"] = float(k)
    return out

