"""NVIDIA's Nemotron-3-Nano-RL-Training-Blend JSONL, as the M2RL paper consumed it.

Each row has `dataset` (which picks the domain), `responses_create_params.input` (the chat prompt),
and per domain: `expected_answer` (math answer / MCQA letter, with `options`), `instruction_id_list` +
`kwargs` (instruction following), `verifier_metadata.unit_tests` {inputs, outputs} (+ `fn_name`)
(code), `ground_truth` tool calls (agent). Structured-output rows are dropped on purpose.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.data.registry import Reject, Row, register_source
from m2rl.spec.data import SourceSpec

# dataset name suffix -> domain; None means "drop without rejecting" (not used by the study)
DATASET_DOMAINS: tuple[tuple[str, str | None], ...] = (
    ("dapo17k", "math"),
    ("skywork_no_omni", "math"),
    ("stem_mcqa", "science"),
    ("instruction_following", "if"),
    ("comp_coding_50tests", "code"),
    ("workbench", "agent"),
    ("structured_outputs", None),
)


class RowError(ValueError):
    """A row that cannot be adapted; the message is the reject reason."""


def domain_of(dataset: str) -> str | None:
    for suffix, domain in DATASET_DOMAINS:
        if dataset.endswith(suffix) or suffix in dataset:
            return domain
    raise RowError(f"unknown dataset {dataset!r}")


def _prompt(row: dict[str, Any]) -> list[dict[str, str]]:
    params = row.get("responses_create_params")
    if not isinstance(params, dict) or "input" not in params:
        raise RowError("missing responses_create_params.input")
    inp = params["input"]
    if isinstance(inp, str):
        return [{"role": "user", "content": inp}]
    if not isinstance(inp, list) or not inp:
        raise RowError("responses_create_params.input must be a string or a non-empty message list")
    msgs = []
    for i, m in enumerate(inp):
        if not isinstance(m, dict):
            raise RowError(f"responses_create_params.input[{i}] is not a message")
        content = m.get("content")
        if isinstance(content, list):  # Responses API content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise RowError(f"responses_create_params.input[{i}].content must be text")
        role = m.get("role", "user")
        msgs.append({"role": "system" if role == "developer" else role, "content": content})
    return msgs


def _require(row: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in row or row[key] is None:
        raise RowError(f"missing {key}")
    if not isinstance(row[key], kind):
        raise RowError(f"{key} must be {getattr(kind, '__name__', kind)}, got {type(row[key]).__name__}")
    return row[key]


def _tool_calls(gt: Any) -> list[dict[str, Any]]:
    if isinstance(gt, str):
        try:
            gt = json.loads(gt)
        except json.JSONDecodeError:
            raise RowError("ground_truth is not valid JSON") from None
    if isinstance(gt, dict):
        gt = [gt]
    if not isinstance(gt, list):
        raise RowError("ground_truth must be a list of tool calls")
    calls = []
    for i, c in enumerate(gt):
        if isinstance(c, dict) and "name" not in c and len(c) == 1 and isinstance(next(iter(c.values())), dict):
            # BFCL's possible_answer layout {function: {argument: [accepted values]}}: kept as it is
            calls.append(c)
            continue
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise RowError(f"ground_truth[{i}] needs a name, or BFCL's {{function: {{argument: [values]}}}} form")
        args = c.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                raise RowError(f"ground_truth[{i}].arguments is not valid JSON") from None
        calls.append({"name": c["name"], "arguments": args})
    return calls


def adapt_row(row: Any, rid: str) -> dict[str, Any] | None:
    """One blend row -> a unified record, None for a dropped dataset; RowError when it is bad."""
    if not isinstance(row, dict):
        raise RowError("row is not a JSON object")
    dataset = _require(row, "dataset", str)
    domain = domain_of(dataset)
    if domain is None:
        return None
    prompt = _prompt(row)
    label = ""
    if domain == "math":
        label = str(_require(row, "expected_answer", (str, int, float)))
        verifier: dict[str, Any] = {"type": "math"}
    elif domain == "science":
        label = str(_require(row, "expected_answer", str)).strip().strip("()").upper()
        verifier = {"type": "mcqa"}
        if row.get("options") is not None:
            opts = row["options"]
            if isinstance(opts, dict):  # {"A": "...", "B": "..."}
                opts = [opts[k] for k in sorted(opts)]
            if not isinstance(opts, list):
                raise RowError("options must be a list or a letter mapping")
            verifier["options"] = [str(o) for o in opts]
    elif domain == "if":
        ids = _require(row, "instruction_id_list", list)
        kwargs = row.get("kwargs") or [{} for _ in ids]
        if not isinstance(kwargs, list) or len(kwargs) != len(ids):
            raise RowError("kwargs must be a list with one entry per instruction id")
        verifier = {"type": "ifeval", "instruction_id_list": ids, "kwargs": [k or {} for k in kwargs]}
    elif domain == "code":
        meta = _require(row, "verifier_metadata", dict)
        tests = meta.get("unit_tests")
        if isinstance(tests, str):
            try:
                tests = json.loads(tests)
            except json.JSONDecodeError:
                raise RowError("verifier_metadata.unit_tests is not valid JSON") from None
        if not isinstance(tests, dict) or not isinstance(tests.get("inputs"), list) or not isinstance(
            tests.get("outputs"), list
        ):
            raise RowError("verifier_metadata.unit_tests needs inputs and outputs lists")
        if len(tests["inputs"]) != len(tests["outputs"]):
            raise RowError("verifier_metadata.unit_tests inputs and outputs differ in length")
        verifier = {"type": "unit_test", "unit_tests": {"inputs": tests["inputs"], "outputs": tests["outputs"]}}
        fn_name = tests.get("fn_name") or meta.get("fn_name")
        if fn_name:
            verifier["unit_tests"]["fn_name"] = fn_name
    else:  # agent
        verifier = {"type": "tool_calls", "ground_truth": _tool_calls(_require(row, "ground_truth", (list, str, dict)))}
    return {"id": str(row.get("id") or row.get("uuid") or rid), "domain": domain, "prompt": prompt,
            "label": label, "verifier": verifier, "source": f"nemotron_rl_blend:{dataset}"}


def _files(path: str) -> list[str]:
    if storage.is_s3(path):
        if path.endswith((".jsonl", ".json")):
            return [path]
        return [storage.join(path, f) for f in storage.list_files(path) if f.endswith(".jsonl")]
    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    expanded = []
    for f in files:
        if Path(f).is_dir():
            expanded.extend(sorted(str(p) for p in Path(f).rglob("*.jsonl")))
        else:
            expanded.append(f)
    if not expanded:
        raise FileNotFoundError(f"{path}: no JSONL files")
    return expanded


@register_source("nemotron_rl_blend")
def nemotron_rl_blend(source: SourceSpec, domain: str | None) -> Iterator[Row]:
    if not source.path:
        raise ValueError("nemotron_rl_blend: source.path is required (JSONL file, folder, glob or s3:// URI)")
    n = 0
    for file in _files(source.path):
        for lineno, line in enumerate(storage.iter_lines(file), start=1):
            if not line.strip():
                continue
            try:
                rec = adapt_row(json.loads(line), f"{Path(file).stem}-{lineno}")
            except (RowError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield Reject(file=file, line=lineno, reason=str(exc), source="nemotron_rl_blend")
                continue
            if rec is None or (domain is not None and rec["domain"] != domain):
                continue
            yield rec
            n += 1
            if source.limit and n >= source.limit:
                return
nemotron_rl_blend.multi_domain = True  # rows carry their own domain: read once, route by domain
