"""The `math` verifier: the final answer is equivalent to the gold answer (HF's math-verify decides).

Extraction: the final stated answer, i.e. whichever of the last `Answer:` line (a `\\boxed{}` inside it
is unwrapped) and the last `\\boxed{}` (or `\\fbox{}`) comes later in the text, as the paper's checker
reads a response; else the last number when the record allows it (`verifier.allow_last_number: true`).
From an `Answer:` line written as prose the answer expression is taken, not the whole line:
`Answer: 12 because 3 times 4 is 12` and `Answer: The total is 12.` are `12` (the line is cut at a
`because` / `since` / `which` ... clause, then the part after its last `is` / `equals` / `=` is kept).
Both sides are parsed as LaTeX inside `$…$`, so a gold `(1, 2)` stays a pair and `{3,2,1}` a set.

Equivalence (math-verify, plus): e-notation (`3e5`, `6.02e23`) and repeating decimals (`0.\\overline{6}`)
are numbers; an interval written as an inequality (`2 \\le x < 5`, `x > 3`) is that interval (`[2,5)`,
`(3,\\infty)`). Policy on rounding (stricter than math-verify's float tolerance): a decimal answer is
right only when it equals the gold exactly (`180.51` is not `180.5`; `0.3333333` for `1/3` and `0.7071`
for `\\frac{\\sqrt2}{2}` are wrong); the one allowance is an exact fraction for a decimal gold that it
rounds to at the gold's precision (`1/3` for a gold `0.33`).

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
_SIMPLE_NUM_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,4})?(?:/\d+)?")
_REPEAT_RE = re.compile(r"([-+]?)(\d*)\.(\d*)\\(?:overline|bar)\{(\d{1,30})\}")
_SCI_RE = re.compile(r"([-+]?\d{1,30}(?:\.\d{1,30})?)\s{0,3}\\(?:times|cdot)\s{0,3}10\^\{?([-+]?\d{1,4})\}?")
_DECIMAL_RE = re.compile(r"[-+]?\d*\.(\d+)")
# prose around an `Answer:` expression: a clause that explains it, and a copula before it
_CLAUSE_RE = re.compile(r"[,;]?\s(?:because|since|which|as|so|given|therefore|hence|thus|where|from)\b", re.I)
_COPULA_RE = re.compile(r"\s(?:is|are|equals|was|be)\s|=|\bis:", re.I)
_NUMBER_THEN_WORDS_RE = re.compile(r"\s{0,4}\$?(-?\d[\d,]{0,30}(?:\.\d{1,30})?(?:/\d{1,30})?)\$?\s{1,4}[A-Za-z]{2,}")
_PROSE_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_LESS = {"<": "<", "\\lt": "<", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", "\u2264": "<="}
_MORE = {">": ">", "\\gt": ">", "\\ge": ">=", "\\geq": ">=", "\\geqslant": ">=", "\u2265": ">="}
_INEQ_RE = re.compile(r"(<=?|>=?|\\l(?:eqslant|eq|e|t)|\\g(?:eqslant|eq|e|t)|\u2264|\u2265)")
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


def _expression(seg: str) -> str:
    """The answer expression of a prose `Answer:` line: `12 because ...` -> `12`, `The total is 12.` -> `12`."""
    if not _PROSE_RE.search(seg.replace("\\boxed", "")) or "\\text" in seg:
        return seg
    cut = _CLAUSE_RE.search(seg)
    if cut is not None and cut.start() > 0:
        seg = seg[:cut.start()]
    last = None
    for last in _COPULA_RE.finditer(seg):  # noqa: B007 - the last copula precedes the expression
        pass
    if last is not None and seg[last.end():].strip(" .$*"):
        head = seg[:last.start()]
        if last.group(0) != "=" or _PROSE_RE.search(head):  # keep `x = 5` whole, drop `the total = `
            seg = seg[last.end():]
    lead = _NUMBER_THEN_WORDS_RE.match(seg)  # `12 apples in total` -> `12`
    if lead is not None and not any(ch.isdigit() for ch in seg[lead.end():]):
        return lead.group(1)
    return seg


def extract_answer(text: str, allow_last_number: bool = False) -> tuple[str | None, str]:
    """(the final answer text, how it was found: `answer_marker` | `boxed` | `last_number` | `none`)."""
    last = None
    for last in _ANSWER_RE.finditer(text):  # noqa: B007 - the last match is wanted
        pass
    box_at = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if last is not None:
        rest = text[last.end():]
        lines = rest.split("\n", 8)
        seg, seg_end = "", last.end()
        for line in lines[:8]:
            seg_end += len(line) + 1
            if line.strip(" \t*$"):
                seg = line
                break
        later_box = box_at >= seg_end and _last_box(text) is not None
        if not later_box:  # an \boxed{} after the Answer: line is the later, final answer
            if "\\boxed" in seg or "\\fbox" in seg:
                boxed = _first_box(seg)
                if boxed is not None:
                    seg = boxed
            else:
                seg = _expression(seg)
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


def _repeating(m: re.Match) -> str:
    sign, whole, fixed, rep = m.groups()
    value = Fraction(int(whole or "0")) + (Fraction(int(fixed), 10 ** len(fixed)) if fixed else 0)
    value += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
    return f"{sign}{value.numerator}/{value.denominator}"


def _as_number(s: str) -> Fraction | None:
    t = s.replace(" ", "")
    if "\\overline" in t or "\\bar" in t:
        t = _REPEAT_RE.sub(_repeating, t)
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


def _interval(s: str) -> str:
    """An inequality in one variable as interval notation: `2 \\le x < 5` -> `[2,5)`, `x > 3` -> `(3,\\infty)`."""
    if len(s) > 200 or "," in s:
        return s
    parts = _INEQ_RE.split(s)
    if len(parts) not in (3, 5):
        return s
    terms, ops = [p.strip() for p in parts[0::2]], parts[1::2]
    if any(not t for t in terms):
        return s
    if all(o in _MORE for o in ops):  # read `5 > x >= 2` as `2 <= x < 5`
        terms, ops = terms[::-1], [_LESS[{">": "<", "\\gt": "\\lt", ">=": "<=", "\\ge": "\\le", "\\geq": "\\leq",
                                          "\\geqslant": "\\leqslant", "\u2265": "\u2264"}[o]] for o in ops[::-1]]
    elif all(o in _LESS for o in ops):
        ops = [_LESS[o] for o in ops]
    else:
        return s
    var = [i for i, t in enumerate(terms) if len(t) == 1 and t.isalpha()]
    if len(terms) == 3 and var == [1]:
        lo, hi = terms[0], terms[2]
        return f"{'[' if ops[0] == '<=' else '('}{lo},{hi}{']' if ops[1] == '<=' else ')'}"
    if len(terms) == 2 and var == [0]:  # x < b
        return f"(-\\infty,{terms[1]}{']' if ops[0] == '<=' else ')'}"
    if len(terms) == 2 and var == [1]:  # a < x
        return f"{'[' if ops[0] == '<=' else '('}{terms[0]},\\infty)"
    return s


def _exact_decimal_ok(gold: str, pred: str, gp: tuple[Any, ...]) -> bool | None:
    """The rounding policy when `pred` is a plain decimal and `gold` an expression: None when it does not apply."""
    p = _as_number(pred)
    if p is None or "." not in pred or _as_number(gold) is not None:
        return None
    import sympy

    for g in gp:
        if isinstance(g, sympy.Basic) and g.is_number:
            if isinstance(g, sympy.Rational):
                return Fraction(int(g.p), int(g.q)) == p
            if isinstance(g, sympy.Float):
                return None
            return False  # an irrational gold: a finite decimal only rounds to it
    return None


def _exact_form(s: str) -> str:
    """Repeating decimals and e-notation as exact fractions math-verify can read: `0.\\overline{6}` -> `2/3`."""
    if "\\overline" in s or "\\bar" in s:
        s = _REPEAT_RE.sub(_repeating, s)
    sci = _SCI_RE.fullmatch(s.strip()) if "10^" in s else None
    if sci is not None:  # 6.02 \times 10^{23}
        return str(Fraction(sci.group(1)) * Fraction(10) ** int(sci.group(2)))
    if "e" in s.lower() and len(s) < 40 and _SIMPLE_NUM_RE.fullmatch(s.strip()):
        n = _as_number(s.strip())
        if n is not None:
            return str(n)
    return s


def _safe(s: str) -> bool:
    return len(s) <= MAX_ANSWER_CHARS and _depth(s) <= MAX_DEPTH


def equivalent(gold: str, pred: str) -> tuple[bool, str]:
    """(whether `pred` is equivalent to `gold`, the method that decided: numeric | math_verify | text)."""
    gold, pred = _exact_form(gold), _exact_form(pred)
    g, p = _as_number(gold), _as_number(pred)
    if g is not None and p is not None:
        if g == p:
            return True, "numeric"
        places = _DECIMAL_RE.fullmatch(gold.strip().replace(" ", ""))
        if places is not None and "." not in pred and "e" not in gold.lower():  # an exact 1/3 for a gold 0.33
            d = len(places.group(1))
            return abs(p - g) * 10 ** d <= Fraction(1, 2), "numeric"
        return False, "numeric"
    gold, pred = _interval(gold), _interval(pred)
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
    if ok:
        strict = _exact_decimal_ok(gold, pred, gp)
        if strict is not None:
            return strict, "numeric"
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
