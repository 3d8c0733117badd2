"""Report tables, rendered to Markdown and HTML from one flat set of numbers.

The numbers are the "summary": `metrics` (flat MLflow-style keys -> float) plus a `layout` (which models,
benchmarks, pairs, labels). `summary.flatten(analysis)` builds them from analysis.json, `compare` reads them
back from MLflow, and `build_tables` turns either into the same tables, so the report and `m2rl compare`
print identical numbers.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

_BAD = re.compile(r"[^\w.\- /]")
DASH = "—"


def key_part(name: str) -> str:
    """A name made safe for an MLflow metric key segment."""
    return _BAD.sub("_", str(name)).replace("/", "_") or "_"


def mkey(*parts: str) -> str:
    return "/".join(key_part(p) for p in parts)


@dataclass
class Table:
    """A titled grid of formatted cells; `bold` holds (row, column) positions to emphasise."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    note: str = ""

    def cell(self, row: int, col: int) -> str:
        text = self.rows[row][col]
        return text

    def to_markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        lines = [f"**{self.title}**", "", "| " + " | ".join(esc(c) for c in self.columns) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|"]
        for r, row in enumerate(self.rows):
            cells = [f"**{esc(c)}**" if (r, i) in self.bold and c != DASH else esc(c) for i, c in enumerate(row)]
            lines.append("| " + " | ".join(cells) + " |")
        if self.note:
            lines += ["", f"_{self.note}_"]
        return "\n".join(lines)

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for r, row in enumerate(self.rows):
            tds = []
            for i, c in enumerate(row):
                text = html.escape(c)
                tds.append(f"<td><b>{text}</b></td>" if (r, i) in self.bold and c != DASH else f"<td>{text}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return (f'<table id="table-{self.key}"><caption>{html.escape(self.title)}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}")


# ---- formatting ---------------------------------------------------------------------------------------

def pct(x: float | None) -> str:
    return DASH if x is None else f"{100 * x:.1f}"


def pct_ci(x: float | None, lo: float | None, hi: float | None) -> str:
    if x is None:
        return DASH
    return pct(x) if lo is None or hi is None else f"{100 * x:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def pts(x: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """Signed percentage points, with an interval when given."""
    if x is None:
        return DASH
    s = f"{100 * x:+.1f}"
    return s if lo is None or hi is None else f"{s} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def num(x: float | None, digits: int = 3) -> str:
    return DASH if x is None else f"{x:.{digits}f}"


def hours(x: float | None) -> str:
    if x is None:
        return DASH
    return f"{x:.4f}" if x < 0.1 else f"{x:.2f}"


# ---- tables -------------------------------------------------------------------------------------------

def _models(layout: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(("name", "paradigm", "domain", "method"), m, strict=True)) for m in layout["models"]]


def _label(m: dict[str, Any]) -> str:
    return m["name"]


def _best(values: list[float | None], higher: bool = True) -> set[int]:
    vals = [v for v in values if v is not None]
    if not vals:
        return set()
    top = max(vals) if higher else min(vals)
    return {i for i, v in enumerate(values) if v is not None and abs(v - top) < 1e-12}


def accuracy_table(M: dict[str, float], L: dict[str, Any]) -> Table:
    models = _models(L)
    rows, bold = [], set()
    for r, (bench, domain) in enumerate(L["benchmarks"]):
        vals = [M.get(mkey("acc", m["name"], bench)) for m in models]
        cells = [pct_ci(v, M.get(mkey("acc_lo", m["name"], bench)), M.get(mkey("acc_hi", m["name"], bench)))
                 for v, m in zip(vals, models, strict=True)]
        rows.append([f"{bench} ({domain})", *cells])
        bold |= {(r, i + 1) for i in _best(vals)}
    vals = [M.get(mkey("acc", m["name"], "average")) for m in models]
    rows.append(["average", *[pct(v) for v in vals]])
    bold |= {(len(rows) - 1, i + 1) for i in _best(vals)}
    return Table("accuracy", f"Accuracy ({L.get('metric', 'avg@k')}, %, 95% CI): benchmarks x models",
                 ["benchmark", *[_label(m) for m in models]], rows, bold,
                 "Best per row in bold. Interval: the evaluate stage's bootstrap over problems." + _not_evaluated(rows))


def _not_evaluated(rows: list[list[str]]) -> str:
    """The caption's note when a table has cells no evaluation filled (experts on their own domain only)."""
    if any(cell == DASH for row in rows for cell in row[1:]):
        return f" {DASH}: not evaluated (under `evaluate.experts: own_domain` an expert is evaluated on its own domain only)."
    return ""


def merge_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    merges = [m for m in _models(L) if m["paradigm"] == "merge"]
    if not merges:
        return None
    benches = [b for b, _ in L["benchmarks"]]
    cols = [*benches, "average"]
    rows, bold = [], set()
    grid = [[M.get(mkey("acc", m["name"], c)) for c in cols] for m in merges]
    for m, vals in zip(merges, grid, strict=True):
        rows.append([f"{m['method']} ({m['name']})", *[pct(v) for v in vals]])
    for j in range(len(cols)):
        bold |= {(i, j + 1) for i in _best([g[j] for g in grid])}
    for m in _models(L):
        if m["paradigm"] == "mix":
            rows.append([f"reference: {m['name']}", *[pct(M.get(mkey("acc", m["name"], c))) for c in cols]])
    experts = {m["domain"]: m["name"] for m in _models(L) if m["paradigm"] == "single"}
    own = []
    for bench, domain in L["benchmarks"]:
        own.append(M.get(mkey("acc", experts[domain], bench)) if domain in experts else None)
    if experts:
        avg = sum(own) / len(own) if own and all(v is not None for v in own) else None
        rows.append(["reference: expert of the domain", *[pct(v) for v in own], pct(avg)])
    return Table("merge_methods", "Merge methods (avg@k, %)", ["merge", *cols], rows, bold,
                 "Best merge per column in bold; reference rows are not ranked.")


def cost_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    c = L.get("cost")
    if not c:
        return None
    unit = c["unit"]
    rows = [[run, paradigm, device, hours(M.get(mkey("cost", "run", run, "gpu_hours")))]
            for run, paradigm, device in c["runs"]]
    if sum(1 for _, paradigm, _ in c["runs"] if paradigm == "mix") > 1:
        rows.append(["mix (total)", "mix", "", hours(M.get("cost/mix_gpu_hours"))])
    rows.append(["merge = sum of single-domain runs", "merge", "", hours(M.get("cost/singles_gpu_hours"))])
    ratio = M.get("cost/mix_over_singles")
    rows.append(["mix / sum of singles", "", "", DASH if ratio is None else f"{ratio:.2f}x"])
    if M.get("cost/distill_gpu_hours") is not None:
        total = M.get("cost/distill_gpu_hours") + (M.get("cost/singles_gpu_hours") or 0.0)
        rows.append(["distill = its run + the experts it distils", "distill", "", hours(total)])
    return Table("cost", f"Training cost ({unit})", ["run", "paradigm", "device", unit], rows, set(),
                 "GPUs x wall-clock hours from the train cards; on a CPU machine these are CPU-hours.")


def transfer_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    if not L.get("transfer"):
        return None
    benches = L["benchmarks"]
    rows, bold = [], set()
    for r, name in enumerate(L["transfer"]):
        cells = []
        for j, (bench, _) in enumerate(benches):
            v = M.get(mkey("transfer", name, bench))
            lo, hi = M.get(mkey("transfer_lo", name, bench)), M.get(mkey("transfer_hi", name, bench))
            cells.append(pts(v, lo, hi))
            if lo is not None and (lo > 0 or (hi is not None and hi < 0)):
                bold.add((r, j + 1))
        rows.append([name, *cells])
    return Table("transfer", "Cross-domain transfer: Δ avg@k over the base (points, 95% CI)",
                 ["model", *[f"{b} ({d})" for b, d in benches]], rows, bold,
                 "Bold: the interval excludes 0 (synergy / gain if positive, interference / loss if negative)."
                 + _not_evaluated(rows))


def norms_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    g = L.get("geometry")
    if not g:
        return None
    types = ["overall", *g["types"]]
    rows = [[m, *[num(M.get(mkey("geometry", "norm", m, t)), 4) for t in types],
             pct(M.get(mkey("geometry", "footprint", m)))] for m in g["models"]]
    return Table("norms", "Task-vector L2 norms by module type", ["model", *types, "footprint %"], rows, set(),
                 f"tau = theta - theta_base; footprint: share of parameters in the top {g['top_percent']}% |tau|.")


def matrix_table(M: dict[str, float], L: dict[str, Any], stat: str, title: str, note: str) -> Table | None:
    g = L.get("geometry")
    if not g:
        return None
    names = g["models"]
    rows = []
    for i, a in enumerate(names):
        row = [a]
        for j, b in enumerate(names):
            x, y = (a, b) if i <= j else (b, a)
            row.append(num(M.get(mkey("geometry", stat, x, y))))
        rows.append(row)
    return Table(stat, title, ["", *names], rows, set(), note)


def kl_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    d = L.get("divergence")
    if not d:
        return None
    refs = d["references"]
    rows = []
    for m in d["models"]:
        rows.append([m, *[num(M.get(mkey("divergence", "kl", m, r)), 4) for r in refs],
                     pts(M.get(mkey("divergence", "gain", m)))])
    return Table("kl", "Policy divergence: token-level KL(model || reference), nats per token",
                 ["model", *[f"KL vs {r}" for r in refs], "Δ avg acc (pts)"], rows, set(),
                 f"On {d['prompts']} shared prompts from the eval splits, continuations from each model's own "
                 "eval responses.")


def kl_domain_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    d = L.get("divergence") or {}
    domains = d.get("domains")
    if not domains:
        return None
    rows = [[m, *[c for dom in domains for c in (num(M.get(mkey("divergence", "kl_domain", m, dom)), 4),
                                                   pts(M.get(mkey("divergence", "gain_domain", m, dom))))]]
            for m in d["models"]]
    return Table("kl_domain", "KL from the base and accuracy gain, per domain",
                 ["model", *[c for dom in domains for c in (f"{dom}: KL vs base", f"{dom}: Δ acc (pts)")]], rows,
                 set(), "KL on the domain's prompts only (nats per token); Δ: mean avg@k gain over the base on the "
                        "domain's benchmarks.")


def _rho_interval(lo: float | None, hi: float | None) -> str:
    return DASH if lo is None or hi is None else f"[{lo:.2f}, {hi:.2f}]"


def kl_gain_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    c = (L.get("divergence") or {}).get("correlation")
    if not c:
        return None
    rows, bold = [], set()
    for r, (scope, reason) in enumerate(c["scopes"]):
        n = M.get(mkey("divergence", "rho_n", scope))
        lo, hi = M.get(mkey("divergence", "rho_lo", scope)), M.get(mkey("divergence", "rho_hi", scope))
        rows.append([scope, DASH if n is None else str(int(n)), num(M.get(mkey("divergence", "rho", scope)), 2),
                     _rho_interval(lo, hi), reason or ""])
        if lo is not None and hi is not None and (lo > 0 or hi < 0):
            bold |= {(r, 2), (r, 3)}
    conf = 100 * c["confidence"]
    return Table("kl_gain", "Does divergence buy accuracy? Spearman's ρ of KL from the base against the gain",
                 ["scope", "models", "Spearman ρ", f"{conf:g}% interval", "note"], rows, bold,
                 f"Per domain: KL on the domain's prompts against the gain on its benchmarks; overall: KL on every "
                 f"prompt against the average gain. Ties take average ranks; interval: percentile, {c['resamples']} "
                 "bootstrap resamples of the models. Bold: the interval excludes 0.")


def kl_gain_lines(M: dict[str, float], L: dict[str, Any]) -> list[str]:
    """The correlation of KL and gain in sentences, one per domain and overall (none without a correlation)."""
    c = (L.get("divergence") or {}).get("correlation")
    if not c:
        return []
    lines = [f"Spearman's rho between each model's KL from the base (on the domain's prompts) and its accuracy "
             f"gain over the base (on the domain's benchmarks), with a {100 * c['confidence']:g}% percentile interval "
             f"from {c['resamples']} bootstrap resamples of the models:"]
    for scope, reason in c["scopes"]:
        rho = M.get(mkey("divergence", "rho", scope))
        if rho is None:
            lines.append(f"{scope}: not computable ({reason}).")
            continue
        n = int(M.get(mkey("divergence", "rho_n", scope)) or 0)
        lo, hi = M.get(mkey("divergence", "rho_lo", scope)), M.get(mkey("divergence", "rho_hi", scope))
        text = f"{scope}: rho = {rho:.2f}"
        if lo is None or hi is None:
            lines.append(f"{text} over {n} models; no interval ({reason}).")
            continue
        text += f" {_rho_interval(lo, hi)} over {n} models"
        if lo > 0:
            text += ": the models that moved further from the base gained more (the interval excludes 0)."
        elif hi < 0:
            text += ": the models that moved further from the base gained less (the interval excludes 0)."
        else:
            text += ": no clear monotone relation (the interval includes 0)."
        lines.append(text)
    return lines


def inheritance_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    rows_l = L.get("inheritance")
    if not rows_l:
        return None
    rows = []
    for model, bench, expert in rows_l:
        rows.append([model, bench, expert,
                     num(M.get(mkey("inheritance", "kappa", model, bench))),
                     pct(M.get(mkey("inheritance", "inherited", model, bench))),
                     num(M.get(mkey("inheritance", "jaccard", model, bench))),
                     pct(M.get(mkey("inheritance", "new", model, bench)))])
    return Table("inheritance", "Skill inheritance from the domain expert (per-problem agreement)",
                 ["model", "benchmark", "expert", "Cohen's kappa", "inherited %", "Jaccard", "new %"], rows, set(),
                 "Solved = mean score >= 0.5. Inherited: share of the expert's solved problems the model solves; "
                 "new: share of problems only the model solves.")


def behaviour_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    b = L.get("behaviour")
    if not b:
        return None
    rows = []
    for model, domain in b["cells"]:
        rows.append([model, domain,
                     num(M.get(mkey("behaviour", "length_mean", model, domain)), 1),
                     num(M.get(mkey("behaviour", "length_median", model, domain)), 1),
                     pct(M.get(mkey("behaviour", "verify_rate", model, domain))),
                     num(M.get(mkey("behaviour", "verify_first_position", model, domain)), 2)])
    unit = b["unit"]
    return Table("behaviour", "Behaviour: response length and self-verification",
                 ["model", "domain", f"mean length ({unit})", f"median ({unit})", "self-verify %",
                  "first at (fraction)"], rows, set(),
                 "Self-verification phrases: 'let me check', 'verify', 'wait', 'double-check', ...; position of "
                 "the first one as a fraction of the response.")


def verdict_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    v = L.get("verdict")
    if not v:
        return None
    a, b = v["a"], v["b"]
    rows, bold = [], set()
    for r, (scope, winner, expert) in enumerate(v["scopes"]):
        get = lambda s, scope=scope: M.get(mkey("verdict", scope, s))  # noqa: E731
        rows.append([scope, pct_ci(get("a"), get("a_lo"), get("a_hi")), pct_ci(get("b"), get("b_lo"), get("b_hi")),
                     pts(get("delta"), get("delta_lo"), get("delta_hi")), winner,
                     DASH if not expert else f"{pct(get('expert'))} ({expert})"])
        if winner == v["a_label"]:
            bold.add((r, 1))
        elif winner == v["b_label"]:
            bold.add((r, 2))
    return Table("verdict", "Verdict: paired bootstrap over problems (%, 95% CI)",
                 ["scope", v["a_label"] if a == v["a_label"] else f"{v['a_label']} ({a})",
                  v["b_label"] if b == v["b_label"] else f"{v['b_label']} ({b})", f"Δ {v['a_label']} − {v['b_label']}",
                  "winner", "expert (own domain)"], rows, bold,
                 f"{v['bootstrap']} paired resamples; a side wins when the interval of Δ excludes 0.")


def verdict_lines(M: dict[str, float], L: dict[str, Any]) -> list[str]:
    """The verdict in sentences: who wins on average and per domain, with intervals, and at what cost."""
    v = L.get("verdict")
    if not v:
        return ["No verdict: " + L.get("skipped", {}).get("verdict", "the mixed / merged models were not evaluated")]
    al, bl = v["a_label"], v["b_label"]
    an = al if v["a"] == al else f"{al} ({v['a']})"
    bn = bl if v["b"] == bl else f"{bl} ({v['b']})"
    lines = []
    scopes = {s: (w, e) for s, w, e in v["scopes"]}

    def g(scope: str, s: str) -> float | None:
        return M.get(mkey("verdict", scope, s))

    if "average" in scopes:
        w = scopes["average"][0]
        res = (f"{w} wins on average" if w != "tie" else "no significant difference on average")
        lines.append(
            f"On average over {len(L['benchmarks'])} benchmark(s), {an} scores "
            f"{pct_ci(g('average', 'a'), g('average', 'a_lo'), g('average', 'a_hi'))} % and {bn} "
            f"{pct_ci(g('average', 'b'), g('average', 'b_lo'), g('average', 'b_hi'))} %: Δ = "
            f"{pts(g('average', 'delta'), g('average', 'delta_lo'), g('average', 'delta_hi'))} points, {res} "
            "(95% paired bootstrap interval)."
        )
    per = []
    for scope, (w, _) in scopes.items():
        if scope == "average":
            continue
        d = pts(g(scope, "delta"), g(scope, "delta_lo"), g(scope, "delta_hi"))
        per.append(f"{scope}: {w + ' wins' if w != 'tie' else 'tie'} (Δ {d})")
    if per:
        lines.append("Per domain: " + "; ".join(per) + ".")
    c = L.get("cost")
    mix_h, sing_h, ratio = M.get("cost/mix_gpu_hours"), M.get("cost/singles_gpu_hours"), M.get("cost/mix_over_singles")
    if c and mix_h is not None and sing_h is not None:
        n_single = sum(1 for _, p, _ in c["runs"] if p == "single")
        lines.append(
            f"Cost: mix {hours(mix_h)} {c['unit']} against {hours(sing_h)} for the {n_single} single-domain runs a "
            f"merge needs (mix / sum of singles = {ratio:.2f}x)."
        )
    if "average" in scopes and bl == "merge":
        w = scopes["average"][0]
        cheaper = None
        if mix_h is not None and sing_h is not None:
            cheaper = "mix" if mix_h < sing_h else "merge"
        if w == "tie":
            pick = (f"Neither paradigm wins significantly on average; on cost, {cheaper} is the pick."
                    if cheaper else "Neither paradigm wins significantly on average.")
        else:
            pick = f"Pick {w}: it wins on average"
            pick += (" and is also the cheaper one." if cheaper == w else
                     f", though {cheaper} costs less." if cheaper else ".")
        lines.append(pick)
    return lines + gain_lines(M, L) + paradigms_lines(M, L)


def _domain_gain(M: dict[str, float], L: dict[str, Any], model: str, domain: str):
    """(Δ, low, high) of `model` over the base on `domain`'s benchmarks (their mean; an interval only with one
    benchmark, the paired bootstrap of the transfer analysis), or None."""
    benches = [b for b, d in L["benchmarks"] if d == domain]
    vals = [(M.get(mkey("transfer", model, b)), M.get(mkey("transfer_lo", model, b)),
             M.get(mkey("transfer_hi", model, b))) for b in benches]
    vals = [v for v in vals if v[0] is not None]
    if not vals:
        return None
    if len(vals) == 1:
        return vals[0]
    return sum(v[0] for v in vals) / len(vals), None, None


def gain_lines(M: dict[str, float], L: dict[str, Any]) -> list[str]:
    """Did training work? Each expert against the base on its own domain, and the mixed model against the base per
    domain (Δ points with the paired 95% interval; a gain when the interval lies above 0)."""
    if not L.get("transfer"):
        return []
    lines = []
    experts = [(m, d) for m, p, d, _ in L["models"] if p == "single" and d]
    own = [(m, d, _domain_gain(M, L, m, d)) for m, d in experts]
    own = [(m, d, g) for m, d, g in own if g is not None]
    if own:
        wins = sum(1 for _, _, g in own if g[1] is not None and g[1] > 0)
        lines.append(
            f"Experts on their own domain: {wins} of {len(own)} beat the base (interval above 0): "
            + "; ".join(f"{d} {pts(*g)}" for _, d, g in own) + "."
        )
    mixed = next((m for m, p, _, _ in L["models"] if p == "mix"), None)
    if mixed is not None:
        domains = list(dict.fromkeys(d for _, d in L["benchmarks"]))
        per = [(d, _domain_gain(M, L, mixed, d)) for d in domains]
        per = [(d, g) for d, g in per if g is not None]
        if per:
            wins = [d for d, g in per if g[1] is not None and g[1] > 0]
            lines.append(
                f"The mixed model beats the base on {len(wins)} of {len(per)} domains"
                + (f" ({', '.join(wins)})" if wins else "") + ": " + "; ".join(f"{d} {pts(*g)}" for d, g in per) + "."
            )
    return lines


def paradigms_table(M: dict[str, float], L: dict[str, Any]) -> Table | None:
    """The paradigms side by side: one column each (its model), pairwise differences, best and cheapest."""
    p = L.get("paradigms")
    if not p:
        return None
    labels = list(p["models"])
    pairs = [(a, b) for a, b, _ in p["scopes"][0][4]] if p["scopes"] else []
    rows, bold = [], set()
    for r, (scope, best, within, cheapest, _) in enumerate(p["scopes"]):
        cells = [pct_ci(M.get(mkey("paradigms", scope, lab)), M.get(mkey("paradigms", scope, lab, "lo")),
                        M.get(mkey("paradigms", scope, lab, "hi"))) for lab in labels]
        deltas = [pts(M.get(mkey("paradigms", scope, f"{a}-{b}")), M.get(mkey("paradigms", scope, f"{a}-{b}", "lo")),
                      M.get(mkey("paradigms", scope, f"{a}-{b}", "hi"))) for a, b in pairs]
        rows.append([scope, *cells, *deltas, best, ", ".join(within), cheapest or DASH])
        bold.add((r, 1 + labels.index(best)))
    rows.append(["cost", *[hours(M.get(mkey("paradigms", "cost", lab))) for lab in labels], *[""] * len(pairs), "", "",
                 ""])
    return Table("paradigms", "Three paradigms: accuracy (%, 95% CI), differences (points) and cost",
                 ["scope", *[f"{lab} ({p['models'][lab]})" for lab in labels], *[f"Δ {a} − {b}" for a, b in pairs],
                  "best", "within CI of best", "cheapest within CI"], rows, bold,
                 f"{p['bootstrap']} paired resamples over problems. Cost: mix its run, merge the single-domain runs, "
                 "distill its run plus the experts it distils.")


def paradigms_lines(M: dict[str, float], L: dict[str, Any]) -> list[str]:
    p = L.get("paradigms")
    if not p:
        return []
    lines = []
    for scope, best, within, cheapest, _ in p["scopes"]:
        score = pct_ci(M.get(mkey("paradigms", scope, best)), M.get(mkey("paradigms", scope, best, "lo")),
                       M.get(mkey("paradigms", scope, best, "hi")))
        others = [w for w in within if w != best]
        text = f"{scope}: best is {best} ({p['models'][best]}, {score} %)"
        text += f"; within its interval: {', '.join(others)}" if others else "; the others are significantly below it"
        if cheapest:
            text += f"; the cheapest of those is {cheapest}."
        lines.append(text if text.endswith(".") else text + ".")
    return ["Three paradigms (" + ", ".join(f"{lab}: {n}" for lab, n in p["models"].items()) + "):", *lines]


def build_tables(M: dict[str, float], L: dict[str, Any]) -> list[Table]:
    """Every table of the report that the numbers allow, in report order."""
    out = [verdict_table(M, L), paradigms_table(M, L), accuracy_table(M, L), merge_table(M, L), cost_table(M, L), transfer_table(M, L),
           norms_table(M, L),
           matrix_table(M, L, "cosine", "Cosine similarity of task vectors (exact)", "1 = same direction."),
           matrix_table(M, L, "cosine_projected", "Cosine similarity after a seeded random projection",
                        (L.get("geometry") or {}).get("projection", "")),
           matrix_table(M, L, "sign_agreement", "Sign agreement of task vectors",
                        "Share of positions changed by both models where the change has the same sign."),
           matrix_table(M, L, "overlap", "Update-footprint overlap (Jaccard of top-k% |tau| positions)",
                        f"k = {(L.get('geometry') or {}).get('top_percent')}%."),
           kl_table(M, L), kl_domain_table(M, L), kl_gain_table(M, L), inheritance_table(M, L), behaviour_table(M, L)]
    return [t for t in out if t is not None]
