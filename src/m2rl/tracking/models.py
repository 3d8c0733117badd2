"""Every checkpoint of a study as an MLflow LoggedModel, and the study's verdict in the Model Registry.

A study model (`base`, `single-<domain>`, `mix`, `merge-<label>`, `distill`, see `m2rl.names`) is one
*external* LoggedModel of the study's experiment: it points at its checkpoint (`m2rl.checkpoint`: the folder
in the artifact root, or the base model's reference) and no weights are copied. Its tags are the run tags of
the model (`m2rl.paradigm`, `m2rl.domain`, `m2rl.merge_method`, derived from the name as for runs), the study
and the parent run it belongs to (`m2rl.study`, `m2rl.study_run`), the models it was built from
(`m2rl.parents`); its params are the figures of the stage's card (train card: steps, records, device,
gpu_hours ...; merge card: method, parameters, dtype ...). Its metrics: `cost/gpu_hours` (its own run),
`cost/total_gpu_hours` (its own plus its parents': what it cost to get), and every `eval/<benchmark>/<metric>`
of its evaluation, with the benchmark's dataset. So the experiment's Models tab lists the study's models side
by side, filtered by `tags.m2rl.study_run`.

A train or merge stage begins its model PENDING (`begin_model`; the metrics the stage logs meanwhile belong to
it) and finishes it READY or FAILED (`finish_model`); an evaluation uses the model of its study
(`ensure_model` creates it when the checkpoint's stage did not, e.g. the base model). A rerun of a stage under
the same parent run replaces that model (the earlier one is deleted; registered versions stay).

With `tracking.register: true` the study's recommended model (`recommend`: the verdict's winner on average,
the cheaper of the two when their difference is within the interval) is registered under the study's name
with the report attached and the alias `@recommended` (`register_recommended`); a rerun moves the alias to the
version of the new recommendation and deletes no version.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from m2rl.names import model_tags
from m2rl.tracking.config import TAG_DOMAIN, TAG_METHOD, TAG_MODEL, TAG_PARADIGM, TAG_STUDY
from m2rl.tracking.datasets import SAMPLES_TABLE
from m2rl.tracking.log import log_batch

TAG_STUDY_RUN, TAG_CHECKPOINT, TAG_PARENTS = "m2rl.study_run", "m2rl.checkpoint", "m2rl.parents"
TAG_RECOMMENDED_BECAUSE = "m2rl.recommended_because"
GPU_HOURS, TOTAL_GPU_HOURS = "cost/gpu_hours", "cost/total_gpu_hours"
MODEL_TYPE = "m2rl-checkpoint"
ALIAS = "recommended"
MAX_PARAMS, MAX_PARAM_CHARS = 100, 500
# Card entries that are no figure of the model (curves, per-step lists, ids) and stay out of its params.
_CARD_SKIP = {"reward_curve", "step_checkpoints", "mlflow_run_id", "models", "index"}


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()  # a client binds the tracking URI current at its creation


def _q(value: str) -> str:
    return value.replace("'", "\\'")


def model_tag_values(name: str) -> dict[str, str]:
    """The m2rl tags of a model name: paradigm, domain, merge method (as its runs carry them) and the name."""
    derived = model_tags(name)
    tags = {TAG_MODEL: name}
    for key, tag in (("paradigm", TAG_PARADIGM), ("domain", TAG_DOMAIN), ("merge_method", TAG_METHOD)):
        if derived.get(key):
            tags[tag] = derived[key]
    return tags


def card_params(card: Mapping[str, Any]) -> dict[str, str]:
    """The figures of a stage card as LoggedModel params: scalars, lists of scalars (joined) and one level of
    nested dicts (`params.density`, `domain_counts.math`), at most MAX_PARAMS, values cut to MAX_PARAM_CHARS."""
    out: dict[str, str] = {}

    def put(key: str, v: Any) -> None:
        if isinstance(v, bool | int | float | str) and len(out) < MAX_PARAMS:
            out[key] = str(v)[:MAX_PARAM_CHARS]
        elif isinstance(v, list) and all(isinstance(x, bool | int | float | str) for x in v) and len(out) < MAX_PARAMS:
            out[key] = ",".join(map(str, v))[:MAX_PARAM_CHARS]

    for k, v in card.items():
        if k in _CARD_SKIP or v is None:
            continue
        if isinstance(v, Mapping):
            for k2, v2 in v.items():
                put(f"{k}.{k2}", v2)
        else:
            put(k, v)
    return out


def study_models(parent_run_id: str, experiment_id: str | None = None, *, name: str | None = None) -> list[Any]:
    """The LoggedModels of the study whose parent run is `parent_run_id` (of one model `name`), oldest first."""
    import mlflow

    exp = experiment_id or mlflow.get_run(parent_run_id).info.experiment_id
    query = f"tags.`{TAG_STUDY_RUN}` = '{_q(parent_run_id)}'"
    if name is not None:
        query += f" AND tags.`{TAG_MODEL}` = '{_q(name)}'"
    found = mlflow.search_logged_models(experiment_ids=[exp], filter_string=query, output_format="list")
    return sorted(found, key=lambda m: m.creation_timestamp or 0)


def find_model(parent_run_id: str, name: str, experiment_id: str | None = None) -> Any | None:
    """The newest READY LoggedModel of model `name` in the study of `parent_run_id`, if any."""
    ready = [m for m in study_models(parent_run_id, experiment_id, name=name) if str(m.status) == "READY"]
    return ready[-1] if ready else None


def begin_model(name: str, checkpoint: str, *, parent_run_id: str, run_id: str, parents: Iterable[str] = (),
                source_run_id: str | None = None) -> str:
    """A PENDING external LoggedModel for the checkpoint `checkpoint` that run `run_id` is about to write (its
    source run, which records it as an output) or, with `source_run_id`, that exists already (the base model:
    the parent run); earlier models of `name` in the study are deleted. Returns its id."""
    import mlflow
    from mlflow.entities import LoggedModelOutput
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_IS_EXTERNAL

    client = _client()
    parent = client.get_run(parent_run_id)
    exp = parent.info.experiment_id
    for old in study_models(parent_run_id, exp, name=name):
        client.delete_logged_model(old.model_id)
    all_tags = {**model_tag_values(name), TAG_STUDY_RUN: parent_run_id, TAG_CHECKPOINT: checkpoint,
                TAG_PARENTS: ",".join(parents), MLFLOW_MODEL_IS_EXTERNAL: "true"}
    if parent.data.tags.get(TAG_STUDY):
        all_tags[TAG_STUDY] = parent.data.tags[TAG_STUDY]
    model = mlflow.initialize_logged_model(name=name, source_run_id=source_run_id or run_id, tags=all_tags,
                                           model_type=MODEL_TYPE, experiment_id=exp)
    if source_run_id is None:
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    return model.model_id


def finish_model(model_id: str, *, run_id: str, card: Mapping[str, Any] | None = None, ok: bool = True) -> Any:
    """End a model begun by `begin_model`: FAILED (`ok` False), else its card's figures as params, its cost
    metrics (logged into `run_id`), the MLmodel file that lets the registry take it, and READY."""
    from mlflow.entities import Metric
    from mlflow.models.model import MLMODEL_FILE_NAME
    from mlflow.models.utils import get_external_mlflow_model_spec

    client = _client()
    if not ok:
        return client.finalize_logged_model(model_id, "FAILED")
    model = client.get_logged_model(model_id)
    card = dict(card or {})
    params = card_params(card)
    if params:
        client.log_model_params(model_id, params)
    have = {m.key for m in model.metrics or []}
    own = card.get("gpu_hours")
    parents = [p for p in model.tags.get(TAG_PARENTS, "").split(",") if p]
    parent_run = model.tags.get(TAG_STUDY_RUN)
    inherited = 0.0
    for p in parents:
        pm = find_model(parent_run, p, model.experiment_id) if parent_run else None
        inherited += _metric(pm, TOTAL_GPU_HOURS) or 0.0
    now, history = int(time.time() * 1000), []
    if isinstance(own, int | float) and GPU_HOURS not in have:
        history.append(Metric(GPU_HOURS, float(own), now, 0, model_id=model_id))
    if isinstance(own, int | float) or parents:  # the base model (no run, no parents) has no cost of its own
        total = inherited + (float(own) if isinstance(own, int | float) else 0.0)
        history.append(Metric(TOTAL_GPU_HOURS, total, now, 0, model_id=model_id))
    log_batch(history=history, run_id=run_id)
    with tempfile.TemporaryDirectory(prefix="m2rl-model-") as tmp:
        get_external_mlflow_model_spec(model).save(str(Path(tmp) / MLMODEL_FILE_NAME))
        client.log_model_artifacts(model_id, tmp)
    return client.finalize_logged_model(model_id, "READY")


def ensure_model(name: str, checkpoint: str, *, parent_run_id: str, run_id: str,
                 card: Mapping[str, Any] | None = None, parents: Iterable[str] = (),
                 source_run_id: str | None = None) -> str:
    """The id of the study's READY model `name`, created when there is none (as `begin_model` and `finish_model`
    do, its cost metrics logged into `run_id`)."""
    found = find_model(parent_run_id, name)
    if found is not None:
        return found.model_id
    model_id = begin_model(name, checkpoint, parent_run_id=parent_run_id, run_id=run_id, parents=parents,
                           source_run_id=source_run_id)
    return finish_model(model_id, run_id=run_id, card=card).model_id


def _metric(model: Any | None, key: str) -> float | None:
    """The latest value of a LoggedModel's metric `key` (any dataset), if it has one."""
    vals = [m for m in (model.metrics or []) if m.key == key] if model is not None else []
    return max(vals, key=lambda m: (m.timestamp, m.step)).value if vals else None


