"""The analysis stage: checkpoints + eval folders + train cards -> `analysis.json`.

`analyze(spec_or_params, models, base, evals, train_cards, out)`:
- spec_or_params: a `StudySpec` (its `analysis` section, domain order and `evaluate.bootstrap`), an
  `AnalysisSpec`, a mapping of AnalysisSpec fields, or None for the defaults; a mapping may also hold
  `options`: {analysis: {param: value}}, the typed Params of the analyses that have them (`m2rl list
  analysis`), validated before any work (an `options` mapping of the AnalysisSpec is read the same way);
- models: name -> {uri, paradigm, domain, merge_method} for every non-base model (names follow the artifact
  layout: single-<domain>, mix, merge-<label>; paradigm / domain / method are inferred from such names);
- base: the base model reference (folder, s3:// URI, or anything `m2rl.models.resolve_model` takes);
- evals: name -> eval folder URI for every evaluated model, the base under the name "base";
- train_cards: name -> train_card.json URI (or the checkpoint folder holding it);
- out: the folder (local or s3://) that receives `analysis.json`.

`analysis.json`: {version, created, params, options (the Params of every listed analysis that has them, with
defaults filled in), bootstrap, domains, models: [{name, uri, paradigm, domain, merge_method, eval, train_card}], accuracy,
verdict, analyses: {name: section | {"skipped": reason}}, seconds: {name: s}}. Every float is finite (None
where undefined).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from m2rl import storage
from m2rl.analysis.accuracy import accuracy_section, verdict_section
from m2rl.analysis.inputs import AnalysisError, EvalFolder, ModelEntry, load_train_card, order_models
from m2rl.analysis.registry import AnalysisContext, get_analysis
from m2rl.names import BASE, STUDY_PARADIGMS, Layout, merge_name, study_models
from m2rl.registry import ANALYSES
from m2rl.spec.analysis import AnalysisSpec

ANALYSIS_FILE = "analysis.json"
BASE_NAME = BASE


@dataclass
class AnalysisResult:
    """What the analysis stage wrote and found."""

    out: str
    analysis_path: str
    sections: dict[str, str] = field(default_factory=dict)  # analysis -> "ok" | "skipped: <reason>"
    verdict: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _params(spec_or_params: Any) -> tuple[AnalysisSpec, list[str] | None, int, dict[str, Any]]:
    """(analysis settings, domain order, bootstrap resamples, per-analysis options) of analyze()'s first argument."""
    from m2rl.spec import StudySpec

    if spec_or_params is None:
        return AnalysisSpec(), None, 1000, {}
    if isinstance(spec_or_params, StudySpec):
        a = spec_or_params.analysis
        return a, spec_or_params.domains, spec_or_params.evaluate.bootstrap, dict(a.options)
    if isinstance(spec_or_params, AnalysisSpec):
        return spec_or_params, None, 1000, dict(spec_or_params.options)
    if isinstance(spec_or_params, dict):
        data = dict(spec_or_params)
        bootstrap = int(data.pop("bootstrap", 1000))
        data.pop("study", None)
        domains = data.pop("domains", None)
        options = data.pop("options", None) or {}
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise AnalysisError("analysis.options: must map an analysis name to its parameters")
        try:
            return AnalysisSpec.model_validate(data), domains, bootstrap, options
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise AnalysisError(f"analysis.{where}: {first['msg']}") from None
    raise AnalysisError(f"spec_or_params: expected a StudySpec, AnalysisSpec or mapping, got {type(spec_or_params)}")


def study_name(spec_or_params: Any) -> str | None:
    from m2rl.spec import StudySpec

    if isinstance(spec_or_params, StudySpec):
        return spec_or_params.name
    if isinstance(spec_or_params, dict):
        return spec_or_params.get("study")
    return None


def build_context(
    spec_or_params: Any,
    models: dict[str, Any],
    base: str,
    evals: dict[str, str],
    train_cards: dict[str, str] | None = None,
    cache: str | Path | None = None,
) -> AnalysisContext:
    params, domains, bootstrap, options = _params(spec_or_params)
    for name in params.analyses:
        get_analysis(name)  # fails naming an unknown analysis before any work
    for name, given in options.items():
        if name not in params.analyses:
            raise AnalysisError(f"analysis.options.{name}: not an analysis the spec runs "
                                f"(analyses: {', '.join(params.analyses) or 'none'})")
        ANALYSES.parse_params(name, given, where=f"analysis.options.{name}")  # bad parameters fail here too
    entries = [ModelEntry.parse(n, v) for n, v in models.items()]
    base_entries = [e for e in entries if e.paradigm == "base"]
    entries = [e for e in entries if e.paradigm != "base"]
    base_entry = ModelEntry(name=BASE_NAME, uri=str(base), paradigm="base")
    if base_entries and not base:
        base_entry = ModelEntry(name=BASE_NAME, uri=base_entries[0].uri, paradigm="base")
    if not base_entry.uri:
        raise AnalysisError("base: the base model reference is required")
    if domains is None:
        domains = []
        for e in entries:
            if e.domain and e.domain not in domains:
                domains.append(e.domain)
    ordered = order_models(entries, domains)
    cache_path = Path(cache) if cache else None
    eval_folders: dict[str, EvalFolder] = {}
    known = {BASE_NAME, *(e.name for e in ordered)}
    for name, uri in (evals or {}).items():
        if name not in known:
            raise AnalysisError(f"evals.{name}: no such model (models: {', '.join(sorted(known))})")
        eval_folders[name] = EvalFolder.load(name, uri, cache_path)
    cards: dict[str, dict[str, Any]] = {}
    for name, uri in (train_cards or {}).items():
        cards[name] = load_train_card(name, uri)
    ctx = AnalysisContext(
        params=params, base=base_entry, models={e.name: e for e in ordered}, evals=eval_folders,
        train_cards=cards, domains=domains, bootstrap=bootstrap, cache=cache_path, options=options,
    )
    if eval_folders and not ctx.benchmarks():
        raise AnalysisError("evals: the eval folders share no benchmark")
    return ctx


