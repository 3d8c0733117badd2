"""Real builtin records of every domain with a correct and a wrong response each (for adapter tests)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from m2rl.data.builtin import DOMAINS, generate, generate_problems

N = 20


def _good(domain: str, rec: dict[str, Any], i: int) -> str:
    if domain in ("math", "science"):
        return f"<think>Let me work it out.</think>\nSo the result follows.\nAnswer: {rec['label']}"
    if domain == "code":
        return "Here is the program.\n```python\n" + generate_problems("code", 0, N)[i].solution + "\n```\n"
    if domain == "agent":
        return "".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>\n" for c in rec["verifier"]["ground_truth"])
    from m2rl.verifiers import score
    from tests.verifiers.ifeval_builder import candidates

    v = rec["verifier"]
    for text in candidates(list(v["instruction_id_list"]), list(v["kwargs"])):
        if score(rec, text).value == 1.0:
            return text
    raise AssertionError(f"no passing response built for {rec['id']}")


def _bad(domain: str, rec: dict[str, Any]) -> str:
    if domain == "math":
        return f"Answer: {rec['label']}1"
    if domain == "science":
        letters = "ABCD"
        return f"Answer: {letters[(letters.index(rec['label']) + 1) % 4]}"
    if domain == "code":
        return "```python\nprint('wrong')\n```"
    if domain == "agent":
        return '<tool_call>{"name": "nothing", "arguments": {}}</tool_call>'
    return ""  # an empty response breaks every length/keyword instruction the builtin set uses


@cache
def _cases(domain: str, n: int) -> tuple[tuple[dict[str, Any], str, str], ...]:
    recs = generate(domain, 0, N)[:n]
    return tuple((r, _good(domain, r, i), _bad(domain, r)) for i, r in enumerate(recs))


def cases(domain: str, n: int = N) -> list[tuple[dict[str, Any], str, str]]:
    """(record, correct response, wrong response) for the first `n` builtin records of `domain`."""
    return list(_cases(domain, n))


ALL_DOMAINS = DOMAINS
