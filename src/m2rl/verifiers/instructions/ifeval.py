"""The 25 IFEval instructions.

Semantics adapted from google-research `instruction_following_eval/instructions.py` (Apache-2.0, as in
lm-eval's `ifeval` task). Differences, all deliberate:
- keywords (`keywords:existence`, `keywords:frequency`) are whole words, as forbidden words are: the
  reference searches them as a substring (`re.search(keyword, value, re.IGNORECASE)`, `re.findall`
  for the count), so `cat` counts inside `concatenate` and `art` inside `start`; here they match
  literally, case-insensitively, with a word boundary on a side where the word starts/ends with a word
  character (`text.word_pattern`), so `c++`, `$100` and `e.g.` still match. Forbidden words use the
  same boundaries (the reference's `\\b...\\b` never matches `c++` or `e.g.` before a space);
- `letter_frequency` counts any single character (`#`, `!`), case-insensitively, as the reference's
  Counter does;
- kwargs that the reference draws at random when unset are required (see the package docstring);
- keywords, end phrases and section markers are matched literally (the reference passes them to `re`
  unescaped, so `C++` would raise);
- sentences are counted with Punkt and NLTK's English model, as the reference, with the differences
  listed in `text` (list markers, `e.g.`-like abbreviations, ellipses); words for
  `capital_word_frequency` with a Treebank-like regex tokenizer;
- pattern matches that the reference does with backtracking regexes (placeholders, bullets, titles,
  postscripts) are done with linear scans that give the same counts;
- `json.loads` on deeply nested input raising RecursionError counts as not JSON.
"""

from __future__ import annotations

import json
import re

from m2rl.verifiers.instructions import Args, compare, instruction
from m2rl.verifiers.instructions.text import (
    count_sentences,
    count_word,
    count_words,
    detect_language,
    word_pattern,
    word_tokenize,
)

S = "ifeval"

CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


@instruction("keywords:existence", S, ("keywords",))
def keywords_existence(text: str, a: Args) -> bool:
    # whole words (`word_pattern`); the reference's `re.search(keyword, value)` is a substring search
    return all(word_pattern(k).search(text) for k in a.strs("keywords"))


@instruction("keywords:frequency", S, ("keyword", "frequency", "relation"))
def keywords_frequency(text: str, a: Args) -> bool:
    n = count_word(text, a.str("keyword"))  # whole words; the reference's `re.findall` counts substrings
    return compare(n, a.relation(), a.int("frequency"))


@instruction("keywords:forbidden_words", S, ("forbidden_words",))
def forbidden_words(text: str, a: Args) -> bool:
    return not any(word_pattern(w).search(text) for w in a.strs("forbidden_words") if w)


@instruction("keywords:letter_frequency", S, ("letter", "let_frequency", "let_relation"))
def letter_frequency(text: str, a: Args) -> bool:
    # the reference counts `Counter(value.lower())[letter]`: a non-letter (`#`, `!` in IFEval's data)
    # is counted as that character
    letter = a.str("letter").lower()
    if len(letter) != 1:
        raise a._bad("letter", "one character")
    return compare(text.lower().count(letter), a.relation("let_relation"), a.int("let_frequency"))


@instruction("language:response_language", S, ("language",))
def response_language(text: str, a: Args) -> bool:
    lang = detect_language(text)
    return True if lang is None else lang == a.str("language")  # undetectable counts as followed (reference)


@instruction("length_constraints:number_sentences", S, ("num_sentences", "relation"))
def number_sentences(text: str, a: Args) -> bool:
    return compare(count_sentences(text), a.relation(), a.int("num_sentences"))


def _count_divided_paragraphs(text: str) -> int | None:
    """Paragraphs separated by `***`; None when an inner paragraph is empty."""
    paragraphs = re.split(r"\s?\*\*\*\s?", text)
    n = len(paragraphs)
    for i, p in enumerate(paragraphs):
        if not p.strip():
            if i == 0 or i == len(paragraphs) - 1:
                n -= 1
            else:
                return None
    return n


@instruction("length_constraints:number_paragraphs", S, ("num_paragraphs",))
def number_paragraphs(text: str, a: Args) -> bool:
    return _count_divided_paragraphs(text) == a.int("num_paragraphs")


@instruction("length_constraints:number_words", S, ("num_words", "relation"))
def number_words(text: str, a: Args) -> bool:
    return compare(count_words(text), a.relation(), a.int("num_words"))


