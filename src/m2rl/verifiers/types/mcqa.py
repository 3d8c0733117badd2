"""The `mcqa` verifier: the chosen option letter equals the gold letter.

Valid letters come from `verifier.options` (A first, one per option; A–D without options). The letter
is read, in order of trust, from: the last answer marker (`Answer: C`, `answer is (C)`, `The answer is
definitely C`, `correct option is C`), the last `\\boxed{C}`, then the later of the last `(C)` / `**C**`
/ `[C]` and a trailing standalone letter, and last a reply that opens with the option (`A. 70 m/s²`). A letter is only ever taken standing alone, never out of a
word. Every pattern is a single pass without nested quantifiers, so it is linear in the text length.
"""

from __future__ import annotations

import re
import string
from typing import Any

from pydantic import Field

from m2rl.registry import StrictModel
from m2rl.verifiers.registry import Score, register_verifier

_MARK_RE = re.compile(r"answer(?:[ \t*]{0,4}[:\uff1a]|\s{1,4}is)|correct\s{1,4}(?:option|choice)\s{1,4}is", re.I)
_LETTER_RE = re.compile(r"(?<![A-Za-z0-9_\\])([A-Z])(?![A-Za-z0-9_])")
_BOXED_RE = re.compile(r"\\boxed\{\s{0,4}(?:\\text(?:bf)?\{)?\s{0,4}\(?([A-Za-z])\)?\s{0,4}\}")
_MARKED_RE = re.compile(r"\(([A-Z])\)|\*\*([A-Z])\*\*|\[([A-Z])\]")
_LEADING_RE = re.compile(r"\s{0,8}\(?([A-Z])[.):](?:\s|$)")
_WINDOW = 80


def valid_letters(meta: Any, gold: str = "") -> str:
    options = meta.get("options") if hasattr(meta, "get") else None
    if isinstance(options, (list, tuple)) and options:
        return string.ascii_uppercase[: min(len(options), 26)]
    n = 4
    if len(gold) == 1 and gold in string.ascii_uppercase:
        n = max(n, string.ascii_uppercase.index(gold) + 1)
    return string.ascii_uppercase[:n]


def _gold_letter(label: str, meta: Any) -> str | None:
    s = label.strip().strip("().[]*").strip()
    if len(s) == 1 and s.upper() in string.ascii_uppercase:
        return s.upper()
    options = meta.get("options") if hasattr(meta, "get") else None
    if isinstance(options, (list, tuple)):
        for i, opt in enumerate(options[:26]):
            if str(opt).strip() == label.strip():
                return string.ascii_uppercase[i]
    return None


def extract_letter(text: str, letters: str) -> tuple[str | None, str]:
    """(the chosen letter, where it came from: marker | boxed | marked | trailing | none)."""
    last = None
    for last in _MARK_RE.finditer(text):  # noqa: B007 - the last marker is the one that counts
        pass
    if last is not None:
        window = text[last.end(): last.end() + _WINDOW]
        bare = window.strip().strip("*$:.()[]{} \t\n")
        if len(bare) == 1 and bare.upper() in letters:
            return bare.upper(), "marker"
        for m in _LETTER_RE.finditer(window):
            if m.group(1) in letters:
                return m.group(1), "marker"
            break  # the first standalone capital after the marker is the answer, or none is
        boxed = _BOXED_RE.search(window)
        if boxed and boxed.group(1).upper() in letters:
            return boxed.group(1).upper(), "marker"
    boxed_letter = None
    for m in _BOXED_RE.finditer(text):
        if m.group(1).upper() in letters:
            boxed_letter = m.group(1).upper()
    if boxed_letter:
        return boxed_letter, "boxed"
    best, best_pos, how = None, -1, "none"
    for m in _MARKED_RE.finditer(text):
        letter = m.group(1) or m.group(2) or m.group(3)
        if letter in letters and m.start() > best_pos:
            best, best_pos, how = letter, m.start(), "marked"
    tail = text.rstrip(" \t\r\n.*)]}$")
    if tail and tail[-1] in letters and (len(tail) == 1 or not (tail[-2].isalnum() or tail[-2] in "_\\")):
        if len(tail) - 1 > best_pos:
            best, how = tail[-1], "trailing"
    if best is None:  # a reply that opens with the option itself: "A. 70 m/s^2"
        lead = _LEADING_RE.match(text)
        if lead and lead.group(1) in letters:
            best, how = lead.group(1), "leading"
    return best, how


class McqaParams(StrictModel):
    """The `mcqa` verifier's metadata."""

    options: list[Any] | None = Field(
        default=None, description="Option texts in letter order (A first); without them A-D are valid."
    )


@register_verifier("mcqa", params=McqaParams, inline_safe=True)  # linear time, no evaluation
def verify_mcqa(response: str, label: str, meta: Any) -> Score:
    gold = _gold_letter(label, meta)
    if gold is None:
        return Score(0.0, {"reason": f"gold answer {label[:40]!r} is not an option letter", "gold": label})
    letters = valid_letters(meta, gold)
    letter, how = extract_letter(response, letters)
    details = {"answer": letter, "gold": gold, "extraction": how}
    if letter is None:
        details["reason"] = f"no option letter ({letters[0]}-{letters[-1]}) found"
        return Score(0.0, details)
    if letter != gold:
        details["reason"] = "wrong option"
    return Score(1.0 if letter == gold else 0.0, details)

