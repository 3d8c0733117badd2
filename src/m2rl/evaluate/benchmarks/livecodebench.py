"""LiveCodeBench code generation (livecodebench/code_generation_lite), windowed by contest date.

Columns: `question_id`, `question_content`, `starter_code`, `contest_date`, `public_test_cases` and
`private_test_cases` (JSON lists of {input, output, testtype}; the private ones are usually stored
zlib-compressed and base64-encoded), `metadata` (JSON; `func_name` for LeetCode-style problems).
`livecodebench_v5` keeps problems released 2024-08-01 .. 2025-02-01 and `livecodebench_v6`
2025-02-01 .. 2025-05-01 (the windows the paper's tables use); `livecodebench` is v6 unless
`options.date_from` / `options.date_to` (ISO dates, end exclusive) say otherwise. The prompt is
LiveCodeBench's own generic template; scoring runs every test through the `unit_test` verifier.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import Field

from m2rl.evaluate.loading import column, load_rows, make_record, parse_rows
from m2rl.evaluate.registry import BenchmarkCard, BenchmarkOptions, EvalError, Problems, register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec


class LiveCodeBenchOptions(BenchmarkOptions):
    """Options of LiveCodeBench."""

    date_from: date | None = Field(default=None, description="First contest date (ISO) of the window.")
    date_to: date | None = Field(default=None, description="End of the window (ISO date, exclusive).")

HUB_ID = "livecodebench/code_generation_lite"
# The hub repo's loading script is not run by datasets >= 4: read its jsonl release files directly.
HUB_FILES = f"hf://datasets/{HUB_ID}/test*.jsonl"
WINDOWS = {"v5": ("2024-08-01", "2025-02-01"), "v6": ("2025-02-01", "2025-05-01")}

SYSTEM_MESSAGE = (
    "You are an expert Python programmer. You will be given a question (problem specification) and will "
    "generate a correct Python program that matches the specification and passes all tests."
)
WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters."
)
WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the "
    "sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program runs, "
    "it reads the inputs, runs the algorithm and writes output to STDOUT."
)


def lcb_prompt(question: str, starter_code: str) -> str:
    """LiveCodeBench's generic code-generation question template."""
    prompt = f"### Question:\n{question}\n\n"
    if starter_code:
        prompt += f"### Format: {WITH_STARTER}\n```python\n{starter_code}\n```\n\n"
    else:
        prompt += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return prompt + "### Answer: (use the provided format with backticks)\n\n"


class _TextOnlyUnpickler(pickle.Unpickler):
    """The private tests are a pickled JSON string: refuse any pickle that names a class or function."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from test data")


def decode_tests(value: Any, where: str) -> list[dict[str, Any]]:
    """Test cases from JSON text, a list, or LiveCodeBench's base64(zlib(pickle(json))) encoding."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        pass
    try:
        raw = zlib.decompress(base64.b64decode(str(value).encode("utf-8")))
        text = _TextOnlyUnpickler(io.BytesIO(raw)).load()
        return json.loads(text)
    except Exception as exc:
        raise EvalError(f"{where}: cannot decode test cases: {exc}") from None


def _date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        raise EvalError(f"{where}: contest_date {value!r} is not an ISO date") from None


def _window(spec: BenchmarkSpec, version: str) -> tuple[date, date]:
    lo, hi = WINDOWS[version]
    try:
        return (date.fromisoformat(str(spec.options.get("date_from", lo))),
                date.fromisoformat(str(spec.options.get("date_to", hi))))
    except ValueError as exc:
        raise EvalError(f"livecodebench: options.date_from/date_to: {exc}") from None


def load_livecodebench(name: str, spec: BenchmarkSpec, version: str) -> Problems:
    lo, hi = _window(spec, version)
    rows = load_rows(name, spec.path, HUB_ID, hub_data_files=None if spec.path else HUB_FILES, hub_format="json")

    def parse(i: int, row: Mapping[str, Any], where: str, card: BenchmarkCard) -> dict[str, Any] | None:
        released = _date(column(row, "contest_date", where=where), where)
        if not lo <= released < hi:
            card.exclude(f"contest_date outside {lo} .. {hi}")
            return None
        tests = decode_tests(column(row, "public_test_cases", required=False), where) + decode_tests(
            column(row, "private_test_cases", required=False), where
        )
        if not tests:
            raise EvalError(f"{where}: no test cases")
        if not all(isinstance(t, Mapping) and "input" in t and "output" in t for t in tests):
            raise EvalError(f"{where}: a test case without input/output")
        metadata = column(row, "metadata", required=False) or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata) if metadata.strip() else {}
            except json.JSONDecodeError as exc:
                raise EvalError(f"{where}: metadata is not JSON: {exc}") from None
        starter = str(column(row, "starter_code", required=False) or "")
        functional = any(t.get("testtype") == "functional" for t in tests)
        unit_tests: dict[str, Any] = {"inputs": [t["input"] for t in tests], "outputs": [t["output"] for t in tests]}
        verifier: dict[str, Any] = {"type": "unit_test", "unit_tests": unit_tests}
        if functional:
            fn_name = metadata.get("func_name")
            if not fn_name:
                raise EvalError(f"{where}: functional tests but no metadata.func_name")
            unit_tests["fn_name"] = fn_name
            verifier["fn_name"] = fn_name
        qid = column(row, "question_id", required=False) or i
        return make_record(
            name, "code", f"lcb-{qid}", lcb_prompt(str(column(row, "question_content", where=where)), starter),
            "", verifier, system=SYSTEM_MESSAGE,
        )

    return parse_rows(name, spec, rows, parse, source=spec.path or HUB_ID, layout="code_generation_lite columns")


@register_benchmark("livecodebench", domain="code", hub_id=HUB_ID, k=4, params=LiveCodeBenchOptions)
def load_livecodebench_default(spec: BenchmarkSpec) -> list[dict]:
    """LiveCodeBench (Avg@4), v6 window unless options.date_from/date_to are set."""
    return load_livecodebench("livecodebench", spec, "v6")


@register_benchmark("livecodebench_v5", domain="code", hub_id=HUB_ID, k=4, params=LiveCodeBenchOptions)
def load_livecodebench_v5(spec: BenchmarkSpec) -> list[dict]:
    """LiveCodeBench v5 (2024-08-01 .. 2025-02-01, Avg@4)."""
    return load_livecodebench("livecodebench_v5", spec, "v5")


@register_benchmark("livecodebench_v6", domain="code", hub_id=HUB_ID, k=4, params=LiveCodeBenchOptions)
def load_livecodebench_v6(spec: BenchmarkSpec) -> list[dict]:
    """LiveCodeBench v6 (2025-02-01 .. 2025-05-01, Avg@4)."""
    return load_livecodebench("livecodebench_v6", spec, "v6")
