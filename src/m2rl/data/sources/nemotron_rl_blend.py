"""NVIDIA's Nemotron-3-Nano-RL-Training-Blend JSONL (`train.jsonl` as downloaded), as the M2RL paper consumed it.

Each row has `dataset` (which picks the domain), `responses_create_params.input` (the chat prompt),
and per domain: `expected_answer` (math answer / MCQA letter, with `options`: a list of one-key
`{letter: text}` dicts, stored as the texts in letter order), `instruction_id_list` + `kwargs`
(instruction following), `verifier_metadata.unit_tests` {inputs, outputs} (+ `fn_name`) (code),
`ground_truth` tool calls and `responses_create_params.tools` (agent: the tool schemas go to the record's
`tools`, which the chat template renders; the row becomes a multi-turn `workplace_assistant` environment
record, or with `options.workbench: tool_calls` a single-turn `tool_calls` record with `verifier.tools`). Structured-output rows are dropped on
purpose.

Placeholder rows. The DAPO-17k and Skywork math subsets ship as `{"dataset": ..., "_hf_placeholder":
{"row": N, "question_template": ...}}`: the question lives in row N of the source dataset. They are resolved
as NVIDIA's `HFPlaceholderResolver` (NVIDIA-NeMo/Nemotron, `data_prep/utils/hf_placeholder.py`, which follows
the blend's own `create_nanov3_jsonl.py`) does: the question is `prompt[0].content` of that row, the answer
`reward_model.ground_truth` (JSON text decoded, a list's first element); DAPO's template is `{prefix, suffix}`
put around the question once DAPO's own instruction wrapper (the first and last `\n\n`-separated parts) is
stripped, trailing newlines removed; Skywork's is a string whose `{question}` is replaced. The resolved row
gets `responses_create_params.input = [{"role": "user", "content": question}]` and `expected_answer`.
The option `placeholder_sources` says where each source dataset is read (through the `hf` loader: a hub id,
or a local parquet/jsonl file or folder in the dataset's own layout); only the referenced rows are kept, each
source read once. The referenced rows are collected in a first pass over the blend, so a source that cannot
be read fails before any row is yielded; a row index beyond the source's size is a Reject.
"""

from __future__ import annotations

import glob
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, StrictStr, ValidationError, field_validator

from m2rl import storage
from m2rl.data.registry import Reject, Row, SourceOptionError, register_source
from m2rl.data.sources.hf import load_rows
from m2rl.registry import SOURCES, StrictModel, unknown, validation_lines
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


@dataclass(frozen=True)
class PlaceholderTarget:
    """How a placeholder dataset of the blend is resolved (NVIDIA's `TARGET_DATASETS`)."""

    hf_dataset: str
    split: str
    template: Literal["dapo", "skywork"]


PLACEHOLDER_DATASETS: dict[str, PlaceholderTarget] = {
    "nano_v3_sft_profiled_dapo17k": PlaceholderTarget("BytedTsinghua-SIA/DAPO-Math-17k", "train", "dapo"),
    "nano_v3_sft_profiled_skywork_no_omni": PlaceholderTarget("Skywork/Skywork-OR1-RL-Data", "math", "skywork"),
}
QUESTION_PATH: tuple[str | int, ...] = ("prompt", 0, "content")
ANSWER_PATH: tuple[str | int, ...] = ("reward_model", "ground_truth")


class PlaceholderSource(StrictModel):
    """Where the rows of one placeholder dataset are read."""

    path: StrictStr = Field(min_length=1, description="Hugging Face dataset id, or a local parquet/jsonl file or folder.")
    split: StrictStr = Field(default="train", description="Split to read (a hub dataset's split; any name for local files).")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit) of a hub dataset.")


def _default_placeholder_sources() -> dict[str, PlaceholderSource]:
    return {name: PlaceholderSource(path=t.hf_dataset, split=t.split) for name, t in PLACEHOLDER_DATASETS.items()}