def model_metrics(model: Any) -> dict[str, float]:
    """A LoggedModel's metrics, key -> latest value."""
    out: dict[str, tuple[int, float]] = {}
    for m in model.metrics or []:
        if m.key not in out or m.timestamp >= out[m.key][0]:
            out[m.key] = (m.timestamp, m.value)
    return {k: v for k, (_, v) in out.items()}


def recommend(verdict: Mapping[str, Any], models: Mapping[str, Any]) -> tuple[str, str] | None:
    """(model name, why) of the study's recommendation from the analysis' verdict: where it ranks the paradigms
    (`paradigms`: on average the best, those within its 95% interval and the cheapest of them) that cheapest
    one's model; else (`a` against `b`, a winner per scope) the winner on average, or when their difference is
    within the interval the one of the two with the fewer `cost/total_gpu_hours` (`models`: name -> its
    LoggedModel). None without a verdict on average."""
    ranked = verdict.get("paradigms") or {}
    prow = next((r for r in ranked.get("rows") or [] if r.get("scope") == "average"), None)
    if prow and prow.get("cheapest_within_ci") in (ranked.get("models") or {}):
        paradigm = prow["cheapest_within_ci"]
        hours = (ranked.get("cost") or {}).get(paradigm)
        return ranked["models"][paradigm], (
            f"{ranked['models'][paradigm]} ({paradigm}): on average the best is {prow.get('best')}, within its 95% "
            f"interval {', '.join(prow.get('within_ci_of_best') or [])}; {paradigm} is the cheapest of those"
            + (f" ({hours:.4g} GPU-hours)" if isinstance(hours, int | float) else ""))
    row = next((r for r in verdict.get("rows") or [] if r.get("scope") == "average"), None)
    if not row or "a" not in verdict or "b" not in verdict:
        return None
    a, b = verdict["a"], verdict["b"]
    lo, hi = (row.get("delta_ci") or [None, None])[:2]
    ci = f"Δ {row.get('delta', 0) * 100:+.1f} points, 95% CI [{(lo or 0) * 100:+.1f}, {(hi or 0) * 100:+.1f}]"
    for side in (a, b):
        if row.get("winner") == side["label"]:
            return side["model"], f"{side['model']} ({side['label']}) wins on average: {ci}"
    cost = {s["model"]: _metric(models.get(s["model"]), TOTAL_GPU_HOURS) for s in (a, b)}
    cheaper = min((a, b), key=lambda s: (cost[s["model"]] is None, cost[s["model"]] or 0.0))
    other = b if cheaper is a else a
    hours = "unknown" if cost[cheaper["model"]] is None else f"{cost[cheaper['model']]:.4g}"
    return cheaper["model"], (f"{a['model']} and {b['model']} are within the 95% interval on average ({ci}); "
                              f"{cheaper['model']} is the cheaper ({hours} GPU-hours, {other['model']}: "
                              f"{cost[other['model']] if cost[other['model']] is not None else 'unknown'})")


