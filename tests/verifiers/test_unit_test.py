"""The `unit_test` verifier: program extraction, output comparison, function tests, reward modes, and
hostile programs (each scored in [0, 1] within its time limit)."""

from __future__ import annotations

import time

import pytest

from m2rl.data.builtin import generate, generate_problems
from m2rl.verifiers import sandbox
from m2rl.verifiers.registry import get_verifier
from m2rl.verifiers.types.unit_test import (
    call_of,
    code_blocks,
    extract_program,
    item_timeout,
    result_matches,
    stdout_matches,
)

verify = get_verifier("unit_test")

SUM = {"type": "unit_test", "unit_tests": {"inputs": ["1 2\n", "10 20\n", "-1 1\n"], "outputs": ["3\n", "30\n", "0\n"]}}
SUM_OK = "import sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)\n"


def fenced(code: str, lang: str = "python") -> str:
    return f"Here is my solution.\n```{lang}\n{code}```\n"


# --- extraction ---------------------------------------------------------------------------------------

def test_last_code_block_is_the_program():
    text = "First try:\n```python\nprint('draft')\n```\nBetter:\n```python\nprint('final')\n```\nDone."
    assert extract_program(text) == "print('final')"
    # never everything between the first and the last fence
    assert "draft" not in extract_program(text)


def test_output_example_blocks_and_unclosed_blocks():
    text = "```python\nprint(3)\n```\nOutput:\n```text\n3\n```\n"
    assert extract_program(text) == "print(3)"
    assert extract_program("```\nprint(1)\n```") == "print(1)"
    assert extract_program("```python\nprint(1)\n") == "print(1)"  # a truncated answer still has its code
    assert extract_program("no code here") is None
    assert extract_program("```python\n```") is None
    assert [b[0] for b in code_blocks("~~~py\nx\n~~~\n````python\ny\n````")] == ["py", "python"]


def test_no_code_block_scores_zero():
    s = verify("I would print the sum.", "", SUM)
    assert s.value == 0.0 and s.details["reason"] == "no fenced code block"


# --- comparison ---------------------------------------------------------------------------------------

def test_stdout_comparison_rules():
    assert stdout_matches("3  \n4\n\n\n", "3\n4")
    assert stdout_matches("1 2\r\n", "1 2\n")
    assert not stdout_matches("3\n", "4\n")
    assert not stdout_matches("3\n4\n", "3\n")
    assert stdout_matches(" 3   4\n", "3 4\n")  # spacing between tokens is not significant (as LiveCodeBench)
    assert not stdout_matches("34\n", "3 4\n")
    assert stdout_matches("0.3333333\n", "0.333333333\n")
    assert stdout_matches("1e-9 2.0000001\n", "0 2\n")
    assert not stdout_matches("0.34\n", "0.33\n")
    assert not stdout_matches("nan\n", "1\n")
    assert not stdout_matches("YES 1\n", "NO 1\n")


def test_return_value_comparison_rules():
    assert result_matches([1, 2], "[1, 2]")
    assert result_matches(3, [3])  # APPS wraps expected results in a list
    assert result_matches(0.1 + 0.2, 0.3)
    assert not result_matches(True, 1) and not result_matches(1, True)
    assert result_matches({"a": [1.0]}, {"a": [1]})
    assert not result_matches([1, 2], [2, 1])
    assert result_matches("abc", "abc") and result_matches("abc", '"abc"')


def test_function_inputs_in_every_encoding():
    assert call_of("[1, 2]\n3") == {"args": [[1, 2], 3], "kwargs": {}}  # LiveCodeBench: a value per line
    assert call_of("[1, 2]") == {"args": [[1, 2]], "kwargs": {}}
    assert call_of([[1, 2], 3]) == {"args": [[1, 2], 3], "kwargs": {}}  # TACO / Nemotron: the argument list
    assert call_of({"x": 1}) == {"args": [], "kwargs": {"x": 1}}
    with pytest.raises(ValueError, match="JSON"):
        call_of("not json")


# --- scoring ------------------------------------------------------------------------------------------

def test_correct_and_incorrect_programs():
    s = verify(fenced(SUM_OK), "", SUM)
    assert s.value == 1.0 and s.details["passed"] == 3
    s = verify(fenced("import sys\na, b = map(int, sys.stdin.read().split())\nprint(a * b)\n"), "", SUM)
    assert s.value == 0.0
    # pass-all stops at the first failure: 1 * 2 != 3 fails the first test
    assert s.details["ran"] == 1 and s.details["first_failure"]["index"] == 0


