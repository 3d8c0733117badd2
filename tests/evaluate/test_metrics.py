"""Avg@K, pass@k, maj@K and bootstrap intervals on hand-made score tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from m2rl.evaluate import avg_at_k, bootstrap_ci, maj_at_k, pass_at_k, summarize
from m2rl.evaluate.metrics import mean_pass_at_k, pass_ks


def comb_pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n", range(1, 13))
def test_pass_at_k_matches_math_comb(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(comb_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_edges_and_large_n():
    assert pass_at_k(16, 0, 16) == 0.0
    assert pass_at_k(16, 16, 1) == 1.0
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)  # pass@1 is the fraction correct
    assert pass_at_k(1000, 3, 10) == pytest.approx(comb_pass_at_k(1000, 3, 10), rel=1e-9)
    for bad in ((0, 0, 1), (4, 5, 1), (4, 1, 5), (4, -1, 1), (4, 1, 0)):
        with pytest.raises(ValueError, match="pass_at_k"):
            pass_at_k(*bad)


def test_avg_at_k_weighs_problems_equally():
    table = [[1, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]]
    assert avg_at_k(table) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert avg_at_k([[0.5], [1.0]]) == pytest.approx(0.75)  # partial credit counts in Avg@K
    assert avg_at_k([1, 0, 1, 1]) == pytest.approx(0.75)  # one problem's flat scores
    assert avg_at_k([[1, 1], [0, 0, 0, 1]]) == pytest.approx((1.0 + 0.25) / 2)  # problems with their own n
    with pytest.raises(ValueError, match="no scores"):
        avg_at_k([])
    with pytest.raises(ValueError, match="problem 1 has no samples"):
        avg_at_k([[1], []])


def test_mean_pass_at_k_counts_only_full_credit():
    table = [[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [1, 1, 0, 0]]
    expected = np.mean([comb_pass_at_k(4, 1, 2), 0.0, comb_pass_at_k(4, 2, 2)])
    assert mean_pass_at_k(table, 2) == pytest.approx(expected)


def test_maj_at_k_votes_extracted_answers():
    answers = [["3", "3", "4", None], ["7", "8", "8", "7"], [None, None, None, None], ["B", "C", "C", "A"]]
    scores = [[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0], [0, 1, 1, 0]]
    # problem 0: "3" wins (correct); 1: tie 7/8, the first voted ("7") wins (correct); 2: no vote; 3: "C" correct
    assert maj_at_k(answers, scores) == pytest.approx(3 / 4)
    assert maj_at_k([["5", "6", "6"]], [[1, 0, 0]]) == 0.0  # the majority is wrong
    with pytest.raises(ValueError, match="answer rows"):
        maj_at_k([["1"]], [[1], [0]])


def test_bootstrap_ci_hand_made():
    assert bootstrap_ci([0.3]) == (0.3, 0.3)
    assert bootstrap_ci([1.0] * 20) == (1.0, 1.0)
    values = [0.0] * 50 + [1.0] * 50
    lo, hi = bootstrap_ci(values, resamples=2000, seed=1)
    se = math.sqrt(0.25 / 100)
    assert lo < 0.5 < hi
    assert lo == pytest.approx(0.5 - 1.96 * se, abs=0.02) and hi == pytest.approx(0.5 + 1.96 * se, abs=0.02)
    assert bootstrap_ci(values, resamples=2000, seed=1) == (lo, hi)  # seeded
    # reference: the same percentile bootstrap written out directly
    rng = np.random.default_rng(1)
    means = np.asarray(values)[rng.integers(0, 100, size=(2000, 100))].mean(axis=1)
    assert (lo, hi) == tuple(np.quantile(means, [0.025, 0.975]))
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_pass_ks():
    assert pass_ks(1) == [1]
    assert pass_ks(4) == [1, 2, 4]
    assert pass_ks(16) == [1, 2, 4, 8, 16]
    assert pass_ks(6) == [1, 2, 4, 6]


def test_summarize_hand_made_table():
    scores = [[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0]]
    answers = [["2", "3", "2", "2"], ["x", "y", "x", None], ["5"] * 4, ["1", "0", "1", "1"]]
    m = summarize(scores, answers, resamples=500, seed=0)
    assert m["avg_at_k"] == pytest.approx((0.75 + 0 + 1 + 0.25) / 4)
    assert m["pass_at_1"] == pytest.approx(m["avg_at_k"])
    assert m["pass_at_4"] == pytest.approx(3 / 4)
    assert m["pass_at_2"] == pytest.approx(np.mean([comb_pass_at_k(4, c, 2) for c in (3, 0, 4, 1)]))
    assert m["maj_at_k"] == pytest.approx(2 / 4)
    assert (m["ci_low"], m["ci_high"]) == bootstrap_ci([0.75, 0, 1, 0.25], resamples=500, seed=0)
    assert m["n_problems"] == 4 and m["k"] == 4
    assert "maj_at_k" not in summarize(scores, None, resamples=50)
    assert all("@" not in key for key in m)  # MLflow metric names cannot hold '@'
