"""The report: analysis.json -> report.html (self-contained) + report.md, logged to the study's MLflow run.

report.html has every figure embedded as a base64 PNG and inline CSS: no external asset, so it opens from
an artifact store or an e-mail. report.md carries the same tables and text and links the figures written
beside it under `figures/`. Both, analysis.json and the figures go to the parent run's artifacts under
`report/`; the key numbers go to its metrics (`acc/...`, `verdict/...`, `cost/...`, `geometry/...`) and the
winners to tags (`m2rl.verdict.<scope>`), so studies compare in the MLflow UI and `m2rl compare` rebuilds
the tables from MLflow alone.
"""

from __future__ import annotations

import base64
import html
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.analysis.figures import make_figures
from m2rl.analysis.stage import read_analysis
from m2rl.analysis.summary import flatten, layout_tags
from m2rl.analysis.tables import Table, build_tables, kl_gain_lines, verdict_lines

SECTIONS = (
    ("verdict", "Verdict", ["verdict", "paradigms"], []),
    ("accuracy", "Accuracy", ["accuracy"], ["accuracy"]),
    ("merge_methods", "Merge methods", ["merge_methods"], []),
    ("cost", "Cost", ["cost"], ["cost"]),
    ("transfer", "Cross-domain transfer", ["transfer"], ["transfer"]),
    ("geometry", "Weight-space geometry", ["norms", "cosine", "cosine_projected", "sign_agreement", "overlap"],
     ["norms", "cosine", "overlap"]),
    ("divergence", "Policy divergence", ["kl", "kl_domain", "kl_gain"], ["kl_vs_gain"]),
    ("inheritance", "Skill inheritance", ["inheritance"], []),
    ("behaviour", "Behaviour", ["behaviour"], ["behaviour"]),
)
INTRO = {
    "verdict": "Which paradigm wins per domain and on average, with 95% intervals, and at what cost.",
    "accuracy": "avg@k of every model on every benchmark, with the evaluate stage's 95% interval.",
    "merge_methods": "Every merge of the single-domain experts, against the mixed model and the experts.",
    "cost": "Training compute of every run, and mix against the sum of the single-domain runs a merge needs.",
    "transfer": "Δ accuracy over the base for every model and benchmark: train on the row, evaluate on the column.",
    "geometry": "Task vectors tau = theta - theta_base of the experts, the mixed model and the merges.",
    "divergence": "How far each policy moved from the base and from the experts, and whether moving further "
                  "bought accuracy.",
    "inheritance": "Per-problem agreement of the mixed / merged models with each domain's expert.",
    "behaviour": "Response lengths and how often (and where) the models check their own work.",
}
SECTION_ANALYSIS = {"cost": "cost", "transfer": "transfer", "geometry": "geometry", "divergence": "divergence",
                    "inheritance": "inheritance", "behaviour": "behaviour", "verdict": "verdict"}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;color:#222;
