"""The 29 extra IF-RLVR training instructions (IFTrain / IFEvalG, used by Tulu-3 / Nemotron IF data).

Semantics adapted from allenai/open-instruct `open_instruct/IFEvalG/instructions.py` (Apache-2.0,
Copyright 2024 The Google Research Authors). Differences, all deliberate: NLTK is replaced (see `text`),
kwargs the reference would draw at random are required, keywords are matched literally and as whole
words (`text.word_pattern`: the reference's `re.findall(keyword, ...)` also counts `cat` inside
`concatenate`; a boundary is only required on a side where the keyword starts/ends with a word
character, so `c++` and `$100` still count), an empty
response is a failure where the reference would raise IndexError, and `copy:repeat_phrase` finds its
phrases with a linear scan that gives the same matches as the reference's lazy regex.
"""

from __future__ import annotations

import re

from m2rl.verifiers.instructions import Args, compare, instruction
from m2rl.verifiers.instructions.ifeval import letter_frequency
from m2rl.verifiers.instructions.text import count_word, split_into_sentences, word_tokenize

S = "iftrain"


def find_phrases(text: str, first: str, last: str) -> list[str]:
    """Non-overlapping `first .*? last` matches on one line (the reference's regex), in linear time."""
    out: list[str] = []
    head, tail = first + " ", " " + last
    i, size = 0, len(text)
    while i < size:
        p = text.find(head, i)
        if p < 0:
            break
        eol = text.find("\n", p)
        eol = size if eol < 0 else eol
        q = text.find(tail, p + len(head), eol)  # `.*?` may be empty: the tail may start right after the head
        if q < 0:
            i = eol + 1
            continue
        out.append(text[p:q + len(tail)])
        i = q + len(tail)
    return out


@instruction("copy:repeat_phrase", S, ("phrase", "small_n"))
def repeat_phrase(text: str, a: Args) -> bool:
    ref = a.str("phrase").split()
    found = find_phrases(text, ref[0], ref[-1])
    if len(found) != a.int("small_n"):
        return False
    differences = 0
    for phrase in found:
        words = phrase.split()
        if len(words) != len(ref):
            return False
        differences = sum(1 for x, y in zip(words, ref, strict=True) if x != y)
        if differences > 1:
            return False
    return differences == 1  # the reference judges the last phrase found


@instruction("copy:copy", S, ("prompt_to_repeat",))
def copy(text: str, a: Args) -> bool:
    return text.strip().lower() == a.str("prompt_to_repeat").lower()


@instruction("new:copy_span_idx", S, ("prompt_to_repeat", "n_start", "n_end"))
def copy_span_idx(text: str, a: Args) -> bool:
    prompt = a.str("prompt_to_repeat", strip=False)
    return text.strip().lower() == prompt[a.int("n_start"):a.int("n_end")].strip().lower()


@instruction("detectable_format:sentence_hyphens", S)
def sentence_hyphens(text: str, a: Args) -> bool:
    gold = split_into_sentences(text.replace("-", " "))
    for sentence, g in zip(text.split("-"), gold, strict=False):
        if sentence.strip() != sentence or sentence != g:
            return False
    return True


@instruction("keywords:no_adjacent_consecutive", S)
def no_adjacent_consecutive(text: str, a: Args) -> bool:
    ws = text.split()
    for i in range(len(ws) - 1):
        x, y = ws[i][0].lower(), ws[i + 1][0].lower()
        if len(x) != 1 or len(y) != 1 or ord(y) - ord(x) == 1:
            return False
    return True


@instruction("detectable_format:square_brackets", S)
def square_brackets(text: str, a: Args) -> bool:
    return all(w.startswith("[") and w.endswith("]") for w in text.split())


def _occurrences(text: str, keyword: str) -> int:
    return count_word(text, keyword)


@instruction("keywords:word_once", S, ("keyword",))
def word_once(text: str, a: Args) -> bool:
    return _occurrences(text, a.str("keyword")) == 1


@instruction("keywords:word_count_different_numbers", S, ("keyword", "frequency", "relation"))
def word_count_different_numbers(text: str, a: Args) -> bool:
    return compare(_occurrences(text, a.str("keyword")), a.relation(), a.int("frequency"))


@instruction("keywords:exclude_word_harder", S, ("keyword",))
def exclude_word_harder(text: str, a: Args) -> bool:
    return " " + a.str("keyword") + " " not in text


def _two_paragraphs(paragraphs: list[str]) -> bool:
    n = len(paragraphs)
    for i, p in enumerate(paragraphs):
        if not p.strip():
            if i == 0 or i == len(paragraphs) - 1:
                n -= 1
            else:
                return False
    return n == 2


@instruction("paragraphs:paragraphs", S)
def paragraphs(text: str, a: Args) -> bool:
    return _two_paragraphs(re.split(r"\s?\*\*\*\s?", text))


