"""The `math` verifier: the final answer is equivalent to the gold answer (HF's math-verify decides).

Extraction, in order: the text after the last `Answer:` (its line; a `\\boxed{}` inside it is unwrapped),
else the last `\\boxed{}` (or `\\fbox{}`), else the last number when the record allows it
(`verifier.allow_last_number: true`). Both sides are parsed as LaTeX inside `$…$`, so a gold `(1, 2)`
stays a pair and `{3,2,1}` a set.

Time: math-verify's own time limits use `signal.alarm`, which fails outside the main thread, so they
are switched off (`parsing_timeout=None`, `timeout_seconds=None`). Instead every input is bounded
before sympy sees it: answers over `MAX_ANSWER_CHARS` or nested deeper than `MAX_DEPTH` braces, and
expressions whose value would have more than `MAX_LOG10` digits (power towers such as
`10^{10^{10^{10}}}`, huge factorials), are compared as normalised text instead. The hard limit is
`m2rl.verifiers.score_batch`'s per-item timeout (a worker process that is killed and replaced).
"""

from __future__ import annotations

import logging
import math as _m
import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

from pydantic import Field

from m2rl.registry import StrictModel
from m2rl.verifiers.registry import Score, register_verifier

MAX_ANSWER_CHARS = 1000
MAX_DEPTH = 24
MAX_LOG10 = 1e5  # an expression whose value has more digits than this is never evaluated
MAX_NODES = 4000
_BOX_SCAN = 20000  # characters scanned for the closing brace of a \boxed{
_BOX_TRIES = 16  # unclosed \boxed{ tried from the end before giving up

_ANSWER_RE = re.compile(r"answer[ \t*]{0,4}[:\uff1a]", re.IGNORECASE)
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_SIMPLE_NUM_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?")
_THOUSANDS_RE = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\{([^{}]{0,200})\}")