def register_recommended(registered_name: str, model: Any, *, why: str, report_dir: str | None = None,
                         alias: str = ALIAS) -> Any:
    """Register LoggedModel `model` under `registered_name` (created when missing) with the alias `alias`: its
    existing version when it has one, else a new version whose description says why; the report folder's
    files are attached to the model (artifacts under `report/`). Returns the ModelVersion. Versions of
    earlier recommendations stay; the alias moves."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        client.get_registered_model(registered_name)
    except MlflowException:
        client.create_registered_model(registered_name, description="The recommended model of the M2RL study "
                                       f"{registered_name!r} (alias @{alias}): mix, merge or distill.")
    if report_dir is not None and Path(report_dir).is_dir():
        client.log_model_artifacts(model.model_id, report_dir, artifact_path="report")
    versions = client.search_model_versions(f"name = '{_q(registered_name)}'")
    uri = f"models:/{model.model_id}"  # the REST registry does not return a version's model_id; its source
    version = next((v for v in versions if v.source == uri or getattr(v, "model_id", None) == model.model_id), None)
    if version is None:
        version = client.create_model_version(
            registered_name, source=uri, run_id=model.source_run_id, model_id=model.model_id, description=why,
            tags={TAG_RECOMMENDED_BECAUSE: why[:5000], TAG_MODEL: model.name,
                  TAG_STUDY_RUN: model.tags.get(TAG_STUDY_RUN, ""), TAG_PARADIGM: model.tags.get(TAG_PARADIGM, "")})
    _link_version(client, model.model_id, registered_name, str(version.version))
    client.set_registered_model_alias(registered_name, alias, version.version)
    return client.get_model_version(registered_name, version.version)


def _link_version(client: Any, model_id: str, name: str, version: str) -> None:
    """The version in the LoggedModel's `mlflow.modelVersions` tag (the Models tab's "Registered models"),
    once: a tracking server records it itself, a local store does not (`mlflow.register_model` would add it
    a second time there)."""
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    try:
        linked = json.loads(client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
    except json.JSONDecodeError:
        linked = []
    if not any(v.get("name") == name and str(v.get("version")) == version for v in linked if isinstance(v, dict)):
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(
            [*linked, {"name": name, "version": int(version) if version.isdigit() else version}])})


def study_note(parent_run_id: str, *, study: str, verdict: list[str] | None = None,
               recommended: str | None = None) -> str:
    """The parent run's description (markdown): where the report is and how to put the study's models side by
    side in the MLflow UI."""
    import mlflow

    experiment_id = mlflow.get_run(parent_run_id).info.experiment_id
    lines = [f"**M2RL study `{study}`**: which is better, one model trained on the mix of domains or the "
             "single-domain experts merged (or distilled)?", ""]
    if verdict:
        lines += [f"> {v}" for v in verdict] + [""]
    if recommended:
        lines += [f"Recommended: **{recommended}** (best within the 95% interval, cheapest; with "
                  f"`tracking.register: true` it is `models:/<registered model>@{ALIAS}` in the Model Registry).", ""]
    lines += [
        "**Compare mix, merges and distill**: open this experiment's **Models** tab (the UI's *Model training* "
        "mode). Each row is one model of the study (base, experts, mix, every merge, distill), tagged with its "
        "paradigm, domain, merge method and parents; under **Columns** keep `eval/<benchmark>/avg_at_k` of each "
        "dataset (per domain: `eval/domain_<domain>/avg_at_k`) and `cost/total_gpu_hours`, and they stand side by "
        "side. This study's models are those with",
        "", f"    tags.`{TAG_STUDY_RUN}` = '{parent_run_id}'", "",
        "(`mlflow.search_logged_models(filter_string=...)` with it, for an experiment that holds several studies).",
        "",
        f"The report: artifacts of this run, `report/report.html` (`#/experiments/{experiment_id}/runs/"
        f"{parent_run_id}/artifacts`). The per-sample results of each model: the `{SAMPLES_TABLE}` table of "
        "its `evaluate/<model>` run.",
    ]
    return "\n".join(lines)


def describe_study(parent_run_id: str, note: str) -> None:
    """Set the parent run's description (the MLflow UI's run description)."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

    log_batch(tags={MLFLOW_RUN_NOTE: note}, run_id=parent_run_id)