class NemotronOptions(StrictModel):
    """Options of the nemotron_rl_blend source."""

    workbench: Literal["env", "tool_calls"] = Field(
        default="env",
        description="Workbench rows as multi-turn workplace_assistant episodes (env, as the paper trains them) "
                    "or as single-turn tool_calls matches of their ground-truth calls.",
    )

    placeholder_sources: dict[str, PlaceholderSource] = Field(
        default_factory=_default_placeholder_sources,
        description="Blend dataset -> its placeholder rows' source: a hub id or local path, or {path, split, revision}.",
    )

    @field_validator("placeholder_sources", mode="before")
    @classmethod
    def _sources(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v  # pydantic reports the type
        out = _default_placeholder_sources()
        for name, entry in v.items():
            if name not in PLACEHOLDER_DATASETS:
                raise ValueError(unknown("placeholder dataset", name, PLACEHOLDER_DATASETS))
            if isinstance(entry, str):
                entry = {"path": entry, "split": PLACEHOLDER_DATASETS[name].split}
            try:
                out[name] = PlaceholderSource.model_validate(entry)
            except ValidationError as exc:
                lines = validation_lines(exc, name, PlaceholderSource, noun="key")
                raise ValueError("; ".join(lines)) from None
        return out


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


def adapt_row(row: Any, rid: str, workbench: str = "env") -> dict[str, Any] | None:
    """One blend row -> a unified record, None for a dropped dataset; RowError when it is bad.

    A workbench row becomes an environment record (`workbench="env"`: `verifier = {"type": "env", "env":
    "workplace_assistant", "sandbox": "workbench", "ground_truth", "category", "environment_name"}`, scored by
    the episode's end state) or a single-turn `tool_calls` record (`workbench="tool_calls"`)."""
    if not isinstance(row, dict):
        raise RowError("row is not a JSON object")
    dataset = _require(row, "dataset", str)
    domain = domain_of(dataset)
    if domain is None:
        return None
    prompt = _prompt(row)
    label = ""
    tools = None
    if domain == "math":
        label = str(_require(row, "expected_answer", (str, int, float)))
        verifier: dict[str, Any] = {"type": "math"}
    elif domain == "science":
        label = str(_require(row, "expected_answer", str)).strip().strip("()").upper()
        verifier = {"type": "mcqa"}
        if row.get("options") is not None:
            verifier["options"] = _options(row["options"])
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
        calls = _tool_calls(_require(row, "ground_truth", (list, str, dict)))
        tools = _tools(row)
        if workbench == "env":
            verifier = {"type": "env", "env": "workplace_assistant", "sandbox": "workbench", "ground_truth": calls}
            verifier.update({k: row[k] for k in ("category", "environment_name") if isinstance(row.get(k), str)})
        else:
            verifier = {"type": "tool_calls", "ground_truth": calls}
            if tools:
                verifier["tools"] = tools
    rec = {"id": str(row.get("id") or row.get("uuid") or rid), "domain": domain, "prompt": prompt,
           "label": label, "verifier": verifier, "source": f"nemotron_rl_blend:{dataset}"}
    if domain == "agent" and tools:
        rec["tools"] = tools
    return rec


def _options(opts: Any) -> list[str]:
    """MCQA option texts in letter order, from the blend's `[{"A": text}, {"B": text}, ...]`, a letter
    mapping `{"A": text, ...}`, or a plain list of texts."""
    if isinstance(opts, dict):
        opts = [{k: v} for k, v in opts.items()]
    if not isinstance(opts, list) or not opts:
        raise RowError("options must be a non-empty list or a letter mapping")
    if not any(isinstance(o, dict) for o in opts):
        return [str(o) for o in opts]
    by_letter: dict[str, str] = {}
    for i, o in enumerate(opts):
        if not isinstance(o, dict) or len(o) != 1:
            raise RowError(f"options[{i}] must be a one-key {{letter: text}} mapping")
        (letter, text), = o.items()
        letter = str(letter).strip().upper()
        if len(letter) != 1 or not letter.isalpha() or letter in by_letter:
            raise RowError(f"options[{i}]: {letter!r} is not a new option letter")
        by_letter[letter] = str(text)
    letters = sorted(by_letter)
    if letters != [chr(ord("A") + i) for i in range(len(letters))]:
        raise RowError(f"options letters must run from A without gaps, got {''.join(letters)}")
    return [by_letter[k] for k in letters]


def _tools(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tool schemas the row offers (`responses_create_params.tools`, Responses-API or OpenAI form)."""
    tools = row["responses_create_params"].get("tools")
    if tools is None or tools == []:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise RowError("responses_create_params.tools must be a list of tool schemas")
    return tools


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


# --- placeholder rows ---------------------------------------------------------------------------------

def _nested(row: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        if isinstance(key, int):
            row = row[key] if isinstance(row, list) and 0 <= key < len(row) else None
        else:
            row = row.get(key) if isinstance(row, dict) else None
        if row is None:
            return None
    return row


def strip_dapo_wrapper(question: str) -> str:
    """DAPO-Math-17k's prompt without its instruction wrapper: the parts between the first and the last
    blank-line separator (NVIDIA's `strip_dapo_prompt`); a question with fewer than three parts as it is."""
    parts = question.split("\n\n")
    return "\n\n".join(parts[1:-1]) if len(parts) >= 3 else question


def source_answer(raw: Any) -> Any:
    """The answer of a source row: JSON text decoded (Skywork stores `'["3"]'`), a list's first element, a
    mapping's first value. Plain text (DAPO's `"34"`) is kept as written, so `1.50` stays `1.50`."""
    if isinstance(raw, str) and raw.strip()[:1] in ('[', '{', '"'):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return raw
    if isinstance(raw, list):
        return raw[0] if raw else None
    if isinstance(raw, dict):
        return next(iter(raw.values()), None)
    return raw


def resolve_placeholder(row: dict[str, Any], source_row: dict[str, Any], target: PlaceholderTarget) -> dict[str, Any]:
    """The blend row with its placeholder filled from the source dataset's row (NVIDIA's resolver)."""
    question = _nested(source_row, QUESTION_PATH)
    if question is None:
        raise RowError(f"source row has no {'.'.join(map(str, QUESTION_PATH))}")
    question = str(question)
    template = row["_hf_placeholder"].get("question_template")
    if target.template == "dapo":
        full = question
        if isinstance(template, dict):
            full = f"{template.get('prefix', '')}{strip_dapo_wrapper(question)}{template.get('suffix', '')}".rstrip("\n")
    else:
        full = template.replace("{question}", question) if isinstance(template, str) and "{question}" in template \
            else question
    out = {k: v for k, v in row.items() if k != "_hf_placeholder"}
    out["question"] = question if target.template == "skywork" else full
    out["expected_answer"] = source_answer(_nested(source_row, ANSWER_PATH))
    out["responses_create_params"] = {"input": [{"role": "user", "content": full}]}
    return out


def _placeholder_row(row: Any) -> tuple[str, int] | None:
    """(dataset, row index) of a placeholder row, None for any other row (bad ones are rejected later)."""
    if not isinstance(row, dict) or not isinstance(row.get("_hf_placeholder"), dict):
        return None
    idx, dataset = row["_hf_placeholder"].get("row"), row.get("dataset")
    if not isinstance(dataset, str) or dataset not in PLACEHOLDER_DATASETS:
        return None
    if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
        return None
    return dataset, idx


@dataclass
class _Loaded:
    """The referenced rows of one placeholder source, and how many rows it has (at least)."""

    rows: dict[int, dict[str, Any]]
    size: int
    complete: bool  # the whole source was read, so `size` is its size


def _load_placeholder_rows(name: str, src: PlaceholderSource, needed: set[int]) -> _Loaded:
    """Stream the source once, keeping only the `needed` rows (stops after the last one)."""
    where = f"options.placeholder_sources.{name}"
    extra = {"revision": src.revision} if src.revision else {}
    top = max(needed)
    rows: dict[int, dict[str, Any]] = {}
    size = 0
    try:
        for i, r in enumerate(load_rows(src.path, src.split, **extra)):
            size = i + 1
            if i in needed:
                rows[i] = {"prompt": r.get("prompt"), "reward_model": r.get("reward_model")}
            if i >= top:
                return _Loaded(rows, size, complete=False)
    except Exception as exc:  # any failure to read the source (missing, offline, bad file) is the option's
        raise SourceOptionError(where, (
            f"cannot read {src.path!r} (split {src.split!r}) for the {len(needed)} placeholder rows of dataset "
            f"{name!r}: {type(exc).__name__}: {exc}; point it at a local copy (parquet/jsonl in the dataset's "
            f"layout) or a reachable hub id")) from None
    return _Loaded(rows, size, complete=True)


def _scan_placeholders(files: list[str], domains: frozenset[str] | None) -> dict[str, set[int]]:
    """First pass: the source rows each placeholder dataset refers to (only for the wanted domains)."""
    needed: dict[str, set[int]] = defaultdict(set)
    if domains is not None and "math" not in domains:
        return needed
    for file in files:
        for line in storage.iter_lines(file):
            if b"_hf_placeholder" not in line:
                continue
            try:
                ref = _placeholder_row(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if ref is not None:
                needed[ref[0]].add(ref[1])
    return needed


class _Resolver:
    """Placeholder rows -> full rows, from sources loaded once up front."""

    def __init__(self, options: NemotronOptions, needed: dict[str, set[int]]):
        self.sources = options.placeholder_sources
        self.loaded = {name: _load_placeholder_rows(name, self.sources[name], idx) for name, idx in needed.items()}

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        ph = row["_hf_placeholder"]
        if not isinstance(ph, dict):
            raise RowError(f"_hf_placeholder must be an object {{row, question_template}}, got {type(ph).__name__}")
        dataset = row.get("dataset")
        if not isinstance(dataset, str) or dataset not in PLACEHOLDER_DATASETS:
            raise RowError(f"_hf_placeholder of dataset {dataset!r}: no placeholder source is known for it "
                           f"(known: {', '.join(PLACEHOLDER_DATASETS)})")
        idx = ph.get("row")
        if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
            raise RowError(f"_hf_placeholder.row must be a row index (int >= 0), got {idx!r}")
        loaded = self.loaded[dataset]
        if idx not in loaded.rows:
            src = self.sources[dataset]
            size = f"{loaded.size} rows" if loaded.complete else f"more than {loaded.size} rows"
            raise RowError(f"_hf_placeholder.row {idx} of dataset {dataset!r} is out of range: {src.path!r} "
                           f"(split {src.split!r}) has {size}")
        return resolve_placeholder(row, loaded.rows[idx], PLACEHOLDER_DATASETS[dataset])


@register_source("nemotron_rl_blend", params=NemotronOptions)
def nemotron_rl_blend(source: SourceSpec, domain: str | None, domains: frozenset[str] | None = None) -> Iterator[Row]:
    if not source.path:
        raise ValueError("nemotron_rl_blend: source.path is required (JSONL file, folder, glob or s3:// URI)")
    options = SOURCES.parse_params("nemotron_rl_blend", source.options, "options")
    wanted = frozenset([domain]) if domain is not None else domains
    files = _files(source.path)
    resolve = _Resolver(options, _scan_placeholders(files, wanted))
    n = 0
    for file in files:
        for lineno, line in enumerate(storage.iter_lines(file), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if isinstance(row, dict) and isinstance(row.get("dataset"), str) and wanted is not None \
                        and domain_of(row["dataset"]) not in wanted:
                    continue  # a row of a domain this listing does not want: not adapted, not rejected
                if isinstance(row, dict) and "_hf_placeholder" in row:
                    row = resolve(row)
                rec = adapt_row(row, f"{Path(file).stem}-{lineno}", options.workbench)
            except (RowError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield Reject(file=file, line=lineno, reason=str(exc), source="nemotron_rl_blend")
                continue
            if rec is None or (wanted is not None and rec["domain"] not in wanted):
                continue
            yield rec
            n += 1
            if source.limit and n >= source.limit:
                return


nemotron_rl_blend.multi_domain = True  # rows carry their own domain: read once, route by domain
