"""IFEval-style constrained writing prompts: a writing request plus 1-3 verifiable instructions.

Instruction ids and kwarg names are IFEval's own (google-research `instruction_following_eval`, as in
lm-eval's `ifeval` task); the record's verifier carries `instruction_id_list` and `kwargs` (one dict
per id, `{}` for an instruction without arguments). Instructions that IFEval lists as conflicting are
never combined, nor are a few more pairs that cannot both hold (all capitals with `Section` markers,
a title before the first word of paragraph 1, ...), and no required phrase contains a forbidden word.

Kinds: `instruction_problem` (the standard mix) and the opt-in `single_constraint` (`options.kinds:
[single_constraint]`): a one-sentence request with one easy instruction, for models too small for the rest.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from m2rl.data.builtin import chat, draw_unique

RELATIONS = ("less than", "at least")

# IFEval's instruction ids -> their kwarg names (the arguments of each instruction's build_description)
IFEVAL_KWARGS: dict[str, tuple[str, ...]] = {
    "keywords:existence": ("keywords",),
    "keywords:frequency": ("keyword", "frequency", "relation"),
    "keywords:forbidden_words": ("forbidden_words",),
    "keywords:letter_frequency": ("letter", "let_frequency", "let_relation"),
    "language:response_language": ("language",),
    "length_constraints:number_sentences": ("num_sentences", "relation"),
    "length_constraints:number_paragraphs": ("num_paragraphs",),
    "length_constraints:number_words": ("num_words", "relation"),
    "length_constraints:nth_paragraph_first_word": ("num_paragraphs", "nth_paragraph", "first_word"),
    "detectable_content:number_placeholders": ("num_placeholders",),
    "detectable_content:postscript": ("postscript_marker",),
    "detectable_format:number_bullet_lists": ("num_bullets",),
    "detectable_format:constrained_response": (),
    "detectable_format:number_highlighted_sections": ("num_highlights",),
    "detectable_format:multiple_sections": ("section_spliter", "num_sections"),
    "detectable_format:json_format": (),
    "detectable_format:title": (),
    "combination:two_responses": (),
    "combination:repeat_prompt": ("prompt_to_repeat",),
    "startend:end_checker": ("end_phrase",),
    "change_case:capital_word_frequency": ("capital_frequency", "capital_relation"),
    "change_case:english_capital": (),
    "change_case:english_lowercase": (),
    "punctuation:no_comma": (),
    "startend:quotation": (),
}

_ALL = set(IFEVAL_KWARGS)

# IFEval's INSTRUCTION_CONFLICTS (made symmetric below), plus pairs that cannot both hold here
_CONFLICTS: dict[str, set[str]] = {
    "language:response_language": {"detectable_format:multiple_sections", "keywords:existence",
                                   "keywords:frequency", "keywords:forbidden_words", "startend:end_checker",
                                   "change_case:english_capital", "change_case:english_lowercase",
                                   # extra: English words / letter counts inside a foreign-language answer
                                   "length_constraints:nth_paragraph_first_word", "keywords:letter_frequency"},
    "length_constraints:number_paragraphs": {"length_constraints:nth_paragraph_first_word",
                                             "length_constraints:number_sentences"},
    # extra: a <<title>> or a `Section 1` marker would come before the first word
    "length_constraints:nth_paragraph_first_word": {"length_constraints:number_paragraphs",
                                                    "detectable_format:title",
                                                    "detectable_format:multiple_sections"},
    "detectable_format:constrained_response": set(_ALL),
    "detectable_format:multiple_sections": {"language:response_language",
                                            "detectable_format:number_highlighted_sections",
                                            # extra: the case checks and the case-sensitive `Section` marker
                                            "change_case:english_lowercase", "change_case:english_capital"},
    "detectable_format:json_format": _ALL - {"keywords:forbidden_words", "keywords:existence"},
    "combination:two_responses": _ALL - {"keywords:forbidden_words", "keywords:existence",
                                         "language:response_language", "detectable_format:title",
                                         "punctuation:no_comma"},
    "combination:repeat_prompt": _ALL - {"keywords:existence", "detectable_format:title", "punctuation:no_comma"},
    "change_case:capital_word_frequency": {"change_case:english_lowercase", "change_case:english_capital"},
    "change_case:english_lowercase": {"change_case:english_capital"},
    "startend:quotation": {"detectable_format:title"},
}


def _symmetric(conflicts: dict[str, set[str]]) -> dict[str, set[str]]:
    out = {k: set() for k in IFEVAL_KWARGS}
    for a, bs in conflicts.items():
        for b in bs:
            out[a].add(b)
            out[b].add(a)
    for k in out:
        out[k].add(k)
    return out


CONFLICTS = _symmetric(_CONFLICTS)

# --- the writing requests ----------------------------------------------------------------------------

TOPICS = (
    "the benefits of urban gardening", "how volcanoes form", "the history of the bicycle", "learning a second language",
    "the importance of sleep", "life on a space station", "the water cycle", "remote work", "public libraries",
    "the invention of the printing press", "saving money as a student", "the migration of birds",
    "the first day at a new school", "renewable energy", "the ocean at night", "a small town bakery",
    "the role of bees in farming", "climbing a mountain", "the art of making tea", "electric cars",
    "the life of a lighthouse keeper", "chess for beginners", "the rainforest", "a rainy afternoon",
    "how the internet works", "healthy breakfast habits", "the moon landing", "volunteering in the community",
    "the history of chocolate", "training a puppy", "an old railway station", "the value of friendship",
    "why we dream", "recycling at home", "the desert at sunrise", "the future of cities",
    "learning to play the piano", "a visit to a museum", "the importance of clean water", "winter sports",
    "the life cycle of a butterfly", "time management", "a family recipe", "the northern lights",
    "building a treehouse", "the history of maps", "a day at the beach", "planting a tree",
    "caring for houseplants", "the science of rainbows", "street food around the world", "the first computers",
)
PRODUCTS = (
    "a reusable water bottle", "a solar-powered lantern", "a pair of running shoes", "a smart thermostat",
    "a folding bicycle", "a wool winter hat", "a noise-cancelling headset", "a ceramic teapot",
    "a hiking backpack", "a desk lamp", "a kitchen scale", "a weatherproof jacket",
)
PLACES = ("Lisbon", "Kyoto", "Cape Town", "Reykjavik", "Vancouver", "Marrakesh", "Hanoi", "Edinburgh",
          "Buenos Aires", "Istanbul", "Oslo", "Cusco")
JOBS = ("a librarian", "a park ranger", "a software tester", "a bakery assistant", "a museum guide",
        "a bicycle mechanic", "a science teacher", "a hotel receptionist")

REQUESTS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"Write a short essay about {r.choice(TOPICS)}.",
    lambda r: f"Write a blog post about {r.choice(TOPICS)}.",
    lambda r: f"Write a letter to a friend about {r.choice(TOPICS)}.",
    lambda r: f"Write a short story about {r.choice(TOPICS)}.",
    lambda r: f"Write a speech for a school assembly about {r.choice(TOPICS)}.",
    lambda r: f"Write a poem about {r.choice(TOPICS)}.",
    lambda r: f"Explain {r.choice(TOPICS)} to a high school student.",
    lambda r: f"Write a product description for {r.choice(PRODUCTS)}.",
    lambda r: f"Write a travel guide entry for {r.choice(PLACES)}.",
    lambda r: f"Write a cover letter for a job as {r.choice(JOBS)}.",
    lambda r: f"Write a short news report about {r.choice(TOPICS)}.",
)
QUESTIONS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"Is it worth learning about {r.choice(TOPICS)}?",
    lambda r: f"Would {r.choice(PLACES)} be a good place for a first trip abroad?",
    lambda r: f"Is {r.choice(PRODUCTS)} a good birthday present?",
)

KEYWORDS = ("community", "future", "balance", "history", "energy", "simple", "garden", "window", "river",
            "morning", "student", "planet", "memory", "light", "network", "travel", "market", "health",
            "season", "coffee", "journey", "patience", "bridge", "silence", "harvest", "island", "lantern")
FORBIDDEN = ("very", "really", "basically", "actually", "thing", "stuff", "nice", "amazing", "literally",
             "awesome", "great", "important", "perfect", "definitely")
FIRST_WORDS = ("today", "first", "imagine", "finally", "however", "overall", "recently", "people", "many",
               "every", "sometimes", "after", "before", "although")
END_PHRASES = ("Any other questions?", "Is there anything else I can help with?", "Thank you for reading.",
               "Let me know what you think.", "That is all for now.")
LANGUAGES = {"fr": "French", "es": "Spanish", "de": "German", "it": "Italian", "pt": "Portuguese"}
COMMON_LETTERS = "eatonrsil"
RARE_LETTERS = "qzxj"


@dataclass(frozen=True)
class IfProblem:
    """One constrained-writing prompt: the user text, the IFEval ids and their kwargs."""

    prompt: str
    instruction_id_list: tuple[str, ...]
    kwargs: tuple[dict[str, Any], ...]


class _Draw:
    """The kwargs builders and descriptions of each instruction id."""

    def __init__(self, rng: random.Random, request: str):
        self.r = rng
        self.request = request

    def build(self, iid: str) -> tuple[dict[str, Any], str]:
        return getattr(self, iid.split(":")[1])()

    def existence(self):
        kws = self.r.sample(KEYWORDS, self.r.choice((1, 2, 2)))
        return {"keywords": kws}, f"Include the keywords {' and '.join(kws)} in the response."

    def frequency(self):
        kw = self.r.choice(KEYWORDS)
        rel = self.r.choice(RELATIONS)
        n = self.r.randint(2, 4)
        return ({"keyword": kw, "frequency": n, "relation": rel},
                f"In your response, the word {kw} should appear {rel} {n} times.")

    def forbidden_words(self):
        words = sorted(self.r.sample(FORBIDDEN, self.r.choice((1, 2, 3))))
        return ({"forbidden_words": words},
                f"Do not include the keywords {', '.join(words)} in the response.")

    def letter_frequency(self):
        rel = self.r.choice(RELATIONS)
        if rel == "at least":
            letter, n = self.r.choice(COMMON_LETTERS), self.r.randint(5, 20)
        else:
            letter, n = self.r.choice(RARE_LETTERS), self.r.randint(3, 6)
        return ({"letter": letter, "let_frequency": n, "let_relation": rel},
                f"In your response, the letter {letter} should appear {rel} {n} times.")

    def response_language(self):
        code = self.r.choice(sorted(LANGUAGES))
        return ({"language": code},
                f"Your ENTIRE response should be in {LANGUAGES[code]} language, no other language is allowed.")

    def number_sentences(self):
        rel = self.r.choice(RELATIONS)
        n = self.r.randint(3, 8) if rel == "at least" else self.r.randint(8, 15)
        return {"num_sentences": n, "relation": rel}, f"Your response should contain {rel} {n} sentences."

    def number_paragraphs(self):
        n = self.r.randint(2, 5)
        return ({"num_paragraphs": n},
                f"There should be {n} paragraphs. Paragraphs are separated with the markdown divider: ***")

    def number_words(self):
        rel = self.r.choice(RELATIONS)
        n = self.r.choice((50, 80, 100, 120, 150, 200, 250, 300)) if rel == "at least" else \
            self.r.choice((60, 80, 100, 120, 150, 200, 300))
        return {"num_words": n, "relation": rel}, f"Answer with {rel} {n} words."

    def nth_paragraph_first_word(self):
        n = self.r.randint(2, 5)
        k = self.r.randint(1, n)
        w = self.r.choice(FIRST_WORDS)
        return ({"num_paragraphs": n, "nth_paragraph": k, "first_word": w},
                f"There should be {n} paragraphs. Paragraphs and only paragraphs are separated with each other "
                f"by two new lines as if it was '\\n\\n' in python. Paragraph {k} must start with word {w}.")

    def number_placeholders(self):
        n = self.r.randint(1, 4)
        return ({"num_placeholders": n},
                f"The response must contain at least {n} placeholders represented by square brackets, "
                "such as [address].")

    def postscript(self):
        marker = self.r.choice(("P.S.", "P.P.S"))
        return ({"postscript_marker": marker},
                f"At the end of your response, please explicitly add a postscript starting with {marker}")

    def number_bullet_lists(self):
        n = self.r.randint(2, 6)
        return ({"num_bullets": n},
                f"Your answer must contain exactly {n} bullet points. Use the markdown bullet points such as:\n"
                "* This is point 1.\n* This is point 2")

    def constrained_response(self):
        return {}, ('Answer with one of the following options: ("My answer is yes.", "My answer is no.", '
                    '"My answer is maybe.")')

    def number_highlighted_sections(self):
        n = self.r.randint(1, 4)
        return ({"num_highlights": n},
                f"Highlight at least {n} sections in your answer with markdown, i.e. *highlighted section*.")

    def multiple_sections(self):
        splitter, n = self.r.choice(("Section", "SECTION")), self.r.randint(2, 5)
        return ({"section_spliter": splitter, "num_sections": n},
                f"Your response must have {n} sections. Mark the beginning of each section with {splitter} X, "
                f"such as:\n{splitter} 1\n[content of section 1]\n{splitter} 2\n[content of section 2]")

    def json_format(self):
        return {}, "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```."

    def title(self):
        return {}, "Your answer must contain a title wrapped in double angular brackets such as <<poem of joy>>."

    def two_responses(self):
        return {}, ("Give two different responses. Responses and only responses should be separated by "
                    "6 asterisk symbols: ******.")

    def repeat_prompt(self):
        # prompt_to_repeat is filled in once the whole request is known (see `_assemble`)
        return ({"prompt_to_repeat": None},
                "First repeat the request word for word without change, then give your answer (1. do not say "
                "any words or characters before repeating the request; 2. the request you need to repeat does "
                "not include this sentence)")

    def end_checker(self):
        phrase = self.r.choice(END_PHRASES)
        return ({"end_phrase": phrase},
                f'Finish your response with this exact phrase "{phrase}". No other words should follow this phrase.')

    def capital_word_frequency(self):
        rel = self.r.choice(RELATIONS)
        n = self.r.randint(2, 10) if rel == "at least" else self.r.randint(3, 10)
        return ({"capital_frequency": n, "capital_relation": rel},
                f"In your response, words with all capital letters should appear {rel} {n} times.")

    def english_capital(self):
        return {}, "Your entire response should be in English, and in all capital letters."

    def english_lowercase(self):
        return {}, "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed."

    def no_comma(self):
        return {}, "Refrain from the use of any commas in your entire response."

    def quotation(self):
        return {}, "Wrap your entire response with double quotation marks."


# draw weights: the special-purpose instructions less often
WEIGHTS = {iid: 1.0 for iid in IFEVAL_KWARGS}
WEIGHTS.update({"detectable_format:constrained_response": 0.3, "detectable_format:json_format": 0.4,
                "combination:two_responses": 0.4, "combination:repeat_prompt": 0.4,
                "language:response_language": 0.4, "change_case:capital_word_frequency": 0.6})

_REPEAT_SENTENCE = "First repeat the request word for word"


def _required_text(ids: list[str], kwargs: list[dict[str, Any]]) -> str:
    """Text that a correct response must contain because of some instruction."""
    parts: list[str] = []
    for iid, kw in zip(ids, kwargs, strict=False):
        if iid == "keywords:existence":
            parts += kw["keywords"]
        elif iid == "keywords:frequency" and kw["relation"] == "at least":
            parts.append(kw["keyword"])
        elif iid in ("startend:end_checker",):
            parts.append(kw["end_phrase"])
        elif iid == "length_constraints:nth_paragraph_first_word":
            parts.append(kw["first_word"])
        elif iid == "detectable_content:postscript":
            parts.append(kw["postscript_marker"])
        elif iid == "combination:repeat_prompt":
            parts.append(kw["prompt_to_repeat"] or "")
        elif iid == "detectable_format:multiple_sections":
            parts.append(kw["section_spliter"])
    return " ".join(parts)


def _consistent(ids: list[str], kwargs: list[dict[str, Any]]) -> bool:
    required = _required_text(ids, kwargs)
    for iid, kw in zip(ids, kwargs, strict=False):
        if iid == "keywords:forbidden_words":
            if any(re.search(rf"\b{w}\b", required, flags=re.IGNORECASE) for w in kw["forbidden_words"]):
                return False
        if iid == "keywords:frequency" and kw["relation"] == "less than":
            if kw["keyword"].lower() in required.lower():
                return False
        if iid == "keywords:letter_frequency" and kw["let_relation"] == "less than":
            if required.lower().count(kw["letter"]) * 2 >= kw["let_frequency"]:
                return False
        if iid == "punctuation:no_comma" and "," in required:
            return False
        if iid == "change_case:capital_word_frequency" and kw["capital_relation"] == "less than":
            capitals = [w for w in re.findall(r"[A-Za-z.]+", required) if w.isupper()]
            if len(capitals) * 2 >= kw["capital_frequency"]:
                return False
    return True


def _assemble(rng: random.Random) -> IfProblem:
    n = rng.choice((1, 1, 1, 2, 2, 2, 2, 3, 3, 3))
    ids: list[str] = []
    pool = list(IFEVAL_KWARGS)
    while len(ids) < n:
        options = [i for i in pool if all(i not in CONFLICTS[j] for j in ids)]
        if not options:
            break
        ids.append(rng.choices(options, [WEIGHTS[i] for i in options])[0])
    if "detectable_format:constrained_response" in ids:
        request = rng.choice(QUESTIONS)(rng)
    else:
        request = rng.choice(REQUESTS)(rng)
    draw = _Draw(rng, request)
    kwargs, descriptions = [], []
    for iid in ids:
        kw, text = draw.build(iid)
        kwargs.append(kw)
        descriptions.append(text)
    if "combination:repeat_prompt" in ids:
        # the repeat sentence goes last; the request to repeat is everything before it
        i = ids.index("combination:repeat_prompt")
        ids.append(ids.pop(i))
        kwargs.append(kwargs.pop(i))
        descriptions.append(descriptions.pop(i))
        body = " ".join([request, *descriptions[:-1]])
        kwargs[-1]["prompt_to_repeat"] = body
    prompt = " ".join([request, *descriptions])
    return IfProblem(prompt, tuple(ids), tuple(kwargs))


def instruction_problem(rng: random.Random) -> IfProblem:
    while True:
        p = _assemble(rng)
        if _consistent(list(p.instruction_id_list), list(p.kwargs)):
            return p


# --- one easy constraint for small models (opt-in) ------------------------------------------------------

SHORT_REQUESTS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"Write one sentence about {r.choice(TOPICS)}.",
    lambda r: f"Describe {r.choice(TOPICS)} in one short sentence.",
    lambda r: f"Write a short sentence about {r.choice(TOPICS)}.",
)
SHORT_END_PHRASES = ("Thank you.", "The end.", "That is all.", "Goodbye.", "See you soon.")

# (instruction id, its kwargs and a short description): the IFEval ids the `ifeval` verifier checks
_EASY: tuple[Callable[[random.Random], tuple[str, dict[str, Any], str]], ...] = (
    lambda r: (lambda kw: ("keywords:existence", {"keywords": [kw]}, f"Include the word {kw}."))(r.choice(KEYWORDS)),
    lambda r: ("punctuation:no_comma", {}, "Do not use any commas."),
    lambda r: ("change_case:english_lowercase", {}, "Write only in lowercase letters, with no capital letters."),
    lambda r: ("startend:quotation", {}, "Wrap your entire response in double quotation marks."),
    lambda r: (lambda ph: ("startend:end_checker", {"end_phrase": ph},
                           f'End your response with the exact phrase "{ph}"'))(r.choice(SHORT_END_PHRASES)),
)


def single_constraint(rng: random.Random) -> IfProblem:
    """Opt-in kind: a one-sentence request with ONE easy IFEval instruction (include a word, no commas, all
    lowercase, wrap in double quotes, end with a phrase), for models too small for the standard mix."""
    request = rng.choice(SHORT_REQUESTS)(rng)
    iid, kwargs, text = rng.choice(_EASY)(rng)
    return IfProblem(f"{request} {text}", (iid,), (kwargs,))


KINDS = (instruction_problem,)
EXTRA_KINDS = (single_constraint,)  # drawn only when asked for by name (options.kinds: [single_constraint])


def problems(rng: random.Random, count: int, kinds: Sequence[Callable[[random.Random], IfProblem]] = KINDS
             ) -> list[IfProblem]:
    return draw_unique(list(kinds), count, rng, lambda p: p.prompt)


def to_record(p: IfProblem) -> dict[str, Any]:
    return {"prompt": chat(p.prompt), "label": "",
            "verifier": {"type": "ifeval", "instruction_id_list": list(p.instruction_id_list),
                         "kwargs": [dict(k) for k in p.kwargs]}}
