"""`agent`: the workplace-assistant tasks (WorkBench), played as multi-turn episodes and scored by end state.

Each problem is an environment record of `workplace_assistant` (`m2rl.envs`): the model gets the task and the
27 tools, and every sample is an episode (tool calls, tool results, ...) whose reward is WorkBench's outcome
metric: 1 when the sandbox ends as the ground-truth calls leave a fresh one. The sandbox data is the WorkBench
CSVs the spec points at (`envs.workplace_assistant.data`). Three layouts, recognised by a table's columns:

- the blend's / NeMo Gym's JSONL (`responses_create_params.{input, tools}`, `ground_truth`, `category`,
  `environment_name`: the `workbench` rows of Nemotron-3-Nano-RL-Training-Blend, or NeMo Gym's
  `resources_servers/workplace_assistant/data/<split>.jsonl`), adapted as the `nemotron_rl_blend` source does;
- WorkBench's query files as NeMo Gym's `dataset_preprocess.py` reads them (the hub default,
  `Nexusflow/250319-workplace_assistant-fulleval`, split `test`: `problem`, `solution` = the ground-truth calls
  as JSON text, `category`, `environment_name`): the prompt is NeMo Gym's (its system prompt with the sandbox's
  fixed date, then the problem) and the tools are all 27;
- unified records (`id`, `domain`, `prompt`, `verifier`, ...: the data stage's `data/eval/agent.parquet`),
  of which the environment records are kept.

Avg@K (K=4) and pass@k like every benchmark; `hf` and `vllm` generation both drive the episodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from m2rl.evaluate.loading import column, columns, load_rows, make_record, parse_rows, text_id
from m2rl.evaluate.registry import BenchmarkCard, EvalError, Problems, Sampling, register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec

NAME = "agent"
HUB_ID = "Nexusflow/250319-workplace_assistant-fulleval"
LAYOUT_GYM = "NeMo Gym / blend JSONL (responses_create_params + ground_truth)"
LAYOUT_QUERIES = "WorkBench queries (problem + solution), as NeMo Gym's dataset_preprocess.py reads them"
LAYOUT_RECORDS = "unified records"
# NeMo Gym's SYS_PROMPT (resources_servers/workplace_assistant/dataset_preprocess.py): the sandbox's fixed now.
SYSTEM_PROMPT = ("Today's date is Thursday, 2023-11-30 and the current time is 23:59:00. Remember the current date "
                 "and time when answering queries. Meetings must not start before 9am or end after 6pm.")
AGENT_SAMPLING = Sampling(temperature=1.0, top_p=0.7, max_new_tokens=4096)


def _gym_row(i: int, row: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    from m2rl.data.sources.nemotron_rl_blend import RowError, adapt_row

    data = dict(row)
    data.setdefault("dataset", "workbench")
    try:
        rec = adapt_row(data, f"{NAME}-{i}", "env")
    except RowError as exc:
        raise EvalError(f"{where}: {exc}") from None
    if rec is None or rec["domain"] != "agent":
        raise EvalError(f"{where}: dataset {data.get('dataset')!r} is not a workbench subset")
    rec["id"] = f"{NAME}-{rec['id']}"
    rec["source"] = NAME
    return rec


def _query_row(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    from m2rl.envs.workplace.schemas import schemas

    problem = str(column(row, "problem", "query", where=where)).strip()
    raw = column(row, "solution", "answer", where=where)
    try:
        calls = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise EvalError(f"{where}: solution is not valid JSON (the ground-truth calls)") from None
    if not problem or not isinstance(calls, list):
        raise EvalError(f"{where}: empty problem, or a solution that is not a list of calls")
    verifier: dict[str, Any] = {"type": "env", "env": "workplace_assistant", "sandbox": "workbench",
                                "ground_truth": calls}
    for key in ("category", "environment_name"):
        if isinstance(row.get(key), str):
            verifier[key] = row[key]
    rec = make_record(NAME, "agent", f"{NAME}-{text_id(problem, json.dumps(calls, sort_keys=True))}", problem, "",
                      verifier, system=SYSTEM_PROMPT)
    rec["tools"] = schemas()
    return rec


def _records_row(row: Mapping[str, Any], where: str, card: BenchmarkCard) -> dict[str, Any] | None:
    from m2rl.envs import is_env_record
    from m2rl.records import RecordError, validate_record

    try:
        rec = validate_record(dict(row))
    except RecordError as exc:
        raise EvalError(f"{where}: {exc}") from None
    if not is_env_record(rec):
        card.exclude("not an environment record")
        return None
    return rec


@register_benchmark(NAME, domain="agent", hub_id=HUB_ID, k=4, sampling=AGENT_SAMPLING)
def load_agent(spec: BenchmarkSpec) -> Problems:
    """Workplace-assistant tasks played as episodes (Avg@4), scored by the sandbox's end state."""
    rows = load_rows(NAME, spec.path, HUB_ID, split="test")
    cols = columns(rows)
    if "responses_create_params" in cols:
        layout = LAYOUT_GYM
    elif {"id", "prompt", "verifier"} <= cols:
        layout = LAYOUT_RECORDS
    elif {"problem", "solution"} <= cols or {"query", "answer"} <= cols:
        layout = LAYOUT_QUERIES
    else:
        raise EvalError(f"{NAME}: {spec.path or HUB_ID}: unknown layout (columns {', '.join(sorted(cols))}); "
                        "expected responses_create_params + ground_truth, problem + solution, or unified records")

    def parse(i: int, row: Mapping[str, Any], where: str, card: BenchmarkCard) -> dict[str, Any] | None:
        if layout == LAYOUT_GYM:
            return _gym_row(i, row, where)
        if layout == LAYOUT_RECORDS:
            return _records_row(row, where, card)
        return _query_row(row, where)

    return parse_rows(NAME, spec, rows, parse, source=spec.path or HUB_ID, layout=layout)
