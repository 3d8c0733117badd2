"""Text helpers shared by the instruction checkers: tokenizers, sentence splitter, language detection.

NLTK's data files (punkt, stopwords, the POS tagger) cannot be downloaded at run time, so the parts of
NLTK that the reference checkers use are replaced here by regex-based equivalents:

- `split_into_sentences` is IFEval's own regex splitter (google-research `instruction_following_eval`,
  Apache-2.0, as vendored in lm-eval's `ifeval` task); it also stands in for punkt (`count_sentences`,
  IFBench's `nltk.sent_tokenize`).
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


# --- sentences ---------------------------------------------------------------------------------------
# IFEval's splitter (google-research instruction_following_eval/instructions_util.py, Apache-2.0).
_ALPHABETS = "([A-Za-z])"
_PREFIXES = re.compile("(Mr|St|Mrs|Ms|Dr)[.]")
_SUFFIXES = "(Inc|Ltd|Jr|Sr|Co)"
_STARTERS = (r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|"
             r"That\s|This\s|Wherever)")
_ACRONYMS = "([A-Z][.][A-Z][.](?:[A-Z][.])?)"
_WEBSITES = re.compile("[.](com|net|org|io|gov|edu|me)")
_DIGITS = re.compile("([0-9])[.]([0-9])")
_MULTIPLE_DOTS = re.compile(r"\.{2,}")
_SINGLE_LETTER = re.compile(r"\s" + _ALPHABETS + "[.] ")
_ACRONYM_STARTER = re.compile(_ACRONYMS + " " + _STARTERS)
_THREE_LETTERS = re.compile(_ALPHABETS + "[.]" + _ALPHABETS + "[.]" + _ALPHABETS + "[.]")
_TWO_LETTERS = re.compile(_ALPHABETS + "[.]" + _ALPHABETS + "[.]")
_SUFFIX_STARTER = re.compile(" " + _SUFFIXES + "[.] " + _STARTERS)
_SUFFIX = re.compile(" " + _SUFFIXES + "[.]")
_LETTER_DOT = re.compile(" " + _ALPHABETS + "[.]")


_LIST_MARKER = re.compile(r"(?m)^([ \t]*[0-9]{1,3})[.]")  # `1.` opening a line: a list item, as punkt
_VS = re.compile(r"\b(vs|Vs|VS)[.]")
_ELLIPSIS_LOWER = re.compile(r"\.{2,}(?= +[a-z])")  # `Wait... what` goes on (punkt does not split)


def split_into_sentences(text: str) -> list[str]:
    """Sentences of `text` (IFEval's regex rules: abbreviations, decimals, acronyms, ellipses), plus:
    a numbered list marker opening a line (`1.`) and `vs.` end no sentence, nor does an ellipsis
    followed by a lower-case word."""
    text = _LIST_MARKER.sub("\\1<prd>", text)
    text = _VS.sub("\\1<prd>", text)
    text = _ELLIPSIS_LOWER.sub(lambda m: "<prd>" * len(m.group(0)), text)
    text = " " + text + "  "
    text = text.replace("\n", " ")
    text = _PREFIXES.sub("\\1<prd>", text)
    text = _WEBSITES.sub("<prd>\\1", text)
    text = _DIGITS.sub("\\1<prd>\\2", text)
    text = _MULTIPLE_DOTS.sub(lambda m: "<prd>" * len(m.group(0)) + "<stop>", text)
    if "Ph.D" in text:
        text = text.replace("Ph.D.", "Ph<prd>D<prd>")
    text = _SINGLE_LETTER.sub(" \\1<prd> ", text)
    text = _ACRONYM_STARTER.sub("\\1<stop> \\2", text)
    text = _THREE_LETTERS.sub("\\1<prd>\\2<prd>\\3<prd>", text)
    text = _TWO_LETTERS.sub("\\1<prd>\\2<prd>", text)
    text = _SUFFIX_STARTER.sub(" \\1<stop> \\2", text)
    text = _SUFFIX.sub(" \\1<prd>", text)
    text = _LETTER_DOT.sub(" \\1<prd>", text)
    if "”" in text:
        text = text.replace(".”", "”.")
    if '"' in text:
        text = text.replace('."', '".')
    if "!" in text:
        text = text.replace('!"', '"!')
    if "?" in text:
        text = text.replace('?"', '"?')
    text = text.replace(".", ".<stop>").replace("?", "?<stop>").replace("!", "!<stop>")
    text = text.replace("<prd>", ".")
    sentences = [s.strip() for s in text.split("<stop>")]
    if sentences and not sentences[-1]:
        sentences = sentences[:-1]
    return sentences


def count_sentences(text: str) -> int:
    return len(split_into_sentences(text))


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