def test_sys_exit_zero_and_stderr_warnings_pass():
    code = ("import sys, warnings\nwarnings.warn('deprecated thing')\nprint('debug', file=sys.stderr)\n"
            "a, b = map(int, sys.stdin.read().split())\nprint(a + b)\nsys.exit(0)\n")
    assert verify(fenced(code), "", SUM).value == 1.0
    assert verify(fenced(SUM_OK + "sys.exit()\n"), "", SUM).value == 1.0


# LiveCodeBench's verdicts (lcb_runner/evaluation/testing_util.py `run_test`, run on these programs with
# the correct answer printed first): its `call_method` catches SystemExit around a stdin/stdout program
# and compares what was printed; `exit` is `sys.exit` there (`from sys import *`), `quit` is None
# (`reliability_guard`); an uncaught exception is a Runtime Error; `os._exit` ends its grading process,
# so the test gets no result. In a function test a SystemExit escapes `except Exception`: no result.
LCB_STDIO_EXITS = [
    ("", True),
    ("sys.exit()\n", True),
    ("sys.exit(0)\n", True),
    ("sys.exit(1)\n", True),
    ("raise SystemExit(2)\n", True),
    ("sys.exit('bye')\n", True),
    ("exit()\n", True),
    ("exit(0)\n", True),
    ("from sys import exit\nexit(1)\n", True),
    ("quit()\n", False),
    ("raise ValueError('x')\n", False),
    ("import os\nos._exit(0)\n", False),  # M2RL too: the buffered output is lost
    ("print(4)\nsys.exit(1)\n", False),  # the exit does not excuse a wrong output
]


@pytest.mark.parametrize("tail,lcb_passes", LCB_STDIO_EXITS)
def test_exit_after_output_as_livecodebench(tail, lcb_passes):
    s = verify(fenced(SUM_OK + tail), "", SUM)
    assert s.value == (1.0 if lcb_passes else 0.0), s.details


@pytest.mark.parametrize("body,lcb_passes", [
    ("return a + b", True),
    ("import sys\n        sys.exit(0)", False),
    ("import sys\n        sys.exit(1)", False),
    ("exit(0)", False),
])
def test_exit_in_function_test_as_livecodebench(body, lcb_passes):
    meta = {"type": "unit_test", "unit_tests": {"inputs": ["1\n2", "3\n4"], "outputs": ["3", "7"], "fn_name": "add"}}
    s = verify(fenced(f"class Solution:\n    def add(self, a, b):\n        {body}\n"), "", meta)
    assert s.value == (1.0 if lcb_passes else 0.0), s.details


def test_os_exit_zero_after_flushed_output_passes():
    # the one difference from LCB (where `os._exit` loses the result): the right answer, printed and
    # flushed, then a clean exit status
    code = "import os, sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b, flush=True)\nos._exit(0)\n"
    assert verify(fenced(code), "", SUM).value == 1.0
    assert verify(fenced(code.replace("os._exit(0)", "os._exit(3)")), "", SUM).value == 0.0


def test_float_tolerance():
    meta = {"type": "unit_test", "unit_tests": {"inputs": ["1 3\n"], "outputs": ["0.333333333333\n"]}}
    assert verify(fenced("a, b = map(int, input().split())\nprint(f'{a / b:.9f}')\n"), "", meta).value == 1.0
    assert verify(fenced("print(0.3334)\n"), "", meta).value == 0.0
    loose = dict(meta, float_tolerance=1e-3)
    assert verify(fenced("print(0.3334)\n"), "", loose).value == 1.0


def test_fraction_reward_runs_every_test():
    code = "a, b = map(int, input().split())\nprint(a + b if a > 0 else 99)\n"
    s = verify(fenced(code), "", dict(SUM, reward="fraction"))
    assert s.value == pytest.approx(2 / 3) and s.details["ran"] == 3
    assert verify(fenced(code), "", SUM).value == 0.0
    with pytest.raises(ValueError, match="reward"):
        verify(fenced(code), "", dict(SUM, reward="partial"))


def test_function_tests_with_fn_name():
    lcb = {"type": "unit_test", "unit_tests": {"fn_name": "twoSum", "inputs": ["[2, 7, 11, 15]\n9", "[3, 2, 4]\n6"],
                                               "outputs": ["[0, 1]", "[1, 2]"]}}
    sol = ("from typing import List\nclass Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
           "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
           "                return [seen[target - x], i]\n            seen[x] = i\n")
    assert verify(fenced(sol), "", lcb).value == 1.0
    assert verify(fenced(sol.replace("[seen[target - x], i]", "[i, seen[target - x]]")), "", lcb).value == 0.0
    taco = {"type": "unit_test", "fn_name": "area", "unit_tests": {"inputs": [[2, 3], [1.5, 2]], "outputs": [[6], [3.0]]}}
    assert verify(fenced("def area(w, h):\n    return w * h\n"), "", taco).value == 1.0
    assert verify(fenced("def area(w, h):\n    return w + h\n"), "", dict(taco, reward="fraction")).value == 0.0


