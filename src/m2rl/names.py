"""The study's names and artifact layout, in one place: every stage, component, pipeline and CLI uses them.

Models of a study: `base` (the base model), `single-<domain>` (one GRPO run per domain, the experts),
`mix` (one GRPO run on the blend of every domain), `merge-<label>` (the experts merged by one method) and
`distill` (the base distilled on-policy from the expert of each prompt's domain).
Paradigms (the MLflow tag `m2rl.paradigm`): `base`, `single`, `mix`, `merge`, `distill`. The artifact layout under
the artifact root (a folder or an `s3://` prefix):

    data/train/<domain>.parquet, data/train/mix.parquet, data/eval/<domain>.parquet, data/data_card.json
    checkpoints/<model>/          periodic, resumable training checkpoints
    models/<model>/               final checkpoints (HF folders), merges included
    eval/<model>/                 metrics.json and <benchmark>/samples.parquet
    analysis/                     analysis.json and figures
    report/                       report.html, report.md
"""

from __future__ import annotations

from dataclasses import dataclass

from m2rl import storage

DOMAINS = ("math", "code", "science", "if", "agent")
BASE, MIX, DISTILL = "base", "mix", "distill"
SINGLE_PREFIX, MERGE_PREFIX = "single-", "merge-"
PARADIGMS = ("base", "single", "mix", "merge", "distill")
# The paradigms a study can be asked to run (`paradigms:` of the spec); the others come with them.
STUDY_PARADIGMS = ("mix", "merge", "distill")
PARADIGM_ORDER = {p: i for i, p in enumerate(PARADIGMS)}


def single_name(domain: str) -> str:
    """The expert of `domain`: `single-<domain>`."""
    return f"{SINGLE_PREFIX}{domain}"


def merge_name(label: str) -> str:
    """The merge labelled `label`: `merge-<label>`."""
    return f"{MERGE_PREFIX}{label}"


def run_model(run: str) -> str:
    """The model a training run produces: `mix` for the mixed run, else the domain's expert."""
    return MIX if run == MIX else single_name(run)


@dataclass(frozen=True)
class ModelName:
    """A parsed model name: its paradigm and, for an expert its domain, for a merge its label."""

    name: str
    paradigm: str
    domain: str | None = None
    merge_label: str | None = None

    @property
    def run(self) -> str | None:
        """The training run that produces this model (a domain or `mix`), None for base and merges."""
        return MIX if self.paradigm == "mix" else self.domain


def parse_model_name(name: str) -> ModelName | None:
    """`base`, `mix`, `single-<domain>`, `merge-<label>` parsed; None for a name outside the convention."""
    if name == BASE:
        return ModelName(name, "base")
    if name == MIX:
        return ModelName(name, "mix")
    if name == DISTILL:
        return ModelName(name, "distill")
    if name.startswith(SINGLE_PREFIX) and len(name) > len(SINGLE_PREFIX):
        return ModelName(name, "single", domain=name[len(SINGLE_PREFIX):])
    if name.startswith(MERGE_PREFIX) and len(name) > len(MERGE_PREFIX):
        return ModelName(name, "merge", merge_label=name[len(MERGE_PREFIX):])
    return None


def model_tags(name: str) -> dict[str, str]:
    """Tracking tags (paradigm, domain, merge_method) of a model name; {} outside the convention."""
    parsed = parse_model_name(name)
    if parsed is None:
        return {}
    tags = {"paradigm": parsed.paradigm}
    if parsed.domain:
        tags["domain"] = parsed.domain
    if parsed.merge_label:
        tags["merge_method"] = parsed.merge_label
    return tags


def study_models(domains: list[str] | tuple[str, ...], merge_labels: list[str], paradigms: list[str] | tuple[str, ...]) -> list[str]:
    """Every trained, merged or distilled model of a study, in pipeline order: experts, mix, merges, distill
    (base excluded)."""
    names = [single_name(d) for d in domains] if {"merge", "distill"} & set(paradigms) else []
    if "mix" in paradigms:
        names.append(MIX)
    if "merge" in paradigms:
        names += [merge_name(label) for label in merge_labels]
    if "distill" in paradigms:
        names.append(DISTILL)
    return names


@dataclass(frozen=True)
class Layout:
    """Where every stage reads and writes under the artifact root."""

    root: str

    @property
    def data(self) -> str:
        return storage.join(self.root, "data")

    def train_split(self, run: str, data: str | None = None) -> str:
        """Train records of a run (a domain, or `mix` for the blend) in the data folder `data`."""
        return storage.join(data or self.data, "train", f"{run}.parquet")

    def eval_split(self, domain: str, data: str | None = None) -> str:
        """Held-out records of a domain in the data folder `data`."""
        return storage.join(data or self.data, "eval", f"{domain}.parquet")

    @property
    def models(self) -> str:
        return storage.join(self.root, "models")

    def model(self, name: str) -> str:
        return storage.join(self.root, "models", name)

    def checkpoints(self, name: str) -> str:
        return storage.join(self.root, "checkpoints", name)

    def eval(self, name: str) -> str:
        return storage.join(self.root, "eval", name)

    @property
    def analysis(self) -> str:
        return storage.join(self.root, "analysis")

    @property
    def report(self) -> str:
        return storage.join(self.root, "report")