class _TimeoutWarningFilter(logging.Filter):
    """math-verify warns on every process that its (signal) timeout is off; that is on purpose here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_TimeoutWarningFilter())


def _box_content(text: str, start: int) -> str | None:
    """The content of the `\\boxed…` command starting at `start` (balanced braces), or None."""
    i = start + (6 if text.startswith("\\boxed", start) else 5)
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    if i >= n:
        return None
    if text[i] != "{":  # \boxed 5
        j = i
        while j < n and j - i < 64 and not text[j].isspace() and text[j] not in "$.,":
            j += 1
        return text[i:j] or None
    depth, j, end = 0, i, min(n, i + _BOX_SCAN)
    while j < end:
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
        j += 1
    return None


def _last_box(text: str) -> str | None:
    pos = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    for _ in range(_BOX_TRIES):  # unclosed boxes: look back a few, never scan the text once per box
        if pos < 0:
            break
        got = _box_content(text, pos)
        if got is not None:
            return got
        pos = max(text.rfind("\\boxed", 0, pos), text.rfind("\\fbox", 0, pos))
    return None


def _first_box(text: str) -> str | None:
    hits = [p for p in (text.find("\\boxed"), text.find("\\fbox")) if p >= 0]
    return _box_content(text, min(hits)) if hits else None


def _clean(ans: str) -> str:
    """Strip the wrapping a model puts around an answer: `$`, `\\(`, `**`, a final full stop."""
    s = ans.strip()
    for _ in range(4):
        before = s
        s = s.strip().strip("*").strip()
        for a, b in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("`", "`")):
            if len(s) >= len(a) + len(b) and s.startswith(a) and s.endswith(b):
                s = s[len(a):len(s) - len(b)].strip()
        s = s.rstrip(".;").strip()
        if s.startswith("$") and s.count("$") == 1:
            s = s[1:]
        if s.endswith("$") and s.count("$") == 1:
            s = s[:-1]
        if s == before:
            break
    return s


def extract_answer(text: str, allow_last_number: bool = False) -> tuple[str | None, str]:
    """(the final answer text, how it was found: `answer_marker` | `boxed` | `last_number` | `none`)."""
    last = None
    for last in _ANSWER_RE.finditer(text):  # noqa: B007 - the last match is wanted
        pass
    if last is not None:
        rest = text[last.end():]
        lines = rest.split("\n", 8)
        seg = ""
        for line in lines[:8]:
            if line.strip(" \t*$"):
                seg = line
                break
        if "\\boxed" in seg or "\\fbox" in seg:
            boxed = _first_box(seg)
            if boxed is not None:
                seg = boxed
        seg = _clean(seg)
        if seg:
            return seg, "answer_marker"
    boxed = _last_box(text)
    if boxed is not None and boxed.strip():
        return _clean(boxed), "boxed"
    if allow_last_number:
        tail = text[-4096:]
        nums = _NUMBER_RE.findall(tail) or (_NUMBER_RE.findall(text) if len(text) > 4096 else [])
        if nums:
            return nums[-1].rstrip(","), "last_number"
    return None, "none"


def _unwrap_gold(label: str) -> str:
    s = label.strip()
    if "\\boxed" in s or "\\fbox" in s:
        boxed = _first_box(s)
        if boxed is not None:
            s = boxed
    return _clean(s)


def _depth(s: str) -> int:
    depth = best = 0
    for ch in s:
        if ch in "{([":
            depth += 1
            best = max(best, depth)
        elif ch in "})]":
            depth -= 1
    return best


def normalise_text(s: str) -> str:
    """A textual form for string comparison: no spacing, `\\text{}` unwrapped, lower case."""
    s = _TEXT_RE.sub(r"\1", s)
    for tok in ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "$", "\\displaystyle"):
        s = s.replace(tok, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return "".join(s.split()).rstrip(".").lower()


def _as_number(s: str) -> Fraction | None:
    t = s.replace(" ", "")
    if _THOUSANDS_RE.match(t):
        t = t.replace(",", "")
    if len(t) > 60 or not _SIMPLE_NUM_RE.fullmatch(t):
        return None
    try:
        if "/" in t:
            num, den = t.split("/")
            return Fraction(Fraction(num), Fraction(den)) if Fraction(den) != 0 else None
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def _log10(expr: Any, budget: list[int]) -> float:
    """An upper bound on log10 |value| of a sympy expression (inf when it would be astronomically large)."""
    budget[0] -= 1
    if budget[0] < 0:
        return _m.inf
    import sympy

    if isinstance(expr, sympy.Integer):
        return int(abs(expr.p)).bit_length() * 0.30103
    if isinstance(expr, sympy.Rational):
        return max(int(abs(expr.p)).bit_length(), int(abs(expr.q)).bit_length()) * 0.30103
    if isinstance(expr, sympy.Float):
        try:
            v = abs(float(expr))
        except (OverflowError, ValueError):
            return _m.inf
        return _m.log10(v) if v > 1 else 0.0
    if isinstance(expr, sympy.Pow):
        base, ex = expr.args
        lb, le = _log10(base, budget), _log10(ex, budget)
        if le > 6:
            return _m.inf
        return abs(lb) * 10 ** le + le
    if isinstance(expr, sympy.factorial):
        ln = _log10(expr.args[0], budget)
        if ln > 5:
            return _m.inf
        n = 10 ** ln
        return n * max(ln, 1.0)
    args = getattr(expr, "args", ())
    if not isinstance(args, tuple) or not args:
        return 0.0
    vals = [_log10(a, budget) for a in args if hasattr(a, "args")]
    if not vals:
        return 0.0
    if isinstance(expr, sympy.Mul):
        return sum(abs(v) for v in vals)
    return max(vals) + 1.0


def _too_big(parsed: list[Any]) -> bool:
    budget = [MAX_NODES]
    for p in parsed:
        if isinstance(p, str):
            continue
        try:
            if _log10(p, budget) > MAX_LOG10:
                return True
        except RecursionError:
            return True
    return False


@lru_cache(maxsize=8192)
def _parse(latex: str) -> tuple[Any, ...]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    cfg = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    try:
        return tuple(parse(f"${latex}$", extraction_config=cfg, parsing_timeout=None))
    except RecursionError:
        return ()


def _safe(s: str) -> bool:
    return len(s) <= MAX_ANSWER_CHARS and _depth(s) <= MAX_DEPTH


def equivalent(gold: str, pred: str) -> tuple[bool, str]:
    """(whether `pred` is equivalent to `gold`, the method that decided: numeric | math_verify | text)."""
    g, p = _as_number(gold), _as_number(pred)
    if g is not None and p is not None:
        if g == p:
            return True, "numeric"
        if g.denominator == 1 and p.denominator == 1 and "." not in gold + pred:
            return False, "numeric"
    if normalise_text(gold) == normalise_text(pred):
        return True, "text"
    if not (_safe(gold) and _safe(pred)):
        return False, "text"
    gp, pp = _parse(gold), _parse(pred)
    if not gp or not pp or _too_big(list(gp)) or _too_big(list(pp)):
        return False, "text"
    from math_verify import verify

    try:
        ok = verify(list(gp), list(pp), timeout_seconds=None)
    except RecursionError:
        return False, "text"
    return bool(ok), "math_verify"


class MathParams(StrictModel):
    """The `math` verifier's metadata."""

    allow_last_number: bool = Field(
        default=False, description="Accept the response's last number when it states no final answer."
    )


@register_verifier("math", params=MathParams)
def verify_math(response: str, label: str, meta: Any) -> Score:
    gold = _unwrap_gold(str(label))
    if not gold:
        return Score(0.0, {"reason": "record has an empty gold answer", "gold": label})
    answer, how = extract_answer(response, allow_last_number=bool(meta.get("allow_last_number", False)))
    if answer is None:
        return Score(0.0, {"answer": None, "gold": gold, "extraction": how, "reason": "no final answer found"})
    ok, method = equivalent(gold, answer)
    details = {"answer": answer[:MAX_ANSWER_CHARS], "gold": gold, "extraction": how, "method": method}
    if not ok:
        details["reason"] = "answer not equivalent to the gold answer"
    return Score(1.0 if ok else 0.0, details)
