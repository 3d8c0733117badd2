"""Report figures (matplotlib, Agg backend) drawn from analysis.json, returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

PARADIGM_COLORS = {"base": "#7f7f7f", "single": "#1f77b4", "mix": "#d62728", "merge": "#2ca02c"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": 110})
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _heat(ax, mat, rows, cols, title, vmin, vmax, cmap, fmt="{:.2f}", scale=1.0, row_labels=True):
    plt = _plt()
    arr = np.array([[np.nan if v is None else v * scale for v in r] for r in mat], dtype=float)
    im = ax.imshow(arr, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), rows if row_labels else [""] * len(rows))
    ax.set_title(title)
    colormap = plt.get_cmap(cmap)
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            if not np.isnan(arr[i, j]):
                r, g, b, _ = colormap((arr[i, j] - vmin) / ((vmax - vmin) or 1))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(j, i, fmt.format(arr[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    return im


def accuracy_figure(a: dict[str, Any]) -> bytes | None:
    acc = a.get("accuracy") or {}
    if not acc.get("models"):
        return None
    plt = _plt()
    paradigm = {m["name"]: m["paradigm"] for m in a["models"]}
    names = list(acc["models"])
    benches = [b["name"] for b in acc["benchmarks"]]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(benches) * max(1, len(names)) / 3), 3.4))
    width = 0.8 / max(1, len(names))
    cmap = plt.get_cmap("tab10")
    for i, n in enumerate(names):
        scores = acc["models"][n]  # an expert evaluated on its own domain only has no bar elsewhere
        vals = [100 * scores.get(b, np.nan) for b in benches]
        ci = acc.get("ci", {}).get(n, {})
        err = None
        if all(b in ci for b in scores):
            err = np.array([[100 * (scores[b] - ci[b][0]) if b in scores else 0 for b in benches],
                            [100 * (ci[b][1] - scores[b]) if b in scores else 0 for b in benches]]).clip(min=0)
        ax.bar(np.arange(len(benches)) + i * width, vals, width, yerr=err, capsize=2, label=n,
               color=cmap(i % 10), edgecolor=PARADIGM_COLORS.get(paradigm.get(n), "k"))
    ax.set_xticks(np.arange(len(benches)) + width * (len(names) - 1) / 2, benches)
    ax.set_ylabel("avg@k (%)")
    ax.set_title("Accuracy per benchmark (95% CI)")
    ax.legend(fontsize=7, ncol=min(4, len(names)), loc="upper left", bbox_to_anchor=(1, 1))
    return _png(fig)


def transfer_figure(a: dict[str, Any]) -> bytes | None:
    t = (a.get("analyses") or {}).get("transfer") or {}
    if not t or "skipped" in t:
        return None
    plt = _plt()
    models = list(dict.fromkeys(r["model"] for r in t["rows"]))
    benches = list(dict.fromkeys(r["benchmark"] for r in t["rows"]))
    cell = {(r["model"], r["benchmark"]): r["delta"] for r in t["rows"]}
    mat = [[cell.get((m, b)) for b in benches] for m in models]
    lim = max([abs(v) * 100 for row in mat for v in row if v is not None] + [1.0])
    fig, ax = plt.subplots(figsize=(1.1 * len(benches) + 2.5, 0.45 * len(models) + 1.5))
    im = _heat(ax, mat, models, benches, "Δ avg@k over the base (points): train on row, evaluate on column",
               -lim, lim, "RdBu", "{:+.1f}", 100)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _png(fig)


def geometry_figures(a: dict[str, Any]) -> dict[str, bytes]:
    g = (a.get("analyses") or {}).get("geometry") or {}
    if not g or "skipped" in g:
        return {}
    plt = _plt()
    names = g["models"]
    size = 0.55 * len(names) + 2
    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    _heat(axes[0], g["cosine"], names, names, "cosine (exact)", -1, 1, "RdBu_r")
    im = _heat(axes[1], g["cosine_projected"], names, names, f"cosine (projected, d={g['projection_dim']})",
               -1, 1, "RdBu_r", row_labels=False)
    fig.colorbar(im, ax=axes, shrink=0.8)
    out["cosine"] = _png(fig)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    _heat(axes[0], g["sign_agreement"], names, names, "sign agreement", 0, 1, "viridis")
    im = _heat(axes[1], g["overlap"], names, names, f"footprint overlap (Jaccard, top {g['footprint_top_percent']}%)",
               0, 1, "viridis", row_labels=False)
    fig.colorbar(im, ax=axes, shrink=0.8)
    out["overlap"] = _png(fig)
    types = [t for t in ("attention", "mlp", "embeddings", "norms", "other") if t in g.get("params_by_type", {})]
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(names) * len(types) / 2), 3.2))
    width = 0.8 / max(1, len(types))
    for i, t in enumerate(types):
        ax.bar(np.arange(len(names)) + i * width, [g["norms"][n].get(t, 0) for n in names], width, label=t)
    ax.set_xticks(np.arange(len(names)) + width * (len(types) - 1) / 2, names, rotation=30, ha="right")
    ax.set_ylabel("||tau||_2")
    ax.set_title("Task-vector norm by module type")
    ax.legend(fontsize=7)
    out["norms"] = _png(fig)
    return out


def _rho_title(scope: str, row: dict[str, Any] | None) -> str:
    if not row:
        return scope
    if row.get("rho") is None:
        return f"{scope}: ρ not computable"
    ci = (f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" if row.get("ci_low") is not None
          and row.get("ci_high") is not None else "")
    return f"{scope}: ρ = {row['rho']:.2f}{ci}, n = {row['n']}"


def kl_figure(a: dict[str, Any]) -> bytes | None:
    """Gain against KL to the base: one panel per domain (that domain's prompts and benchmarks) and overall,
    each titled with its Spearman rho and interval."""
    d = (a.get("analyses") or {}).get("divergence") or {}
    if not d or "skipped" in d:
        return None
    plt = _plt()
    paradigm = {m["name"]: m["paradigm"] for m in a["models"]}
    rho = {r["scope"]: r for r in (d.get("correlation") or {}).get("rows", [])}
    panels = [(dom, kl, (d.get("gain_by_domain") or {}).get(dom, {}))
              for dom, kl in (d.get("kl_to_base_by_domain") or {}).items()]
    panels.append(("overall", d["kl_to_base"], d["gain"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (scope, kls, gains) in zip(axes[0], panels, strict=True):
        for m, kl in kls.items():
            gain = gains.get(m)
            if kl is None or gain is None:
                continue
            ax.scatter(kl, 100 * gain, s=40, color=PARADIGM_COLORS.get(paradigm.get(m), "k"))
            ax.annotate(m, (kl, 100 * gain), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.axhline(0, color="#999", lw=0.8)
        ax.set_xlabel("token KL(model || base), nats/token")
        ax.set_title(_rho_title(scope, rho.get(scope)))
    axes[0][0].set_ylabel("Δ avg@k over base (points)")
    for p, c in PARADIGM_COLORS.items():
        if p != "base":
            axes[0][-1].scatter([], [], color=c, label=p)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Policy neighbourhood: accuracy gain against KL to the base (Spearman ρ, bootstrap interval)")
    return _png(fig)


def behaviour_figure(a: dict[str, Any]) -> bytes | None:
    b = (a.get("analyses") or {}).get("behaviour") or {}
    if not b or "skipped" in b:
        return None
    plt = _plt()
    edges = np.array(b["length_bins"])
    centers = (edges[:-1] + edges[1:]) / 2
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    models = list(b["models"])
    for m in models:
        hist = np.sum([np.array(s["length_hist"]) for s in b["models"][m].values()], axis=0)
        total = hist.sum()
        axes[0].plot(centers, hist / total if total else hist, label=m, marker=".")
    axes[0].set_xlabel(f"response length ({b['length_unit']})")
    axes[0].set_ylabel("share of responses")
    axes[0].set_title("Response-length distribution")
    axes[0].legend(fontsize=7)
    domains = list(dict.fromkeys(d for per in b["models"].values() for d in per))
    width = 0.8 / max(1, len(models))
    for i, m in enumerate(models):
        vals = [100 * b["models"][m].get(d, {}).get("verify_rate", 0) for d in domains]
        axes[1].bar(np.arange(len(domains)) + i * width, vals, width, label=m)
    axes[1].set_xticks(np.arange(len(domains)) + width * (len(models) - 1) / 2, domains)
    axes[1].set_ylabel("responses with self-verification (%)")
    axes[1].set_title("Self-verification rate")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    return _png(fig)


def cost_figure(a: dict[str, Any]) -> bytes | None:
    c = (a.get("analyses") or {}).get("cost") or {}
    if not c or "skipped" in c:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    singles = [r for r in c["runs"] if r["paradigm"] == "single"]
    bottom = 0.0
    cmap = plt.get_cmap("Blues")
    for i, r in enumerate(singles):
        ax.bar("merge (sum of singles)", r["gpu_hours"], bottom=bottom, color=cmap(0.35 + 0.6 * i / max(1, len(singles))),
               edgecolor="white", label=r["run"])
        bottom += r["gpu_hours"]
    if c.get("mix_gpu_hours") is not None:
        ax.bar("mix", c["mix_gpu_hours"], color=PARADIGM_COLORS["mix"])
    ax.set_ylabel(c["unit"])
    ax.set_title("Training cost")
    if singles:
        ax.legend(fontsize=7)
    return _png(fig)


def make_figures(a: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """name -> (caption, PNG bytes) for every figure the analysis allows."""
    out: dict[str, tuple[str, bytes]] = {}
    for name, caption, fn in (("accuracy", "Accuracy per benchmark and model", accuracy_figure),
                              ("transfer", "Cross-domain transfer heat map", transfer_figure),
                              ("kl_vs_gain", "Accuracy gain against KL to the base, per domain and overall", kl_figure),
                              ("behaviour", "Response lengths and self-verification", behaviour_figure),
                              ("cost", "Training cost: mix against the experts a merge needs", cost_figure)):
        png = fn(a)
        if png:
            out[name] = (caption, png)
    captions = {"cosine": "Cosine similarity of task vectors, exact and projected",
                "overlap": "Sign agreement and update-footprint overlap",
                "norms": "Task-vector norms by module type"}
    for name, png in geometry_figures(a).items():
        out[name] = (captions[name], png)
    return out
