"""The exact k-th value selection used by TIES trimming, on tensors big enough to take its fast paths."""

from __future__ import annotations

import pytest
import torch

from m2rl.merge.select import kth_value


def _cases():
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(300_000, generator=g).abs()
    zero_heavy = dense.clone()
    zero_heavy[torch.rand(300_000, generator=g) < 0.9] = 0  # DARE-style drops: most entries exactly 0
    quantised = (torch.randn(250_000, generator=g).abs() * 8).round() / 8  # many exact ties
    sorted_vals = torch.sort(torch.rand(200_000, generator=g)).values
    denormal = torch.full((100_000,), 1e-40) * torch.rand(100_000, generator=g)
    return {"dense": dense, "zero_heavy": zero_heavy, "quantised": quantised, "sorted": sorted_vals,
            "denormal": denormal}


@pytest.mark.parametrize("name", list(_cases()))
@pytest.mark.parametrize("q", [0.0, 0.2, 0.5, 0.8, 0.95, 1.0])
def test_kth_value_equals_torch_kthvalue(name, q):
    values = _cases()[name]
    n = values.numel()
    rank = min(n, max(1, int(q * n)))
    assert kth_value(values, rank) == float(torch.kthvalue(values, rank).values)


def test_rank_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="rank"):
        kth_value(torch.ones(10), 11)