def test_bad_metadata_is_named():
    with pytest.raises(ValueError, match="unit_tests"):
        verify(fenced(SUM_OK), "", {"type": "unit_test"})
    with pytest.raises(ValueError, match="2 inputs but 1 outputs"):
        verify(fenced(SUM_OK), "", {"type": "unit_test", "unit_tests": {"inputs": ["1", "2"], "outputs": ["1"]}})
    with pytest.raises(ValueError, match="timeout"):
        verify(fenced(SUM_OK), "", dict(SUM, timeout="soon"))


def test_item_timeout_bounds_the_work():
    assert item_timeout(dict(SUM, timeout=2)) >= 3 * 2
    from m2rl.registry import VERIFIERS
    from m2rl.verifiers.pool import item_timeout as pool_timeout

    assert VERIFIERS.entry("unit_test").meta["item_timeout"] is item_timeout
    assert pool_timeout(dict(SUM, timeout=2)) == item_timeout(dict(SUM, timeout=2))


def test_builtin_code_records_reference_solutions_pass():
    records, problems = generate("code", 0, 20), generate_problems("code", 0, 20)
    for rec, prob in zip(records, problems, strict=True):
        s = verify(fenced(prob.solution), rec["label"], rec["verifier"])
        assert s.value == 1.0, (rec["id"], s.details)
    # and a wrong program fails them
    wrong = [verify(fenced("print(0)\n"), r["label"], r["verifier"]).value for r in records[:5]]
    assert wrong.count(1.0) <= 1


# --- hostile programs through the verifier -------------------------------------------------------------

HOSTILE = {
    "infinite loop": "while True:\n    pass\n",
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "10 GB allocation": "x = bytearray(10 * 1024 ** 3)\n",
    "10 GB file": "c = b'0' * (1 << 20)\nwith open('f', 'wb') as f:\n    for _ in range(10240):\n        f.write(c)\n",
    "socket": "import socket\ns = socket.create_connection(('127.0.0.1', 22), timeout=1)\nprint(3)\n",
    "read files": "print(open('/etc/passwd').read())\nprint(open('/etc/hostname').read())\n",
    "environment": "import os\nprint(os.environ)\n",
    "kill parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "escaped child": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                      "        time.sleep(100)\n    os._exit(0)\nprint(3)\n"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_programs_score_in_range_within_the_timeout(name):
    if name == "fork bomb" and sandbox.probe().get("mode") != "namespaces" and not sandbox.probe().get("dedicated_uid"):
        pytest.skip("no namespaces and no dedicated uid here: RLIMIT_NPROC cannot bind the program")
    meta = {"type": "unit_test", "timeout": 1, "unit_tests": {"inputs": ["", ""], "outputs": ["3\n", "3\n"]}}
    t0 = time.monotonic()
    s = verify(fenced(HOSTILE[name]), "", meta)
    took = time.monotonic() - t0
    assert 0.0 <= s.value <= 1.0
    assert took < 2 * (1 + 1) + 6, f"{name} took {took:.1f}s"
    if name != "escaped child":
        assert s.value == 0.0, (name, s.details)


def test_leading_blank_line_and_trailing_white_space_in_output_pass():
    # LiveCodeBench strips the whole prediction before splitting it into lines
    assert stdout_matches("\n3\n", "3")
    assert stdout_matches("\n\n  \n3 4  \n5\t\n\n", "3 4\n5\n")
    assert stdout_matches("3\n4   \n\n", "3\n4")
    assert stdout_matches("\n0.3333333\n", "0.333333333")  # float tolerance kept after stripping
    assert stdout_matches("\n 1   2\n", "1 2")  # token comparison kept
    assert not stdout_matches("\n3\n\n4\n", "3\n4")  # a blank line inside the output still counts
    assert not stdout_matches("\n", "3")
    assert stdout_matches("", "")


def test_leading_blank_line_program_passes_and_a_crash_after_output_fails():
    code = "import sys\na, b = map(int, sys.stdin.read().split())\nprint()\nprint(a + b, '  ')\n"
    assert verify(fenced(code), "", SUM).value == 1.0
    assert verify(fenced(SUM_OK + "raise RuntimeError('late')\n"), "", SUM).value == 0.0
