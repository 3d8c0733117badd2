"""The merge stage: `merge(base, models, method, params, out)` -> one merged checkpoint.

Streaming and memory-bounded: inputs are checked from their headers before any arithmetic; then each
output tensor is computed from row chunks of the inputs (float32 arithmetic, whatever their dtype)
and its bytes go straight into output shards planned in advance, so peak memory is
O(models x chunk) for element-wise methods and O(models x largest tensor) at most (TSV),
independent of the model's size. The output folder (shards, `model.safetensors.index.json`, the
base's config / tokenizer / generation config, `merge_card.json`) appears only when complete.

Which checkpoint of an expert is merged (`merge.expert_steps`): `expert_checkpoint` reads the expert's
`train_card.json`; its final step is the expert folder itself, an earlier one the copy the train stage
kept (`step_checkpoints`, under the run's checkpoint folder, locally or in S3).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.checkpoint import copy_side_files
from m2rl.merge.io import INDEX_NAME, InputError, SafetensorsSource, StreamingShardWriter, read_header
from m2rl.merge.job import DEFAULT_CHUNK_ELEMS, MergeContext, TensorJob
from m2rl.merge.registry import MergeError, get_method, parse_params

OUT_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
CARD_NAME = "merge_card.json"


@dataclass
class MergeResult:
    """What a merge wrote."""

    out: str
    method: str
    label: str
    params: dict[str, Any]
    tensors: int
    bytes: int
    shards: list[str]
    seconds: float
    card: dict[str, Any] = field(repr=False)


def _local(uri: str, cache: str | Path | None, what: str) -> Path:
    """A local folder for an input checkpoint URI (S3 fetched to the cache; `random:` built)."""
    uri = str(uri)
    try:
        if storage.is_s3(uri):
            return storage.fetch_dir(uri, cache)
        if uri.startswith("random:") or uri == "smollm2-135m-instruct":
            from m2rl.models import resolve_model

            return resolve_model(uri, cache)
    except storage.StorageError as exc:
        raise MergeError(f"{what}: {exc}") from None
    p = Path(uri)
    if not p.is_dir():
        raise MergeError(f"{what}: {uri}: checkpoint folder not found")
    return p


def expert_checkpoint(model: str, step: int | None, what: str = "merge.expert_steps") -> str:
    """The checkpoint of expert `model` (a trained model folder or URI) at training step `step`: `model`
    itself for None or its final step, else the kept copy its train card lists; any other step is an error
    naming the steps that exist."""
    model = str(model)
    if step is None:
        return model
    card_uri = storage.join(model, "train_card.json")
    try:
        card = json.loads(storage.read_text(card_uri))
        final = int(card["steps"])
        kept = {int(k): str(v) for k, v in (card.get("step_checkpoints") or {}).items()}
    except (storage.StorageError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MergeError(f"{what}: {card_uri}: no readable train card with its steps ({exc}), so step {step} "
                         "cannot be found") from None
    if step == final:
        return model
    if step in kept:
        uri = kept[step]
        if not storage.exists(storage.join(uri, "config.json")):
            raise MergeError(f"{what}: step {step} of {model} is listed at {uri}, but no checkpoint is there")
        return uri
    have = ", ".join(str(s) for s in sorted({*kept, final}))
    raise MergeError(f"{what}: {model} has no checkpoint of step {step}; steps that exist: {have} (the train stage "
                     "keeps the step merge.expert_steps names for the run, set before it trains)")


def expert_checkpoints(experts: dict[str, str], steps: dict[str, int]) -> list[str]:
    """The checkpoint merged for each domain's expert (`experts`: domain -> trained model) at the step
    `steps` (`merge.expert_steps`) names, in the order of `experts`; a step for a domain without an expert
    is an error."""
    extra = sorted(set(steps) - set(experts))
    if extra:
        raise MergeError(f"merge.expert_steps: {', '.join(extra)} has no expert to merge; the experts are "
                         f"{', '.join(experts)}")
    return [expert_checkpoint(uri, steps.get(d), f"merge.expert_steps.{d}") for d, uri in experts.items()]


def _fingerprint(src: SafetensorsSource) -> tuple[str, str]:
    """(file hashed, sha256): the index file, or a lone shard's header when there is no index."""
    if src.index_file is not None:
        return src.index_file.name, storage.sha256_file(src.index_file)
    import hashlib

    h = hashlib.sha256()
    for f in sorted({t.file for t in src.tensors.values()}):
        header, start = read_header(f)
        with open(f, "rb") as fh:
            h.update(fh.read(start))
    return "safetensors headers", h.hexdigest()


def check_inputs(base: SafetensorsSource, experts: list[SafetensorsSource]) -> None:
    """Same architecture, tensor names, shapes and kinds (float or not); raise naming the first mismatch."""
    cfg = base.config()
    for src in experts:
        other = src.config()
        for key in ("architectures", "model_type"):
            if key in cfg and key in other and cfg[key] != other[key]:
                raise InputError(f"{src.label}: config {key} {other[key]!r} differs from the base's {cfg[key]!r}")
    names = set(base.tensors)
    for src in experts:
        mine = set(src.tensors)
        diff = sorted(names ^ mine)
        if diff:
            first = diff[0]
            where = "is missing tensor" if first in names else "has a tensor the base lacks:"
            raise InputError(f"{src.label}: {where} {first!r}")
    for name in sorted(names):
        b = base.tensors[name]
        for src in experts:
            t = src.tensors[name]
            if t.shape != b.shape:
                raise InputError(
                    f"{src.label}: tensor {name!r} has shape {list(t.shape)}, the base's is {list(b.shape)}"
                )
            if t.is_float != b.is_float:
                raise InputError(f"{src.label}: tensor {name!r} is {t.dtype}, the base's is {b.dtype}")