def study_model_rows(experiment_id: str, tracking_uri: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every READY study model of an experiment (at `tracking_uri`, default MLflow's) as plain rows, by study
    parent run id: name, paradigm, domain, merge_method, parents, metrics (key -> latest value), params,
    model_id (what `m2rl compare` reads)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found, token = [], None
    while True:
        page = client.search_logged_models([experiment_id], filter_string=f"tags.`{TAG_STUDY_RUN}` LIKE '%'",
                                           max_results=100, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            break
    out: dict[str, list[dict[str, Any]]] = {}
    for m in sorted(found, key=lambda m: m.creation_timestamp or 0):
        if str(m.status) != "READY" or not m.tags.get(TAG_STUDY_RUN):
            continue
        out.setdefault(m.tags[TAG_STUDY_RUN], []).append({
            "name": m.tags.get(TAG_MODEL, m.name), "paradigm": m.tags.get(TAG_PARADIGM),
            "domain": m.tags.get(TAG_DOMAIN), "merge_method": m.tags.get(TAG_METHOD),
            "parents": [p for p in m.tags.get(TAG_PARENTS, "").split(",") if p], "metrics": model_metrics(m),
            "params": dict(m.params or {}), "model_id": m.model_id, "created": m.creation_timestamp or 0,
        })
    return out

