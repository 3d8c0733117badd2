"""Reference-agreement classes of issue 16 for the instruction checkers: forbidden-word boundaries,
non-letter `letter_frequency`, IFBench `ratio:overlap`, sentence counting."""

from __future__ import annotations

import pytest

from m2rl.verifiers.types.ifeval import verify_ifeval


def follows(text, iid, kwargs):
    return verify_ifeval(text, "", {"type": "ifeval", "instruction_id_list": [iid], "kwargs": [kwargs]}).value == 1.0


# --- keywords:forbidden_words ------------------------------------------------------------------------
@pytest.mark.parametrize("word,text,present", [
    ("c++", "I mostly write C++ code.", True),
    ("c++", "I mostly write C++.", True),
    ("c++", "I mostly write c++", True),
    ("c++", "I mostly write c+++ code.", True),  # literal: `c++` occurs; the char after is not a word char
    ("c++", "I write C code.", False),
    ("$100", "It costs $100 today.", True),
    ("$100", "It costs $1000 today.", False),
    ("e.g.", "Fruit, e.g. apples.", True),
    ("e.g.", "Fruit, eg apples.", False),
    ("cat", "The Cat sat.", True),
    ("cat", "Many cats sat.", False),
    ("cat", "concatenate", False),
    ("a.b", "axb", False),  # literal, not a regex
    ("new york", "I love New York!", True),
])
def test_forbidden_words_boundaries(word, text, present):
    assert follows(text, "keywords:forbidden_words", {"forbidden_words": [word]}) is (not present)


def test_keywords_existence_is_literal_case_insensitive_substring_as_reference():
    # the reference does `re.search(keyword, value, re.IGNORECASE)`: no word boundary
    assert follows("I love C++ a lot.", "keywords:existence", {"keywords": ["c++"]})
    assert follows("Fruit, e.g. apples.", "keywords:existence", {"keywords": ["E.G."]})
    assert not follows("Fruit, eg apples.", "keywords:existence", {"keywords": ["e.g."]})
    assert follows("a $100 bill and $100 more", "keywords:frequency",
                   {"keyword": "$100", "frequency": 2, "relation": "at least"})


# --- keywords:letter_frequency with a non-letter (real IFEval rows) ----------------------------------
def test_letter_frequency_counts_non_letter_characters():
    kw = {"let_relation": "at least", "letter": "#", "let_frequency": 4}
    assert follows("#one #two #three #four", "keywords:letter_frequency", kw)
    assert not follows("#one #two #three", "keywords:letter_frequency", kw)
    kw = {"let_relation": "less than", "letter": "!", "let_frequency": 3}
    assert follows("Wow! Great!", "keywords:letter_frequency", kw)
    assert not follows("Wow! Great! Yes!", "keywords:letter_frequency", kw)
    kw = {"let_relation": "at least", "letter": "Z", "let_frequency": 2}
    assert follows("zaZ", "keywords:letter_frequency", kw)


# --- IFBench ratio:overlap: distinct word-token trigrams of the response shared with the reference ----
def test_ratio_overlap_is_ifbench_trigram_set_ratio():
    ref = "The quick brown fox jumps over the lazy dog ."
    kw = {"reference_text": ref, "percentage": 50}
    # response trigrams (set): the quick brown / quick brown fox / brown fox sleeps / fox sleeps .
    # -> 2 of 4 shared = 50%
    assert follows("The quick brown fox sleeps .", "ratio:overlap", kw)
    assert not follows("The quick brown fox jumps .", "ratio:overlap", kw)  # 3 of 4 = 75%
    # duplicates count once (a set), case matters (no lower-casing)
    assert follows("The quick brown fox sleeps . The quick brown", "ratio:overlap", kw) is False  # 3/6
    assert not follows("the Quick Brown fox sleeps .", "ratio:overlap", {"reference_text": ref, "percentage": 50})
    assert not follows("two words", "ratio:overlap", {"reference_text": ref, "percentage": 0})  # no trigram


# --- sentence counting -------------------------------------------------------------------------------
@pytest.mark.parametrize("text,n", [
    ("Here is the plan.\n1. Mix the flour.\n2. Bake it.", 3),
    ("Apples vs. oranges is an old debate. Next one.", 2),
    ("Fruit, e.g. apples, is good. Yes.", 2),
    ("Acme Inc. makes things. Good.", 2),
    ("Wait... what happened? Nothing.", 2),
    ('He said "stop." Then he left.', 2),
    ("I have 3. You have 4.", 2),
])
def test_sentence_counting_real_text(text, n):
    from m2rl.verifiers.instructions.text import count_sentences
    assert count_sentences(text) == n
