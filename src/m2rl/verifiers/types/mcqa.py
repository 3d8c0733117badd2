"""The `mcqa` verifier: the chosen option letter equals the gold letter.

Valid letters come from `verifier.options` (A first, one per option; A-D without options). The letter
is read, in order of trust, from: the last conclusion, i.e. the later of the last answer marker (`Answer:
C`, `answer is (C)`, `The answer is definitely C`, `correct/best option is C`) and the last verdict on an
option (`Option D is correct`, `choice (B) is the best`); then the last `\\boxed{C}`, then the later of
the last `(C)` / `**C**` / `[C]` and a trailing standalone letter, then a reply that opens with the option
(`A. 70 m/s²`), and last a reply that is exactly one option's text. An answer marker followed by an
option's text (`Answer: Madrid`) maps to that option when the text matches exactly one option (case and
spacing aside). A hedged answer naming several letters (`Answer: A and B`, `It could be A, B or C`) scores
0, where simple-evals' `Answer\\s*:\\s*([A-D])` would take its first letter. A letter is only ever taken
standing alone, never out of a word. Every pattern is a single pass without nested quantifiers, so it is
linear in the text length.
"""

from __future__ import annotations

import re
import string
from typing import Any

from pydantic import Field

from m2rl.registry import StrictModel
from m2rl.verifiers.registry import Score, register_verifier

_MARK_RE = re.compile(r"answer(?:[ \t*]{0,4}[:\uff1a]|\s{1,4}is)|(?:correct|best|right)\s{1,4}(?:option|choice)\s{1,4}is",
                      re.I)
# "Option D is correct", "choice (B) is the best": the letter comes before the verdict
_OPTION_IS_RE = re.compile(r"(?i:\b(?:option|choice))\s{1,4}\(?([A-Z])\)?\s{1,4}(?i:is)\s{1,4}(?i:the\s{1,4})?"
                           r"(?i:correct|right|best|answer)")
# a separator between two letters of one hedged answer: "A and B", "A, B or C", "A/B"
_SEP_RE = re.compile(r"[\s,/&()*]{0,6}(?:(?i:and|or|and/or)[\s()*]{1,4})?")
_SENTENCE_END = ".!?\n"
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


def _run_from(text: str, m: re.Match, letters: str) -> tuple[set[str], int]:
    """The letters of the run that starts at the standalone letter `m`: `A`, `A and B`, `A, B or C`."""
    run = {m.group(1)}
    pos = m.end()
    while True:
        sep = _SEP_RE.match(text, pos)
        nxt = _LETTER_RE.match(text, sep.end()) if sep else None
        if not sep or sep.end() == pos or nxt is None or nxt.group(1) not in letters:
            return run, pos
        run.add(nxt.group(1))
        pos = nxt.end()


def _norm_option(s: str) -> str:
    s = s.replace("**", "").replace("$", "").strip()
    if s.startswith("\\boxed{") and s.endswith("}"):
        s = s[7:-1]
    return " ".join(s.strip().rstrip(".").strip().lower().split())


def _option_by_text(answer: str, options: Any) -> str | None:
    """The letter of the one option whose text is exactly `answer` (case and spacing aside)."""
    if not isinstance(options, (list, tuple)) or not answer.strip():
        return None
    want = _norm_option(answer)
    hits = [i for i, opt in enumerate(options[:26]) if want and _norm_option(str(opt)) == want]
    return string.ascii_uppercase[hits[0]] if len(hits) == 1 else None


def extract_letter(text: str, letters: str, options: Any = None) -> tuple[str | None, str]:
    """(the chosen letter, where it came from: marker | boxed | marked | trailing | none)."""
    last = None
    for last in _MARK_RE.finditer(text):  # noqa: B007 - the last marker is the one that counts
        pass
    verdict = None
    for verdict in _OPTION_IS_RE.finditer(text):  # noqa: B007 - "Option D is correct"
        pass
    if verdict is not None and verdict.group(1) in letters and (last is None or verdict.start() >= last.start()):
        return verdict.group(1), "marker"
    if last is not None:
        window = text[last.end(): last.end() + _WINDOW]
        bare = window.strip().strip("*$:.()[]{} \t\n")
        if len(bare) == 1 and bare.upper() in letters:
            return bare.upper(), "marker"
        for m in _LETTER_RE.finditer(window):
            if m.group(1) in letters:
                if len(_run_from(window, m, letters)[0]) > 1:
                    return None, "hedged"
                return m.group(1), "marker"
            break  # the first standalone capital after the marker is the answer, or none is
        boxed = _BOXED_RE.search(window)
        if boxed and boxed.group(1).upper() in letters:
            return boxed.group(1).upper(), "marker"
        line = text[last.end():].lstrip(" \t*:")
        cut = line.find("\n")
        by_text = _option_by_text(line if cut < 0 else line[:cut], options)
        if by_text and by_text in letters:
            return by_text, "marker-text"
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
            start = max(tail.rfind(c, 0, len(tail) - 1) for c in _SENTENCE_END) + 1
            run_end = start
            for m in _LETTER_RE.finditer(tail, start):  # the run the trailing letter ends: "A, B or C"
                if m.group(1) in letters and m.start() >= run_end:
                    run, run_end = _run_from(tail, m, letters)
                    if len(run) > 1 and run_end == len(tail):
                        return None, "hedged"
    if best is None:  # a reply that opens with the option itself: "A. 70 m/s^2"
        lead = _LEADING_RE.match(text)
        if lead and lead.group(1) in letters:
            best, how = lead.group(1), "leading"
    if best is None:  # the whole reply is one option's text
        by_text = _option_by_text(text, options)
        if by_text and by_text in letters:
            best, how = by_text, "text"
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
    letter, how = extract_letter(response, letters, meta.get("options") if hasattr(meta, "get") else None)
    details = {"answer": letter, "gold": gold, "extraction": how}
    if letter is None:
        details["reason"] = ("a hedged answer names several options" if how == "hedged"
                             else f"no option letter ({letters[0]}-{letters[-1]}) found")
        return Score(0.0, details)
    if letter != gold:
        details["reason"] = "wrong option"
    return Score(1.0 if letter == gold else 0.0, details)

