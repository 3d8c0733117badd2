"""Tiny Llama-shaped base + experts for the merge tests, and a dense float64 reader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from m2rl.models import resolve_model


def make_expert(base: Path, out: Path, seed: int, sigma: float = 0.01, quantum: float | None = None,
                dtype: torch.dtype | None = None, tweak=None) -> Path:
    """A copy of `base` with its weights perturbed: theta = base + sigma * N(0, 1) (optionally on a grid)."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out)
    sd = load_file(str(out / "model.safetensors"))
    g = torch.Generator().manual_seed(1000 + seed)
    new = {}
    for k in sorted(sd):
        v = sd[k].float()
        noise = sigma * torch.randn(v.shape, generator=g)
        if quantum is not None:
            noise = torch.round(noise / quantum) * quantum
        new[k] = (v + noise).to(dtype or sd[k].dtype)
    if tweak is not None:
        tweak(new)
    save_file(new, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def quantize_model(src: Path, out: Path, quantum: float) -> Path:
    """A copy of `src` whose weights lie on a grid of `quantum` (so deltas on that grid are exact)."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    sd = load_file(str(out / "model.safetensors"))
    save_file({k: torch.round(v / quantum) * quantum for k, v in sd.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    return out


def load_dense(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint folder (any sharding), as stored."""
    import json

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else [
        p.name for p in folder.glob("*.safetensors")]
    out = {}
    for f in files:
        out.update(load_file(str(folder / f)))
    return out


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(base, [3 experts]): float32 tiny Llama, experts = base + 0.01 N(0, 1)."""
    root = tmp_path_factory.mktemp("merge-tiny")
    base = Path(shutil.copytree(resolve_model("random:tiny:0", cache=root / "cache"), root / "base"))
    experts = [make_expert(base, root / f"e{i}", i) for i in range(3)]
    return base, experts


@pytest.fixture(scope="session")
def tiny_grid(tmp_path_factory):
    """(base, [4 experts]) with every weight and delta on a 2**-12 grid: float32 arithmetic is exact,
    so ties in |tau| and in variances are common and tie rules are tested."""
    root = tmp_path_factory.mktemp("merge-grid")
    q = 2.0**-12
    base = quantize_model(resolve_model("random:tiny:1", cache=root / "cache"), root / "base", q)
    experts = [make_expert(base, root / f"e{i}", 10 + i, sigma=0.004, quantum=q) for i in range(4)]
    return base, experts


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared CI machine, multi-threaded SVDs and reductions mostly spin."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