line-height:1.45;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
nav a{margin-right:1em}table{border-collapse:collapse;margin:.8em 0;font-size:13px}
caption{text-align:left;font-weight:600;padding:.3em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}
.note{color:#666;font-size:12px;margin-top:-.4em}.skipped{color:#a60;font-style:italic}
.verdict{background:#f4f8ff;border-left:4px solid #36c;padding:.6em 1em}
.finding{background:#f7f7f7;border-left:4px solid #999;padding:.3em 1em}figure{margin:1em 0}
#table-inputs td{text-align:left}figure img{max-width:100%}figcaption{color:#555;font-size:12px}.meta{color:#666;font-size:12px}
"""


@dataclass
class ReportResult:
    """Where the report went and what it holds."""

    out: str
    html: str
    markdown: str
    figures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None
    metrics_logged: int = 0


def _skipped(analysis: dict[str, Any], key: str) -> str | None:
    name = SECTION_ANALYSIS.get(key)
    if name is None:
        return None
    if name == "verdict":
        v = analysis.get("verdict") or {}
        return v.get("skipped") if v else "not computed"
    sec = (analysis.get("analyses") or {}).get(name)
    if sec is None:
        return "not in the spec's analysis list"
    return sec.get("skipped")


def _inputs_table(analysis: dict[str, Any]) -> Table:
    rows = [[m["name"], m["paradigm"], m.get("domain") or "", m.get("merge_method") or "", m["uri"],
             m.get("eval") or "", m.get("train_card") or ""] for m in analysis["models"]]
    return Table("inputs", "Models of the study", ["model", "paradigm", "domain", "merge method", "checkpoint",
                                                    "eval folder", "train card"], rows)


def render(analysis: dict[str, Any], figures: dict[str, tuple[str, bytes]]) -> tuple[str, str, list[Table], list[str]]:
    """(html, markdown, tables, verdict lines) of one analysis."""
    metrics, layout = flatten(analysis)
    tables = {t.key: t for t in build_tables(metrics, layout)}
    verdict = verdict_lines(metrics, layout)
    title = f"M2RL report — {analysis.get('study') or 'study'}"
    meta = (f"Created {analysis.get('created', '')}; {len(analysis['models'])} models, "
            f"{len(layout['benchmarks'])} benchmarks, metric {layout['metric']}.")
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
         f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p>",
         "<nav>" + "".join(f"<a href='#{k}'>{html.escape(t)}</a>" for k, t, _, _ in SECTIONS)
         + "<a href='#inputs'>Inputs</a></nav>"]
    md = [f"# {title}", "", meta, ""]
    for key, heading, table_keys, figure_keys in SECTIONS:
        h.append(f"<section id='{key}'><h2>{html.escape(heading)}</h2><p>{html.escape(INTRO[key])}</p>")
        md += [f"## {heading}", "", INTRO[key], ""]
        if key == "verdict":
            h.append("<div class='verdict'>" + "".join(f"<p>{html.escape(s)}</p>" for s in verdict) + "</div>")
            md += [f"> {s}" for s in verdict] + [""]
        if key == "divergence" and (findings := kl_gain_lines(metrics, layout)):
            h.append("<div class='finding'><p>" + html.escape(findings[0]) + "</p><ul>"
                     + "".join(f"<li>{html.escape(s)}</li>" for s in findings[1:]) + "</ul></div>")
            md += [findings[0], "", *[f"- {s}" for s in findings[1:]], ""]
        present = [tables[k] for k in table_keys if k in tables]
        reason = _skipped(analysis, key)
        if not present and reason:
            h.append(f"<p class='skipped'>Not available: {html.escape(reason)}</p>")
            md += [f"_Not available: {reason}_", ""]
        for t in present:
            h.append(t.to_html())
            md += [t.to_markdown(), ""]
        for f in figure_keys:
            if f in figures:
                caption, png = figures[f]
                data = base64.b64encode(png).decode()
                h.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
                md += [f"![{caption}](figures/{f}.png)", ""]
        h.append("</section>")
    inputs = _inputs_table(analysis)
    h.append(f"<section id='inputs'><h2>Inputs</h2>{inputs.to_html()}"
             f"<p class='meta'>Analysis settings: {html.escape(str(analysis.get('params')))}; "
             f"seconds: {html.escape(str(analysis.get('seconds')))}</p></section></body></html>")
    md += ["## Inputs", "", inputs.to_markdown(), "", f"Analysis settings: `{analysis.get('params')}`", ""]
    return "".join(h), "\n".join(md), list(tables.values()), verdict


def build_report(
    analysis_dir: str,
    out: str | None = None,
    *,
    parent_run_id: str | None = None,
    log_mlflow: bool = True,
) -> ReportResult:
    """Write report.html, report.md and figures/ under `out` (default: the analysis folder) and log them."""
    analysis = read_analysis(analysis_dir)
    out = str(out or (analysis_dir if not str(analysis_dir).endswith(".json") else Path(analysis_dir).parent))
    figures = make_figures(analysis)
    html_text, md_text, tables, verdict = render(analysis, figures)
    html_uri, md_uri = storage.join(out, "report.html"), storage.join(out, "report.md")
    for name, (_, png) in figures.items():
        storage.write_bytes(storage.join(out, "figures", f"{name}.png"), png)
    storage.write_text(md_uri, md_text)
    storage.write_text(html_uri, html_text)
    if not str(analysis_dir).endswith(".json") and storage.join(analysis_dir, "analysis.json") != storage.join(
            out, "analysis.json"):
        storage.write_text(storage.join(out, "analysis.json"), storage.read_text(storage.join(analysis_dir,
                                                                                            "analysis.json")))
    result = ReportResult(out=out, html=html_uri, markdown=md_uri, figures=sorted(figures),
                          tables=[t.key for t in tables], verdict=verdict)
    if log_mlflow:
        from m2rl import tracking

        run_id = parent_run_id or tracking.active_run_id()
        if run_id:
            result.metrics_logged = log_to_run(run_id, analysis, html_text, md_text, figures)
            result.mlflow_run_id = run_id
    return result


def log_to_run(run_id: str, analysis: dict[str, Any], html_text: str, md_text: str,
               figures: dict[str, tuple[str, bytes]]) -> int:
    """Log the report's numbers (metrics), layout and winners (tags) and files (artifacts) to one run."""
    import json

    from m2rl import tracking

    metrics, layout = flatten(analysis)
    tags = layout_tags(layout)
    v = layout.get("verdict")
    if v:
        for scope, winner, _ in v["scopes"]:
            tags[f"m2rl.verdict.{scope}"] = winner
        if v["b_label"] == "merge":
            tags["m2rl.best_merge"] = v["b"]
    logged = tracking.log_batch(metrics=metrics, tags=tags, run_id=run_id)
    with tempfile.TemporaryDirectory(prefix="m2rl-report-") as tmp:
        root = Path(tmp) / "report"
        (root / "figures").mkdir(parents=True)
        (root / "report.html").write_text(html_text, encoding="utf-8")
        (root / "report.md").write_text(md_text, encoding="utf-8")
        (root / "analysis.json").write_text(json.dumps(analysis, indent=1), encoding="utf-8")
        for name, (_, png) in figures.items():
            (root / "figures" / f"{name}.png").write_bytes(png)
        tracking.log_artifacts(str(root), "report", run_id=run_id)
    return logged
