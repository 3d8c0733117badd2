"""Independent dense references of every merge method: whole models flattened, plain torch, float64.

Only the deltas are formed in float32 (tau = fl32(theta - base)), as the stage's contract says; all the
rest (trims, elections, weights, SVDs, sums) is float64 over whole tensors or whole models.
"""

from __future__ import annotations

import hashlib

import torch

from .conftest import load_dense


def task_vectors(base, experts):
    b = load_dense(base)
    es = [load_dense(e) for e in experts]
    names = sorted(b)
    base64 = {n: b[n].double() for n in names}
    taus = [{n: (e[n].float() - b[n].float()).double() for n in names} for e in es]
    return names, base64, taus


def _ties_merge(trimmed: list[torch.Tensor]) -> torch.Tensor:
    d = torch.stack(trimmed)
    elected = torch.where(d.sum(0) >= 0, 1.0, -1.0).double()
    agree = torch.sign(d) == elected
    return (d * agree).sum(0) / agree.sum(0).clamp(min=1)


def average(names, base, taus, **_):
    return {n: torch.stack([base[n] + t[n] for t in taus]).mean(0) for n in names}


def task_arithmetic(names, base, taus, scale=1.0):
    return {n: base[n] + scale * sum(t[n] for t in taus) for n in names}


def ties(names, base, taus, density=0.2, scope="tensor", scale=1.0):
    trimmed = [dict(t) for t in taus]
    if density < 1:
        for i, t in enumerate(taus):
            if scope == "global":
                allv = torch.cat([t[n].abs().flatten() for n in names])
                m = int(allv.numel() * (1 - density))
                if m == 0:
                    continue
                thr = torch.sort(allv).values[m - 1]
                trimmed[i] = {n: t[n] * (t[n].abs() >= thr) for n in names}
            else:
                for n in names:
                    flat = t[n].abs().flatten()
                    k = max(1, int(density * flat.numel()))
                    thr = torch.sort(flat, descending=True).values[k - 1]
                    trimmed[i][n] = t[n] * (t[n].abs() >= thr)
    return {n: base[n] + scale * _ties_merge([tr[n] for tr in trimmed]) for n in names}


def dare_mask(seed, model, name, numel, drop_rate):
    """The documented DARE rule, re-implemented: blocks of 2**20 elements, each its own seeded draw."""
    parts = []
    for b in range((numel + (1 << 20) - 1) // (1 << 20)):
        n = min(1 << 20, numel - b * (1 << 20))
        h = hashlib.blake2b(f"{seed}/{model}/{name}/{b}".encode(), digest_size=8).digest()
        g = torch.Generator().manual_seed(int.from_bytes(h, "little") & ((1 << 63) - 1))
        parts.append(torch.rand(n, generator=g))
    return torch.cat(parts) >= drop_rate


def _dare(names, taus, drop_rate, seed, rescale=True):
    out = []
    for i, t in enumerate(taus):
        d = {}
        for n in names:
            keep = dare_mask(seed, i, n, t[n].numel(), drop_rate).view(t[n].shape)
            d[n] = t[n] * keep / ((1 - drop_rate) if rescale else 1.0)
        out.append(d)
    return out


def dare_ta(names, base, taus, drop_rate=0.9, seed=0, scale=1.0, rescale=True):
    return task_arithmetic(names, base, _dare(names, taus, drop_rate, seed, rescale), scale=scale)


def dare_ties(names, base, taus, drop_rate=0.9, seed=0, density=0.2, scope="tensor", scale=1.0, rescale=True):
    return ties(names, base, _dare(names, taus, drop_rate, seed, rescale), density=density, scope=scope, scale=scale)


def sce(names, base, taus, select_topk=1.0, scale=1.0):
    out = {}
    for n in names:
        d = torch.stack([t[n].flatten() for t in taus])
        if select_topk < 1:
            var = ((d - d.mean(0)) ** 2).mean(0)
            k = int(select_topk * int((var != 0).sum()))
            if k > 0:
                thr = torch.sort(var, descending=True).values[k - 1]
                d = d * (var >= thr)
            else:
                d = torch.zeros_like(d)
        w = (d * d).sum(1) / d.shape[1]
        w = torch.full_like(w, 1 / len(taus)) if w.sum() == 0 else w / w.sum()
        elected = torch.where(d.sum(0) >= 0, 1.0, -1.0).double()
        ew = w[:, None] * (torch.sign(d) == elected)
        div = ew.sum(0)
        div[div == 0] = 1
        out[n] = base[n] + scale * ((d * ew).sum(0) / div).view(base[n].shape)
    return out


def _polar(x):
    u, _, vh = torch.linalg.svd(x, full_matrices=False)
    return u @ vh


def tsv(names, base, taus, rank_fraction=None, scale=1.0):
    out = {}
    t_models = len(taus)
    for n in names:
        if base[n].dim() != 2:
            out[n] = base[n] + scale * torch.stack([t[n] for t in taus]).mean(0)
            continue
        r = min(base[n].shape)
        k = max(1, r // t_models) if rank_fraction is None else max(1, int(rank_fraction * r))
        svds = [torch.linalg.svd(t[n], full_matrices=False) for t in taus]
        u = torch.cat([s.U[:, :k] for s in svds], 1)
        s = torch.cat([s.S[:k] for s in svds])
        v = torch.cat([s.Vh[:k] for s in svds], 0)
        out[n] = base[n] + scale * (_polar(u) @ torch.diag(s) @ _polar(v))
    return out


def model_stock(names, base, taus, filter_wise=False):
    out = {}
    t_models = len(taus)
    for n in names:
        if filter_wise:
            ds = [t[n].reshape(-1, t[n].shape[-1]) if t[n].dim() > 1 else t[n].reshape(1, -1) for t in taus]
        else:
            ds = [t[n].reshape(1, -1) for t in taus]
        cos = []
        for i in range(t_models):
            for j in range(i + 1, t_models):
                num = (ds[i] * ds[j]).sum(-1)
                den = (ds[i].norm(dim=-1) * ds[j].norm(dim=-1)).clamp(min=1e-6)
                cos.append((num / den).clamp(-1, 1))
        c = torch.stack(cos).mean(0)[:, None]
        ratio = t_models * c / (1 + (t_models - 1) * c)
        mean = torch.stack(ds).mean(0)
        out[n] = base[n] + (ratio * mean).reshape(base[n].shape)
    return out
