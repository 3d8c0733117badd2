"""The summary of a study: flat metrics + a layout, the one source of every table.

`flatten(analysis)` turns analysis.json into `(metrics, layout)`: metrics are MLflow metric keys -> float
(`acc/<model>/<bench>`, `verdict/<scope>/delta`, `cost/mix_over_singles`, `geometry/cosine/<a>/<b>`,
`divergence/rho/<domain>`, ...),
the layout names the models, benchmarks and pairs the tables walk over. The report logs both to the
study's parent run (metrics, and the layout as `m2rl.report.layout*` tags), so `m2rl compare` rebuilds the
same tables from MLflow alone. `from_runs` builds a partial summary (accuracy, transfer, cost, point
verdict) from the evaluate and train child runs when a study has no report logged.
"""

from __future__ import annotations

import json
from typing import Any

from m2rl.analysis.analyses.geometry import MODULE_TYPES
from m2rl.analysis.tables import mkey

LAYOUT_TAG = "m2rl.report.layout"
TAG_CHUNK = 7000


def _put(metrics: dict[str, float], key: str, value: Any) -> None:
    if value is None:
        return
    metrics[key] = float(value)


def flatten(analysis: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    M: dict[str, float] = {}
    acc = analysis.get("accuracy") or {}
    sections = analysis.get("analyses") or {}
    models = analysis["models"]
    evaluated = set(acc.get("models", {}))
    L: dict[str, Any] = {
        "v": 1,
        "metric": acc.get("metric", "avg@k"),
        "models": [[m["name"], m["paradigm"], m.get("domain"), m.get("merge_method")] for m in models
                   if m["name"] in evaluated],
        "benchmarks": [[b["name"], b["domain"]] for b in acc.get("benchmarks", [])],
        "skipped": {n: s["skipped"] for n, s in sections.items() if "skipped" in s},
    }
    for name, per in acc.get("models", {}).items():
        for bench, v in per.items():
            _put(M, mkey("acc", name, bench), v)
            ci = acc.get("ci", {}).get(name, {}).get(bench)
            if ci:
                _put(M, mkey("acc_lo", name, bench), ci[0])
                _put(M, mkey("acc_hi", name, bench), ci[1])
        _put(M, mkey("acc", name, "average"), acc.get("average", {}).get(name))

    v = analysis.get("verdict") or {}
    if v and "skipped" not in v:
        L["verdict"] = {"a": v["a"]["model"], "b": v["b"]["model"], "a_label": v["a"]["label"],
                        "b_label": v["b"]["label"], "bootstrap": v["bootstrap"],
                        "scopes": [[r["scope"], r["winner"], (r.get("expert") or {}).get("model")]
                                   for r in v["rows"]]}
        for r in v["rows"]:
            s = r["scope"]
            for k, val in (("a", r["a"]), ("a_lo", r["a_ci"][0]), ("a_hi", r["a_ci"][1]), ("b", r["b"]),
                           ("b_lo", r["b_ci"][0]), ("b_hi", r["b_ci"][1]), ("delta", r["delta"]),
                           ("delta_lo", r["delta_ci"][0]), ("delta_hi", r["delta_ci"][1]),
                           ("expert", (r.get("expert") or {}).get("score"))):
                _put(M, mkey("verdict", s, k), val)
    elif v:
        L["skipped"]["verdict"] = v["skipped"]
    three = v.get("paradigms") if v else None
    if three:
        labels = list(three["models"])
        L["paradigms"] = {"models": three["models"], "bootstrap": three["bootstrap"],
                          "scopes": [[r["scope"], r["best"], r["within_ci_of_best"], r["cheapest_within_ci"],
                                      [[p["a"], p["b"], p["winner"]] for p in r["pairs"]]] for r in three["rows"]]}
        for lab in labels:
            _put(M, mkey("paradigms", "cost", lab), three["cost"].get(lab))
        for r in three["rows"]:
            for lab, sc in r["scores"].items():
                _put(M, mkey("paradigms", r["scope"], lab), sc["score"])
                _put(M, mkey("paradigms", r["scope"], lab, "lo"), sc["ci"][0])
                _put(M, mkey("paradigms", r["scope"], lab, "hi"), sc["ci"][1])
            for p in r["pairs"]:
                _put(M, mkey("paradigms", r["scope"], f"{p['a']}-{p['b']}"), p["delta"])
                _put(M, mkey("paradigms", r["scope"], f"{p['a']}-{p['b']}", "lo"), p["delta_ci"][0])
                _put(M, mkey("paradigms", r["scope"], f"{p['a']}-{p['b']}", "hi"), p["delta_ci"][1])

    cost = sections.get("cost") or {}
    if cost and "skipped" not in cost:
        L["cost"] = {"unit": cost["unit"], "runs": [[r["run"], r["paradigm"], r["device"]] for r in cost["runs"]]}
        for r in cost["runs"]:
            _put(M, mkey("cost", "run", r["run"], "gpu_hours"), r["gpu_hours"])
        for k in ("mix_gpu_hours", "singles_gpu_hours", "mix_over_singles", "distill_gpu_hours"):
            _put(M, f"cost/{k}", cost.get(k))

    tr = sections.get("transfer") or {}
    if tr and "skipped" not in tr:
        names: list[str] = []
        for r in tr["rows"]:
            if r["model"] not in names:
                names.append(r["model"])
            _put(M, mkey("transfer", r["model"], r["benchmark"]), r["delta"])
            _put(M, mkey("transfer_lo", r["model"], r["benchmark"]), r["ci_low"])
            _put(M, mkey("transfer_hi", r["model"], r["benchmark"]), r["ci_high"])
        L["transfer"] = names

    g = sections.get("geometry") or {}
    if g and "skipped" not in g:
        names = g["models"]
        types = [t for t in MODULE_TYPES if t in g.get("params_by_type", {})]
        L["geometry"] = {"models": names, "types": types, "top_percent": g["footprint_top_percent"],
                         "projection": g["projection"]}
        for m in names:
            for t, val in g["norms"][m].items():
                _put(M, mkey("geometry", "norm", m, t), val)
            _put(M, mkey("geometry", "footprint", m), g["footprint_fraction"][m])
        for stat in ("cosine", "cosine_projected", "sign_agreement", "overlap"):
            for i, a in enumerate(names):
                for j in range(i, len(names)):
                    _put(M, mkey("geometry", stat, a, names[j]), g[stat][i][j])

    d = sections.get("divergence") or {}
    if d and "skipped" not in d:
        dm: list[str] = []
        refs: list[str] = []
        for p in d["pairs"]:
            dm += [p["model"]] if p["model"] not in dm else []
            refs += [p["reference"]] if p["reference"] not in refs else []
            _put(M, mkey("divergence", "kl", p["model"], p["reference"]), p["kl"])
        for m, val in d.get("gain", {}).items():
            _put(M, mkey("divergence", "gain", m), val)
        L["divergence"] = {"models": dm, "references": refs, "prompts": d["prompts"]}
        for stat, by_domain in (("kl_domain", d.get("kl_to_base_by_domain")), ("gain_domain", d.get("gain_by_domain"))):
            for dom, per in (by_domain or {}).items():
                for m, val in per.items():
                    _put(M, mkey("divergence", stat, m, dom), val)
        if d.get("kl_to_base_by_domain"):
            L["divergence"]["domains"] = list(d["kl_to_base_by_domain"])
        corr = d.get("correlation")
        if corr:
            L["divergence"]["correlation"] = {"resamples": corr["resamples"], "confidence": corr["confidence"],
                                              "scopes": [[r["scope"], r["reason"]] for r in corr["rows"]]}
            for r in corr["rows"]:
                for stat, val in (("rho", r["rho"]), ("rho_lo", r["ci_low"]), ("rho_hi", r["ci_high"]),
                                  ("rho_n", r["n"])):
                    _put(M, mkey("divergence", stat, r["scope"]), val)

    inh = sections.get("inheritance") or {}
    if inh and "skipped" not in inh:
        L["inheritance"] = [[r["model"], r["benchmark"], r["expert"]] for r in inh["rows"]]
        for r in inh["rows"]:
            for stat in ("kappa", "inherited", "jaccard", "new"):
                _put(M, mkey("inheritance", stat, r["model"], r["benchmark"]), r[stat])

    beh = sections.get("behaviour") or {}
    if beh and "skipped" not in beh:
        cells = []
        for m, per in beh["models"].items():
            for dom, s in per.items():
                cells.append([m, dom])
                for stat in ("length_mean", "length_median", "verify_rate", "verify_first_position"):
                    _put(M, mkey("behaviour", stat, m, dom), s[stat])
        L["behaviour"] = {"unit": beh["length_unit"], "cells": cells}
    return M, L


def layout_tags(layout: dict[str, Any]) -> dict[str, str]:
    """The layout as MLflow tags: `m2rl.report.layout` holds the chunk count, `.0`, `.1`, ... the JSON."""
    text = json.dumps(layout, separators=(",", ":"))
    chunks = [text[i : i + TAG_CHUNK] for i in range(0, len(text), TAG_CHUNK)] or [""]
    tags = {LAYOUT_TAG: str(len(chunks))}
    tags.update({f"{LAYOUT_TAG}.{i}": c for i, c in enumerate(chunks)})
    return tags


def layout_from_tags(tags: dict[str, str]) -> dict[str, Any] | None:
    n = tags.get(LAYOUT_TAG)
    if n is None:
        return None
    return json.loads("".join(tags[f"{LAYOUT_TAG}.{i}"] for i in range(int(n))))