@instruction("paragraphs:paragraphs2", S)
def paragraphs2(text: str, a: Args) -> bool:
    return _two_paragraphs(text.split("\n\n"))


@instruction("first_word:first_word_sent", S, ("first_word",))
def first_word_sent(text: str, a: Args) -> bool:
    want = a.str("first_word").lower()
    for sentence in split_into_sentences(text):
        if not sentence.strip() or sentence.split()[0].strip().lower() != want:
            return False
    return True


@instruction("first_word:first_word_answer", S, ("first_word",))
def first_word_answer(text: str, a: Args) -> bool:
    ws = text.split()
    return bool(ws) and ws[0].lower() == a.str("first_word").lower()


def _bare(word: str) -> str:
    return re.sub(r"[^\w\s]", "", word).lower()


@instruction("last_word:last_word_sent", S, ("last_word",))
def last_word_sent(text: str, a: Args) -> bool:
    want = a.str("last_word").lower()
    for sentence in split_into_sentences(text):
        if not sentence.strip() or _bare(sentence.split()[-1]) != want:
            return False
    return True


@instruction("last_word:last_word_answer", S, ("last_word",))
def last_word_answer(text: str, a: Args) -> bool:
    ws = text.split()
    return bool(ws) and _bare(ws[-1]) == a.str("last_word").lower()


@instruction("detectable_format:bigram_wrapping", S)
def bigram_wrapping(text: str, a: Args) -> bool:
    ws = text.split()
    return all(ws[i].startswith("<<") and ws[i + 1].endswith(">>") for i in range(0, len(ws) - 1, 2))


@instruction("copy:copying_simple", S, ("prompt_to_repeat",))
def copying_simple(text: str, a: Args) -> bool:
    return text.strip().lower() == a.str("prompt_to_repeat").lower()


@instruction("copy:copying_multiple", S, ("prompt_to_repeat", "N"))
def copying_multiple(text: str, a: Args) -> bool:
    prompt = a.str("prompt_to_repeat").lower()
    parts = text.split("******")
    return len(parts) == a.int("N") and all(p.strip().lower() == prompt for p in parts)


@instruction("punctuation:punctuation_dot", S)
def punctuation_dot(text: str, a: Args) -> bool:
    return "." not in text


@instruction("punctuation:punctuation_exclamation", S)
def punctuation_exclamation(text: str, a: Args) -> bool:
    return "!" not in text


@instruction("count:lowercase_counting", S, ("N",))
def lowercase_counting(text: str, a: Args) -> bool:
    return len(re.findall(r"\b[a-z]+\b", text)) <= a.int("N")


@instruction("letters:letter_counting", S, ("N", "relation"))
def letter_counting(text: str, a: Args) -> bool:
    return compare(len(re.findall(r"[a-zA-Z]", text)), a.relation(), a.int("N"))


instruction("letters:letter_counting2", S, ("letter", "let_frequency", "let_relation"))(
    lambda text, a: letter_frequency(text, a))


@instruction("count:counting_composition", S, ("n_sent", "n_words"))
def counting_composition(text: str, a: Args) -> bool:
    n_sent, n_words = a.int("n_sent"), a.int("n_words")
    parts = re.split(r"\s?\*\*\*\s?", text)
    n = len(parts)
    for i, paragraph in enumerate(parts):
        if not paragraph.strip():
            if i == 0 or i == len(parts) - 1:
                n -= 1
            else:
                return False
        sentences = split_into_sentences(paragraph)
        if len(sentences) != n_sent:
            return False
        if any(len(word_tokenize(s)) != n_words for s in sentences):
            return False
    return n == 3


@instruction("count:count_unique", S)
def count_unique(text: str, a: Args) -> bool:
    tokens = word_tokenize(text)
    return len(tokens) == len(set(tokens))


@instruction("count:count_increment_word", S, ("keyword1", "keyword2"))
def count_increment_word(text: str, a: Args) -> bool:
    return _occurrences(text, a.str("keyword1")) == 1 and _occurrences(text, a.str("keyword2")) == 2


@instruction("keywords:palindrome", S)
def palindrome(text: str, a: Args) -> bool:
    return any(w == w[::-1] for w in text.split())


@instruction("keywords:keyword_specific_position", S, ("keyword", "n", "m"))
def keyword_specific_position(text: str, a: Args) -> bool:
    keyword, n, m = a.str("keyword"), a.int("n"), a.int("m")
    if n <= 0 or m <= 0:
        raise a._bad("n" if n <= 0 else "m", "a positive integer")
    sentences = split_into_sentences(text)
    if len(sentences) < n:
        return False
    ws = word_tokenize(sentences[n - 1])
    return len(ws) >= m and ws[m - 1] == keyword


@instruction("keywords:start_end", S)
def start_end(text: str, a: Args) -> bool:
    ws = word_tokenize(text)
    return len(ws) >= 2 and ws[0].lower() == ws[-1].lower()
