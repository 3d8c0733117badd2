"""The study's data as MLflow datasets (`mlflow.log_input`), and an evaluation's samples as an MLflow table.

A dataset is named for what it is in the study (`train/<domain>`, `train/mix`, `eval/<domain>`, or a
benchmark's own name when it reads its own data), points at its file (`source`: the URI in the artifact root,
nothing is copied) and has a digest of the file's bytes (its md5, or the S3 ETag: computed once per file, so
the data run, the train run and the evaluate run that use one file name the same dataset). Its profile holds
the counts. The data run records every split it wrote; a train run the split it trained on; an evaluate run
the datasets of its benchmarks (`m2rl.workflow.glue`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from m2rl import storage

CONTEXT_TRAIN, CONTEXT_EVAL = "training", "evaluation"
SAMPLES_TABLE = "eval_samples.json"
MAX_TABLE_ROWS = 2000  # rows of the samples table, over all benchmarks of one evaluation
MAX_TEXT_CHARS = 2000  # characters kept of each response / reason


def _digest(uri: str) -> str:
    """A short digest of a file's bytes (a folder: of its files' names, sizes and digests)."""
    if storage.exists(uri):
        size, md5 = storage.file_info(uri)
        return (md5 or hashlib.sha256(f"{uri}:{size}".encode()).hexdigest())[:16]
    files = storage.list_files(uri)
    if not files:
        raise FileNotFoundError(f"{uri}: no such file or folder (a dataset's source)")
    h = hashlib.sha256()
    for f in sorted(files):
        size, md5 = storage.file_info(storage.join(uri, f))
        h.update(f"{f}:{size}:{md5}\n".encode())
    return h.hexdigest()[:16]


def dataset(name: str, source: str, profile: Mapping[str, Any] | None = None, *, digest: str | None = None,
            source_type: str | None = None) -> Any:
    """An `mlflow.entities.Dataset` for the file (or folder) at `source` (`digest` default: of its bytes,
    `source_type` default: s3 or local). A source that is not a file (a hub dataset) gives both."""
    from mlflow.entities import Dataset

    source_type = source_type or ("s3" if storage.is_s3(source) else "local")
    return Dataset(name=name, digest=digest or _digest(source), source_type=source_type,
                   source=json.dumps({"uri": source}), profile=json.dumps(dict(profile or {}), default=str))


def spec_digest(doc: Any) -> str:
    """A digest for a dataset known only by its description (a hub benchmark): of the description's JSON."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def log_datasets(run_id: str, datasets: Sequence[tuple[Any, str]], models: Sequence[str] = ()) -> None:
    """Record (dataset, context) pairs, and LoggedModels (ids) it read, as inputs of run `run_id`; a dataset
    already recorded (same name and digest) is not repeated."""
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput, InputTag, LoggedModelInput
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    client = MlflowClient()
    run = client.get_run(run_id)
    have = {(i.dataset.name, i.dataset.digest) for i in (run.inputs.dataset_inputs if run.inputs else [])}
    have_models = {i.model_id for i in (run.inputs.model_inputs or [] if run.inputs else [])}
    inputs, seen = [], set(have)
    for ds, context in datasets:
        if (ds.name, ds.digest) in seen:
            continue
        seen.add((ds.name, ds.digest))
        inputs.append(DatasetInput(ds, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    model_inputs = [LoggedModelInput(m) for m in dict.fromkeys(models) if m not in have_models]
    if inputs or model_inputs:
        client.log_inputs(run_id, datasets=inputs or None, models=model_inputs or None)


def run_datasets(run_id: str) -> dict[str, tuple[Any, str]]:
    """The datasets a run recorded as inputs, name -> (dataset, context); {} for a run that is gone."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        return {}
    out = {}
    for i in run.inputs.dataset_inputs if run.inputs else []:
        context = next((t.value for t in i.tags if t.key == MLFLOW_DATASET_CONTEXT), CONTEXT_TRAIN)
        out[i.dataset.name] = (i.dataset, context)
    return out


def data_datasets(data_uri: str, card: Mapping[str, Any], layout: Any) -> dict[str, tuple[Any, str]]:
    """The data stage's outputs as datasets, from its data card: `train/<domain>` and `eval/<domain>` of each
    domain, `train/mix` (the blend, with its shares). Name -> (dataset, context)."""
    out: dict[str, tuple[Any, str]] = {}
    domains = card.get("domains") or {}
    for d, counts in domains.items():
        for split, context, uri in (("train", CONTEXT_TRAIN, layout.train_split(d, data_uri)),
                                    ("eval", CONTEXT_EVAL, layout.eval_split(d, data_uri))):
            if counts.get(split) and storage.exists(uri):
                profile = {"num_rows": counts.get(split), "domain": d,
                           **{k: v for k, v in counts.items() if isinstance(v, int | float) and k != split}}
                out[f"{split}/{d}"] = (dataset(f"{split}/{d}", uri, profile), context)
    mix = card.get("mix") or {}
    uri = layout.train_split("mix", data_uri)
    if mix.get("total") and storage.exists(uri):
        profile = {"num_rows": mix["total"], "balance": mix.get("balance"), "counts": mix.get("counts"),
                   "shares": mix.get("shares")}
        out["train/mix"] = (dataset("train/mix", uri, profile), CONTEXT_TRAIN)
    return out


def _reason(details: str) -> str:
    try:
        doc = json.loads(details) if details else {}
    except json.JSONDecodeError:
        return details[:MAX_TEXT_CHARS]
    if isinstance(doc, dict) and isinstance(doc.get("reason"), str):
        return doc["reason"][:MAX_TEXT_CHARS]
    return json.dumps(doc, default=str, ensure_ascii=False)[:MAX_TEXT_CHARS] if doc else ""


def samples_frame(samples: Mapping[str, str], max_rows: int = MAX_TABLE_ROWS) -> Any:
    """One pandas DataFrame of per-sample results of an evaluation (benchmark -> samples.parquet URI): columns
    benchmark, problem_id, sample_index, domain, response, score, reason; at most `max_rows` rows, shared
    evenly by the benchmarks, texts cut to MAX_TEXT_CHARS."""
    import io

    import pandas as pd
    import pyarrow.parquet as pq

    cols = ["problem_id", "sample_index", "domain", "response", "score", "details"]
    per = max(1, max_rows // max(1, len(samples)))
    frames = []
    for bench, uri in sorted(samples.items()):
        table = pq.read_table(io.BytesIO(storage.read_bytes(uri)), columns=cols)
        df = table.slice(0, per).to_pandas()
        df.insert(0, "benchmark", bench)
        df["response"] = df["response"].str.slice(0, MAX_TEXT_CHARS)
        df["reason"] = [_reason(d) for d in df.pop("details")]
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["benchmark", *cols[:-1], "reason"])
    return pd.concat(frames, ignore_index=True)


def log_samples_table(run_id: str, samples: Mapping[str, str], max_rows: int = MAX_TABLE_ROWS) -> int:
    """Log the samples of an evaluation as the run's `eval_samples.json` table artifact (MLflow's table
    format: `mlflow.load_table` reads it back, the UI shows it); returns its number of rows."""
    from mlflow import MlflowClient

    df = samples_frame(samples, max_rows)
    MlflowClient().log_table(run_id, df, SAMPLES_TABLE)
    return len(df)


def load_samples_table(run_id: str) -> Any:
    """The samples table of an evaluate run as a DataFrame."""
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = client.get_run(run_id).info.experiment_id
    return client.load_table(exp, SAMPLES_TABLE, run_ids=[run_id])