def analyze(
    spec_or_params: Any,
    models: dict[str, Any],
    base: str,
    evals: dict[str, str],
    train_cards: dict[str, str] | None,
    out: str,
    *,
    cache: str | Path | None = None,
) -> AnalysisResult:
    """Run the registered analyses the spec lists and write `<out>/analysis.json` (see the module doc)."""
    ctx = build_context(spec_or_params, models, base, evals, train_cards, cache)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    ctx.accuracy = accuracy_section(ctx) if ctx.evals else {}
    seconds["accuracy"] = round(time.perf_counter() - t0, 3)
    sections: dict[str, dict[str, Any]] = {}
    for name in ctx.params.analyses:
        t0 = time.perf_counter()
        sections[name] = get_analysis(name)(ctx)
        seconds[name] = round(time.perf_counter() - t0, 3)
    cost = sections.get("cost")
    if cost is None and ctx.train_cards:
        cost = get_analysis("cost")(ctx)
    verdict = verdict_section(ctx, cost) if ctx.evals else {"skipped": "no evaluations"}
    doc = {
        "version": 1,
        "study": study_name(spec_or_params),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "params": ctx.params.model_dump(mode="json"),
        "options": {n: ctx.settings(n).model_dump(mode="json") for n in ctx.params.analyses
                    if ANALYSES.entry(n).params.model_fields},
        "bootstrap": ctx.bootstrap,
        "domains": ctx.domains,
        "models": [
            {"name": e.name, "uri": e.uri, "paradigm": e.paradigm, "domain": e.domain,
             "merge_method": e.merge_method, "eval": evals.get(e.name) if evals else None,
             "train_card": (train_cards or {}).get(e.name)}
            for e in [ctx.base, *ctx.models.values()]
        ],
        "accuracy": ctx.accuracy,
        "verdict": verdict,
        "analyses": sections,
        "seconds": seconds,
    }
    text = json.dumps(doc, indent=1, allow_nan=False)
    path = storage.join(out, ANALYSIS_FILE)
    storage.write_text(path, text)
    status = {n: ("skipped: " + s["skipped"]) if "skipped" in s else "ok" for n, s in sections.items()}
    return AnalysisResult(out=str(out), analysis_path=path, sections=status, verdict=verdict, seconds=seconds)


def read_analysis(analysis_dir: str) -> dict[str, Any]:
    """The analysis.json of a folder (or the file itself)."""
    path = analysis_dir if str(analysis_dir).endswith(".json") else storage.join(analysis_dir, ANALYSIS_FILE)
    try:
        return json.loads(storage.read_text(path))
    except storage.StorageError as exc:
        raise AnalysisError(f"analysis_dir: {exc}") from None
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"{path}: not JSON ({exc})") from None


def inputs_from_layout(spec: Any, artifact_root: str | None = None) -> dict[str, Any]:
    """analyze()'s inputs for a study that followed the artifact layout (models/, eval/ under the root)."""
    layout = Layout(artifact_root or spec.artifact_root)
    methods = {merge_name(m.label): m.method for m in spec.merge.methods}
    names = study_models(spec.domains, [m.label for m in spec.merge.methods], STUDY_PARADIGMS)
    models, evals, cards = {}, {}, {}
    for name in names:
        uri = layout.model(name)
        if not storage.exists(uri):
            continue
        entry: dict[str, Any] = {"uri": uri}
        if name in methods:
            entry["merge_method"] = methods[name]
        models[name] = entry
        card = storage.join(uri, "train_card.json")
        if storage.exists(card):
            cards[name] = card
    for name in [BASE_NAME, *models]:
        ev = layout.eval(name)
        if storage.exists(storage.join(ev, "metrics.json")):
            evals[name] = ev
    if not models and not evals:
        raise AnalysisError(f"artifact_root: nothing to analyse under {layout.root} (no models/ nor eval/ folders)")
    return {"models": models, "base": spec.base_model, "evals": evals, "train_cards": cards}
