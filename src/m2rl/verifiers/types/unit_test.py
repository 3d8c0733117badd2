"""`unit_test`: run the program of the response's last fenced code block against the record's tests.

Record metadata (`verifier`): `unit_tests` = {`inputs`, `outputs`} (LiveCodeBench style), optional
`unit_tests.fn_name` (or `fn_name`) for function tests, optional `timeout` (seconds per test, default
5), optional `reward` (`binary`, the default: 1 only when every test passes, stopping at the first
failure; or `fraction`: the share of tests passed), optional `float_tolerance` (default 1e-6).

- stdin/stdout tests: `inputs[i]` is the program's stdin, `outputs[i]` the expected stdout. Outputs are
  compared as LiveCodeBench's `testing_util` does: the whole output is stripped (leading blank lines
  and trailing white space/empty lines ignored), then compared line by line; lines
  that still differ are compared token by token (so the spacing between tokens does not matter, as in
  LiveCodeBench's grader), and tokens that both read as numbers match within the tolerance (relative
  or absolute).
- function tests (`fn_name`): the program defines `fn_name` (or a class `Solution` with that method).
  `inputs[i]` is the argument list: a JSON list of arguments (TACO / APPS / Nemotron), or text with one
  JSON value per line (LiveCodeBench), or a JSON object of keyword arguments. `outputs[i]` is the
  expected return value (JSON text or a value); an expected `[x]` also accepts `x` (APPS wraps results).

Exit policy, as LiveCodeBench's `lcb_runner/evaluation/testing_util.py` (checked by running it): a
stdin/stdout program that raises `SystemExit` (`sys.exit()`, `sys.exit(0)`, `sys.exit(1)`,
`sys.exit("msg")`, `raise SystemExit(n)`, `exit()`, `exit(1)`) has ended normally whatever the status,
and the output it printed is compared (LCB's `call_method` catches SystemExit; its `from sys import *`
makes `exit` be `sys.exit`, which the harness provides too, as it runs without `site`). `quit()` fails,
as in LCB (its `reliability_guard` sets `builtins.quit = None`; here it is undefined). Warnings on
stderr do not matter. In a function test (`fn_name`) any SystemExit fails: no value was returned (in
LCB it escapes `except Exception` and the test gets no result). An uncaught exception, a timeout or a
limit fails the test. `os._exit(n)` fails in LCB whatever n (it ends LCB's grading process); here a
non-zero n fails, and `os._exit(0)` passes only if the program flushed its correct output first (the
one deliberate difference: the program did print the right answer and exit cleanly). With
`M2RL_SANDBOX_URL` the service reports only the exit status, so `sys.exit(n)` with n != 0 fails there.
Programs run in `m2rl.verifiers.sandbox`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, Literal

from pydantic import Field

from m2rl.registry import StrictModel
from m2rl.verifiers import sandbox
from m2rl.verifiers.registry import Score, register_verifier

DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 60.0
DEFAULT_TOLERANCE = 1e-6
PYTHON_TAGS = {"", "python", "python3", "py", "py3", "python3.11", "pycon"}

_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n`]*$")


def code_blocks(text: str) -> list[tuple[str, str, bool]]:
    """Fenced blocks of `text`, in order: (language tag, body, closed). Linear in the text length."""
    blocks: list[tuple[str, str, bool]] = []
    fence, tag, body = None, "", []
    for line in text.split("\n"):
        if fence is None:
            m = _FENCE.match(line[:200]) if line.lstrip(" \t")[:1] in "`~" else None
            if m:
                fence, tag, body = m.group(1), m.group(2).lower(), []
            continue
        s = line.strip()
        if s and s[0] == fence[0] and set(s) == {fence[0]} and len(s) >= len(fence):
            blocks.append((tag, "\n".join(body), True))
            fence = None
        else:
            body.append(line)
    if fence is not None:
        blocks.append((tag, "\n".join(body), False))
    return blocks


def extract_program(text: str) -> str | None:
    """The program of the last fenced code block (closed blocks first; blocks tagged with another
    language, e.g. ```text output examples, are skipped when a Python or untagged block exists)."""
    blocks = code_blocks(text)
    closed = [b for b in blocks if b[2]] or blocks
    py = [b for b in closed if b[0] in PYTHON_TAGS]
    pick = (py or closed)[-1] if closed else None
    if pick is None or not pick[1].strip():
        return None
    return pick[1].rstrip()


# --- comparison ------------------------------------------------------------------------------------

def _number(tok: str) -> float | None:
    if not tok or tok[0] not in "+-.0123456789" or "_" in tok:
        return None
    try:
        return float(tok)
    except ValueError:
        return None


def _close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def _numbers_close(a: int | float, b: int | float, tol: float) -> bool:
    """`_close` for any ints and floats: an int beyond the float range (`10**400`) is compared exactly
    (as fractions) instead of raising OverflowError."""
    try:
        return _close(float(a), float(b), tol)
    except OverflowError:
        if any(isinstance(x, float) and not math.isfinite(x) for x in (a, b)):
            return False  # a finite huge int is neither NaN nor infinite
        fa, fb, ft = Fraction(a), Fraction(b), Fraction(tol)
        return abs(fa - fb) <= max(ft * max(abs(fa), abs(fb)), ft)


def _lines(text: str) -> list[str]:
    # LiveCodeBench strips the whole output first (`prediction.strip().split("\n")`): leading blank
    # lines and trailing white space never fail a test
    return [line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n")]


def stdout_matches(got: str, want: str, tol: float = DEFAULT_TOLERANCE) -> bool:
    """Line by line after stripping the whole output (leading blank lines, trailing white space) and
    each line's trailing white space; differing lines token by token, numeric tokens within `tol`."""
    g, w = _lines(got), _lines(want)
    if g == w:
        return True
    if len(g) != len(w):
        return False
    for a, b in zip(g, w, strict=True):
        if a == b:
            continue
        ta, tb = a.split(), b.split()
        if len(ta) != len(tb):
            return False
        for x, y in zip(ta, tb, strict=True):
            if x == y:
                continue
            fx, fy = _number(x), _number(y)
            if fx is None or fy is None or not _close(fx, fy, tol):
                return False
    return True


def values_match(got: Any, want: Any, tol: float = DEFAULT_TOLERANCE, depth: int = 0) -> bool:
    """Return values: numbers within `tol` (bools only equal bools; ints of any size), sequences
    element-wise (list == tuple), mappings key by key, anything else by equality. Never raises: a value
    that cannot be compared is wrong."""
    if depth > 200:
        return False
    if isinstance(got, bool) or isinstance(want, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got == want
    if isinstance(got, (int, float)) and isinstance(want, (int, float)):
        return got == want or _numbers_close(got, want, tol)
    if isinstance(got, (list, tuple)) and isinstance(want, (list, tuple)):
        return len(got) == len(want) and all(values_match(a, b, tol, depth + 1) for a, b in zip(got, want, strict=True))
    if isinstance(got, Mapping) and isinstance(want, Mapping):
        return set(got) == set(want) and all(values_match(got[k], want[k], tol, depth + 1) for k in got)
    try:
        return bool(got == want)
    except Exception:  # noqa: BLE001 - an equality that raises (RecursionError, a value's own __eq__)
        return False


def _decode(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def result_matches(got: Any, want: Any, tol: float = DEFAULT_TOLERANCE) -> bool:
    want = _decode(want)
    if values_match(got, want, tol):
        return True
    return isinstance(want, list) and len(want) == 1 and values_match(got, want[0], tol)


def call_of(value: Any) -> dict[str, Any]:
    """A function test's input as {args, kwargs}: text holds one JSON argument per line
    (LiveCodeBench), a list is the argument list (TACO / APPS / Nemotron), a mapping the keywords."""
    if isinstance(value, str):
        try:
            return {"args": [json.loads(line) for line in value.split("\n") if line.strip()], "kwargs": {}}
        except ValueError:
            raise ValueError(f"function test input is not one JSON value per line: {value[:80]!r}") from None
    if isinstance(value, Mapping):
        return {"args": [], "kwargs": dict(value)}
    if isinstance(value, (list, tuple)):
        return {"args": list(value), "kwargs": {}}
    return {"args": [value], "kwargs": {}}


# --- the verifier ----------------------------------------------------------------------------------

def _tests_of(meta: Mapping[str, Any]) -> tuple[list[Any], list[Any], str | None]:
    tests = meta.get("unit_tests")
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError:
            raise ValueError("verifier.unit_tests is not valid JSON") from None
    if not isinstance(tests, Mapping):
        raise ValueError("verifier.unit_tests must be a mapping with inputs and outputs")
    inputs, outputs = tests.get("inputs"), tests.get("outputs")
    if not isinstance(inputs, Sequence) or isinstance(inputs, str) or not isinstance(outputs, Sequence) \
            or isinstance(outputs, str):
        raise ValueError("verifier.unit_tests needs `inputs` and `outputs` lists")
    if len(inputs) != len(outputs):
        raise ValueError(f"verifier.unit_tests has {len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        raise ValueError("verifier.unit_tests has no tests")
    fn_name = tests.get("fn_name") or meta.get("fn_name")
    return list(inputs), list(outputs), (str(fn_name) if fn_name else None)


def per_test_timeout(meta: Mapping[str, Any]) -> float:
    t = meta.get("timeout")
    if t is None:
        return DEFAULT_TIMEOUT
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise ValueError(f"verifier.timeout must be a number of seconds, got {t!r}") from None
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"verifier.timeout must be positive, got {t!r}")
    return min(t, MAX_TIMEOUT)


def item_timeout(meta: Mapping[str, Any]) -> float:
    """An upper bound of the time one item takes (used by `score_batch`'s hard per-item limit)."""
    try:
        n = len(_tests_of(meta)[0])
    except ValueError:  # a bad block scores 0 at once; one test's time bounds it
        n = 1
    try:
        per = per_test_timeout(meta)
    except ValueError:
        per = DEFAULT_TIMEOUT
    return max(1, n) * (per + 1.0) + sandbox.Limits().startup_s + 2.0


class UnitTestParams(StrictModel):
    """The `unit_test` verifier's metadata."""

    unit_tests: dict[str, Any] | str | None = Field(
        default=None, description="{inputs, outputs[, fn_name]}: stdin/stdout tests, or call tests with fn_name."
    )
    fn_name: str | None = Field(default=None, description="Function the call tests invoke (else stdin/stdout).")
    timeout: float | None = Field(default=None, gt=0, description="Seconds per test (default 5, capped).")
    reward: Literal["binary", "fraction"] | None = Field(
        default=None, description="binary (default): 1 only when every test passes; fraction: share passed."
    )
    float_tolerance: float | None = Field(
        default=None, ge=0, description="Absolute tolerance when outputs compare as numbers."
    )


def ended_by_system_exit(run: sandbox.TestRun) -> bool:
    """A stdin/stdout program that raised SystemExit with a non-zero status (the harness says so in the
    run's `result`): as LiveCodeBench, it ended normally and its output is compared."""
    return run.status == "runtime_error" and isinstance(run.result, dict) and "system_exit" in run.result


@register_verifier("unit_test", params=UnitTestParams, item_timeout=item_timeout)
def verify_unit_test(response: str, label: str, meta: Mapping[str, Any]) -> Score:
    inputs, outputs, fn_name = _tests_of(meta)
    mode = str(meta.get("reward") or "binary")
    if mode not in ("binary", "fraction"):
        raise ValueError(f"verifier.reward must be binary or fraction, got {mode!r}")
    timeout = per_test_timeout(meta)
    tol = float(meta.get("float_tolerance", DEFAULT_TOLERANCE))
    program = extract_program(response)
    if program is None:
        return Score(0.0, {"reason": "no fenced code block", "passed": 0, "total": len(inputs)})
    if fn_name:
        tests = [call_of(x) for x in inputs]
    else:
        tests = [{"stdin": x if isinstance(x, str) else json.dumps(x)} for x in inputs]

    verdicts: list[bool] = []

    def judge(i: int, run: sandbox.TestRun) -> bool:
        if run.status != "ok" and not (fn_name is None and ended_by_system_exit(run)):
            ok = False
        elif fn_name:
            ok = run.has_result and result_matches(run.result, outputs[i], tol)
        else:
            want = outputs[i] if isinstance(outputs[i], str) else json.dumps(outputs[i])
            ok = stdout_matches(run.stdout, want, tol)
        verdicts.append(ok)
        return ok or mode == "fraction"

    res = sandbox.run_tests(program, tests, fn_name=fn_name, timeout=timeout, judge=judge)
    passed = sum(verdicts)
    details: dict[str, Any] = {
        "passed": passed, "total": len(tests), "ran": len(res.runs), "reward": mode,
        "tests": [{"status": r.status, "passed": ok, "elapsed_s": r.elapsed_s}
                  for r, ok in zip(res.runs, verdicts, strict=True)],
        "isolation": res.isolation.get("mode"),
    }
    first_bad = next((r for r, ok in zip(res.runs, verdicts, strict=True) if not ok), None)
    if first_bad is not None:
        details["first_failure"] = {"index": first_bad.index, "status": first_bad.status,
                                    "stderr": first_bad.stderr[-500:], "stdout": first_bad.stdout[:500]}
    if res.error:
        details["reason"] = res.error
        details["sandbox_error"] = True
    if mode == "fraction":
        return Score(passed / len(tests), details)
    return Score(1.0 if passed == len(tests) else 0.0, details)