@instruction("length_constraints:nth_paragraph_first_word", S, ("num_paragraphs", "nth_paragraph", "first_word"))
def nth_paragraph_first_word(text: str, a: Args) -> bool:
    want_n, nth, want = a.int("num_paragraphs"), a.int("nth_paragraph"), a.str("first_word").lower()
    if nth <= 0:
        raise a._bad("nth_paragraph", "a positive integer")
    paragraphs = text.split("\n\n")
    n = sum(1 for p in paragraphs if p.strip())
    if nth > n:
        return False
    paragraph = paragraphs[nth - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    first = []
    for ch in word:
        if ch in {".", ",", "?", "!", "'", '"'}:
            break
        first.append(ch.lower())
    return n == want_n and "".join(first) == want


def count_placeholders(text: str) -> int:
    """Non-overlapping `[...]` spans on one line (what `re.findall(r"\\[.*?\\]")` counts), in linear time."""
    n, i, size = 0, 0, len(text)
    while i < size:
        i = text.find("[", i)
        if i < 0:
            break
        eol = text.find("\n", i)
        eol = size if eol < 0 else eol
        j = text.find("]", i + 1, eol)
        if j < 0:
            i = eol + 1  # no `]` before the line ends: no later `[` on this line closes either
            continue
        n += 1
        i = j + 1
    return n


@instruction("detectable_content:number_placeholders", S, ("num_placeholders",))
def number_placeholders(text: str, a: Args) -> bool:
    return count_placeholders(text) >= a.int("num_placeholders")


@instruction("detectable_content:postscript", S, ("postscript_marker",))
def postscript(text: str, a: Args) -> bool:
    marker = a.str("postscript_marker")
    low = text.lower()
    if marker == "P.P.S":
        return re.search(r"p\.\s?p\.\s?s", low) is not None
    if marker == "P.S.":
        return re.search(r"p\.\s?s\.", low) is not None
    return marker.lower() in low


def count_bullets(text: str) -> int:
    """Lines that start (after white space) with `* ` (not `**`) or `-` (IFEval's two bullet regexes)."""
    n = 0
    for line in text.split("\n"):
        s = line.lstrip()
        if s.startswith("-") or (s.startswith("*") and len(s) > 1 and s[1] != "*"):
            n += 1
    return n


@instruction("detectable_format:number_bullet_lists", S, ("num_bullets",))
def number_bullet_lists(text: str, a: Args) -> bool:
    return count_bullets(text) == a.int("num_bullets")


@instruction("detectable_format:constrained_response", S)
def constrained_response(text: str, a: Args) -> bool:
    text = text.strip()
    return any(option in text for option in CONSTRAINED_RESPONSE_OPTIONS)


_HIGHLIGHT = re.compile(r"\*[^\n\*]*\*")
_DOUBLE_HIGHLIGHT = re.compile(r"\*\*[^\n\*]*\*\*")


@instruction("detectable_format:number_highlighted_sections", S, ("num_highlights",))
def number_highlighted_sections(text: str, a: Args) -> bool:
    n = sum(1 for h in _HIGHLIGHT.findall(text) if h.strip("*").strip())
    n += sum(1 for h in _DOUBLE_HIGHLIGHT.findall(text) if h[2:-2].strip())
    return n >= a.int("num_highlights")


@instruction("detectable_format:multiple_sections", S, ("section_spliter", "num_sections"))
def multiple_sections(text: str, a: Args) -> bool:
    splitter = re.escape(a.str("section_spliter"))
    sections = re.split(r"\s?" + splitter + r"\s?\d+\s?", text)
    return len(sections) - 1 >= a.int("num_sections")


def is_json(text: str) -> bool:
    value = text.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        if value.startswith(prefix):
            value = value[len(prefix):]
            break
    if value.endswith("```"):
        value = value[:-3]
    try:
        json.loads(value.strip())
    except (ValueError, RecursionError):
        return False
    return True


@instruction("detectable_format:json_format", S)
def json_format(text: str, a: Args) -> bool:
    return is_json(text)


def has_title(text: str) -> bool:
    """A `<<title>>` with some non-blank text on one line (IFEval's greedy `<<[^\\n]+>>`, linearly)."""
    for line in text.split("\n"):
        i = line.find("<<")
        if i < 0:
            continue
        j = line.rfind(">>")
        if j >= i + 3 and line[i:j + 2].lstrip("<").rstrip(">").strip():
            return True
    return False


@instruction("detectable_format:title", S)
def title(text: str, a: Args) -> bool:
    return has_title(text)


@instruction("combination:two_responses", S)
def two_responses(text: str, a: Args) -> bool:
    valid = []
    parts = text.split("******")
    for i, part in enumerate(parts):
        if not part.strip():
            if i != 0 and i != len(parts) - 1:
                return False
        else:
            valid.append(part)
    return len(valid) == 2 and valid[0].strip() != valid[1].strip()


@instruction("combination:repeat_prompt", S, ("prompt_to_repeat",))
def repeat_prompt(text: str, a: Args) -> bool:
    return text.strip().lower().startswith(a.str("prompt_to_repeat").lower())


@instruction("startend:end_checker", S, ("end_phrase",))
def end_checker(text: str, a: Args) -> bool:
    return text.strip().strip('"').lower().endswith(a.str("end_phrase").lower())


@instruction("change_case:capital_word_frequency", S, ("capital_frequency", "capital_relation"))
def capital_word_frequency(text: str, a: Args) -> bool:
    n = sum(1 for w in word_tokenize(text) if w.isupper())
    return compare(n, a.relation("capital_relation"), a.int("capital_frequency"))


@instruction("change_case:english_capital", S)
def english_capital(text: str, a: Args) -> bool:
    return text.isupper() and detect_language(text) in ("en", None)


@instruction("change_case:english_lowercase", S)
def english_lowercase(text: str, a: Args) -> bool:
    return text.islower() and detect_language(text) in ("en", None)


@instruction("punctuation:no_comma", S)
def no_comma(text: str, a: Args) -> bool:
    return "," not in text


@instruction("startend:quotation", S)
def quotation(text: str, a: Args) -> bool:
    text = text.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'