def merge(
    base: str,
    models: list[str],
    method: str,
    params: dict[str, Any] | None = None,
    out: str | None = None,
    dtype: str = "base",
    shard_size: int = 2 * 2**30,
    *,
    label: str | None = None,
    cache: str | Path | None = None,
    track: bool = True,
    chunk_elems: int = DEFAULT_CHUNK_ELEMS,
    progress: Callable[[int, int], None] | None = None,
) -> MergeResult:
    """Merge the expert checkpoints `models` onto `base` with `method`; write the result to `out`.

    `base`, `models`, `out`: checkpoint folders or `s3://` URIs. `dtype`: `base` (each tensor keeps
    the base's dtype) or float32 / bfloat16 / float16. `shard_size`: max bytes of an output shard.
    `track`: log params, metrics and the card into the active MLflow run (the caller opens it), if any.
    """
    if out is None:
        raise MergeError("out: an output checkpoint location is required")
    cls = get_method(method)
    p = parse_params(cls, params)
    label = label or method
    models = [str(m) for m in models]
    if len(models) < cls.min_models:
        raise MergeError(f"models: {method} needs at least {cls.min_models} expert model(s), got {len(models)}")
    if dtype != "base" and dtype not in OUT_DTYPES:
        raise MergeError(f"dtype: must be base or one of {', '.join(OUT_DTYPES)}, got {dtype!r}")
    if shard_size < 1:
        raise MergeError("shard_size: must be >= 1 byte")
    if str(out) in (str(base), *models):
        raise MergeError(f"out: {out} is one of the inputs")

    base_dir = _local(base, cache, "base")
    dirs = [_local(m, cache, f"models[{i}]") for i, m in enumerate(models)]
    try:
        base_src = SafetensorsSource(base_dir, f"base {base}")
        experts = [SafetensorsSource(d, f"model {m}") for d, m in zip(dirs, models, strict=True)]
        check_inputs(base_src, experts)
        prints = [_fingerprint(s) for s in (base_src, *experts)]
    except InputError as exc:
        raise MergeError(str(exc)) from None
    impl = cls(p, len(experts))

    def run() -> MergeResult:
        t0 = time.perf_counter()
        names = base_src.names()
        floats = [n for n in names if base_src.tensors[n].is_float]
        plan = []
        for n in names:
            info = base_src.tensors[n]
            code = OUT_DTYPES[dtype] if (dtype != "base" and info.is_float) else info.dtype
            plan.append((n, code, info.shape))
        with storage.output_dir(out) as tmp:
            writer = StreamingShardWriter(tmp, plan, shard_size)
            try:
                impl.prepare(MergeContext(base_src, experts, floats, chunk_elems))
                for i, n in enumerate(names):
                    info = base_src.tensors[n]
                    if info.is_float:
                        job = TensorJob(n, base_src, experts, writer, chunk_elems)
                        impl.merge_tensor(job)
                        if not job.done:
                            raise RuntimeError(f"{method}: tensor {n!r} was not fully written")
                    else:  # integer / bool buffers: the base's, unchanged
                        rows = info.shape[0] if info.shape else 1
                        writer.write(n, base_src.read_rows(n, 0, rows))
                    if progress is not None:
                        progress(i + 1, len(names))
                shards = writer.finish()
            except InputError as exc:
                raise MergeError(str(exc)) from None
            finally:
                writer.abort()
            copy_side_files(base_dir, tmp)
            _set_config_dtype(tmp / "config.json", dtype)
            card = _card(method, label, p.model_dump(mode="json"), dtype, base, base_src, models, prints,
                         names, writer.total_bytes, shards)
            (tmp / CARD_NAME).write_text(json.dumps(card, indent=2))
        return MergeResult(
            out=str(out), method=method, label=label, params=card["params"], tensors=len(names),
            bytes=writer.total_bytes, shards=shards, seconds=time.perf_counter() - t0, card=card,
        )

    try:
        from m2rl import tracking

        run_id = tracking.active_run_id() if track else None
        if run_id is not None:
            tracking.log_batch(params={"merge.method": method, "merge.label": label, "merge.dtype": dtype,
                                       "merge.models": len(models),
                                       **{f"merge.{k}": v for k, v in p.model_dump(mode="json").items()}},
                               run_id=run_id)
        result = run()
        if run_id is not None:
            tracking.log_batch(metrics={"merge/seconds": result.seconds, "merge/output_gb": result.bytes / 2**30},
                               run_id=run_id)
            tracking.log_dict(result.card, CARD_NAME, run_id=run_id)
        return result
    finally:
        base_src.close()
        for e in experts:
            e.close()


def _set_config_dtype(path: Path, dtype: str) -> None:
    if dtype == "base" or not path.exists():
        return
    cfg = json.loads(path.read_text())
    keys = [k for k in ("dtype", "torch_dtype") if k in cfg] or ["dtype"]
    for k in keys:
        cfg[k] = dtype
    path.write_text(json.dumps(cfg, indent=2))


def _card(method, label, params, dtype, base, base_src, models, prints, names, nbytes, shards) -> dict:
    from m2rl import __version__

    def entry(uri: str, fingerprint: tuple[str, str]) -> dict:
        return {"uri": str(uri), "hashed": fingerprint[0], "sha256": fingerprint[1]}

    return {
        "method": method, "label": label, "params": params, "seed": params.get("seed"),
        "dtype": dtype, "base_dtypes": sorted({t.dtype for t in base_src.tensors.values()}),
        "base": entry(base, prints[0]), "models": [entry(m, f) for m, f in zip(models, prints[1:], strict=True)],
        "tensors": len(names), "bytes": nbytes, "shards": shards, "index": INDEX_NAME,
        "m2rl_version": __version__,
    }
