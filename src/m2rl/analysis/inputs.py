"""Inputs of the analysis stage: models, eval folders and train cards, read in their contract formats.

Eval folder (evaluate stage): `metrics.json` {"model", "benchmarks": {bench: {"avg_at_k", "pass_at_<k>",
"maj_at_k", "ci_low", "ci_high", "n_problems", "k", "domain", "sampling"}}} and `<bench>/samples.parquet`
(problem_id, sample_index, domain, prompt, response, score, details, answer). Train card (train stage): `train_card.json`
{run, paradigm, domains, steps, wall_seconds, device, num_devices, gpu_hours, reward_curve, backend}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.names import PARADIGM_ORDER, parse_model_name

SAMPLE_COLUMNS = ("problem_id", "sample_index", "domain", "prompt", "response", "score")
# The headline metric of every table (Avg@K); the evaluate stage writes it as "avg_at_k" (MLflow names cannot
# hold '@'); the other spellings are accepted from hand-written metrics files.
HEADLINE = "avg@k"
HEADLINE_ALIASES = ("avg_at_k", "avg@k", "avg_k", "avg")


class AnalysisError(ValueError):
    """Inputs the analysis cannot use; the message names the model, file or field."""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the study: where its checkpoint is and what produced it."""

    name: str
    uri: str
    paradigm: str
    domain: str | None = None
    merge_method: str | None = None

    @classmethod
    def parse(cls, name: str, value: Any) -> ModelEntry:
        if isinstance(value, ModelEntry):
            return value
        if isinstance(value, str):
            value = {"uri": value}
        if not isinstance(value, dict) or not value.get("uri"):
            raise AnalysisError(f"models.{name}: needs a mapping with a `uri` (got {value!r})")
        paradigm = value.get("paradigm") or infer_paradigm(name)
        if paradigm not in PARADIGM_ORDER:
            raise AnalysisError(f"models.{name}.paradigm: must be one of {', '.join(PARADIGM_ORDER)}, got {paradigm!r}")
        parsed = parse_model_name(name)
        domain = value.get("domain")
        if paradigm == "single" and not domain:
            domain = parsed.domain if parsed else None
            if not domain:
                raise AnalysisError(f"models.{name}.domain: a single-domain expert needs its domain")
        method = value.get("merge_method")
        if paradigm == "merge" and not method:
            method = (parsed.merge_label if parsed else None) or name
        return cls(name=name, uri=str(value["uri"]), paradigm=paradigm, domain=domain, merge_method=method)


def infer_paradigm(name: str) -> str:
    """Paradigm from the artifact naming convention: base, single-<domain>, mix, merge-<label>, distill."""
    parsed = parse_model_name(name)
    if parsed is not None:
        return parsed.paradigm
    raise AnalysisError(f"models.{name}: cannot infer its paradigm from the name; set `paradigm`")


def order_models(entries: list[ModelEntry], domains: list[str] | None = None) -> list[ModelEntry]:
    """Base, then experts in domain order, then mix, then merges, then distill (stable by name)."""
    rank = {d: i for i, d in enumerate(domains or [])}
    return sorted(entries, key=lambda e: (PARADIGM_ORDER[e.paradigm], rank.get(e.domain or "", 99), e.name))


def headline(bench_metrics: dict[str, Any]) -> float | None:
    """The avg@k value of one benchmark's metrics, whatever spelling the writer used."""
    for key in HEADLINE_ALIASES:
        if key in bench_metrics and bench_metrics[key] is not None:
            return float(bench_metrics[key])
    return None


def _local_folder(uri: str, what: str, cache: Path | None) -> Path:
    try:
        return storage.fetch_dir(uri, cache)
    except storage.StorageError as exc:
        raise AnalysisError(f"{what}: {exc}") from None


@dataclass
class EvalFolder:
    """One model's eval outputs: metrics per benchmark and lazily read per-sample tables."""

    name: str
    uri: str
    folder: Path
    benchmarks: dict[str, dict[str, Any]]
    _samples: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, name: str, uri: str, cache: Path | None = None) -> EvalFolder:
        folder = _local_folder(uri, f"evals.{name}", cache)
        path = folder / "metrics.json"
        if not path.is_file():
            raise AnalysisError(f"evals.{name}: {uri} has no metrics.json")
        try:
            data = json.loads(path.read_text())
            benchmarks = data["benchmarks"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise AnalysisError(f"evals.{name}: {path} is not a metrics.json ({exc})") from None
        if not isinstance(benchmarks, dict):
            raise AnalysisError(f"evals.{name}: {path}: `benchmarks` must be a mapping")
        for bench, m in benchmarks.items():
            if not isinstance(m, dict) or headline(m) is None:
                raise AnalysisError(f"evals.{name}: {path}: benchmark {bench!r} has no avg_at_k (Avg@K)")
        return cls(name=name, uri=uri, folder=folder, benchmarks=benchmarks)

    def accuracy(self, bench: str) -> float | None:
        m = self.benchmarks.get(bench)
        return headline(m) if m else None

    def has_samples(self, bench: str) -> bool:
        return (self.folder / bench / "samples.parquet").is_file()

    def samples(self, bench: str):
        """The benchmark's samples as a pandas DataFrame (contract columns), cached."""
        if bench not in self._samples:
            import pyarrow.parquet as pq

            path = self.folder / bench / "samples.parquet"
            if not path.is_file():
                raise AnalysisError(f"evals.{self.name}: no {bench}/samples.parquet in {self.uri}")
            try:
                table = pq.read_table(path)
            except Exception as exc:
                raise AnalysisError(f"evals.{self.name}: {path}: unreadable parquet ({exc})") from None
            missing = [c for c in ("problem_id", "sample_index", "score") if c not in table.column_names]
            if missing:
                raise AnalysisError(f"evals.{self.name}: {path}: missing columns {', '.join(missing)}")
            df = table.to_pandas()
            df["problem_id"] = df["problem_id"].astype(str)
            df["score"] = df["score"].astype(float)
            self._samples[bench] = df
        return self._samples[bench]

    def problem_scores(self, bench: str) -> dict[str, float]:
        """Mean score over the k samples of every problem (the per-problem avg@k)."""
        df = self.samples(bench)
        return {str(k): float(v) for k, v in df.groupby("problem_id", sort=True)["score"].mean().items()}


def load_train_card(name: str, uri: str) -> dict[str, Any]:
    """A train card from its JSON URI (or the checkpoint folder holding `train_card.json`)."""
    if not uri.endswith(".json"):
        uri = storage.join(uri, "train_card.json")
    try:
        card = json.loads(storage.read_text(uri))
    except storage.StorageError as exc:
        raise AnalysisError(f"train_cards.{name}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"train_cards.{name}: {uri} is not JSON ({exc})") from None
    if not isinstance(card, dict):
        raise AnalysisError(f"train_cards.{name}: {uri} must hold a JSON object")
    for key in ("gpu_hours",):
        if not isinstance(card.get(key), int | float):
            raise AnalysisError(f"train_cards.{name}: {uri}: `{key}` must be a number")
    card.setdefault("paradigm", "mix" if card.get("run") == "mix" else "single")
    card.setdefault("device", "gpu")
    card.setdefault("num_devices", 1)
    return card
