"""Sentence splitting against the reference: IFEval's `count_sentences` and IFBench's `sent_tokenize`
are NLTK's Punkt with its English model. Every expected value below is what NLTK 3.9.1 (and 3.8.1,
3.10.4: identical) returned with that model, recorded here as literals (NLTK's data cannot be
downloaded in CI). M2RL agrees with it except in the classes issue 16 names, where Punkt creates or
hides a sentence: `DIFFERENT` holds the reference's count and M2RL's, so each deliberate difference is
explicit, and a change of either side fails a test."""

from __future__ import annotations

import time

import pytest

from m2rl.verifiers.instructions.text import MAX_SPLIT_CHARS, count_sentences, split_into_sentences
from m2rl.verifiers.types.ifeval import verify_ifeval

# (text, NLTK Punkt's sentence count): M2RL gives the same
AGREE = [
    ("Dr. Smith went to the U.S. last year. He liked it.", 2),
    ("Acme Inc. makes things. Good.", 2),
    ("Apples vs. oranges is an old debate. Next one.", 2),
    ("Wait... what happened? Nothing.", 2),
    ("He said \"Stop.\" Then...", 2),
    ("He said “Stop.” Then he left.", 2),
    ("She asked, \"Why?\" He shrugged.", 2),
    ("I have 3. You have 4.", 2),
    ("Pi is 3.14 and e is 2.72. Both are irrational.", 2),
    ("It is 5 p.m. now. OK.", 2),
    ("In the U.S. The economy grew.", 2),
    ("I like apples, pears, etc. They are good.", 2),
    ("Mr. and Mrs. Jones arrived at 10 a.m. sharp. They left at noon.", 2),
    ("Visit www.example.com for details. Thanks!", 2),
    ("What? No way! Really?! Yes.", 4),
    ("Wow!!! Great.", 2),
    ("1) Mix the flour.\n2) Bake it.", 2),
    ("- Mix the flour.\n- Bake it.\n- Serve it warm.", 3),
    ("* First item\n* Second item", 1),
    ("The results (see above) were clear. (We checked twice.) Done.", 3),
    ("Step 1. Mix the flour. Step 2. Bake it.", 4),
    ("I went to... Paris.", 1),
    ("Title\n\nThis is the body. It has two sentences.", 2),
    ("## Summary\n\nThe model performs well. However, it is slow.\n\n## Details\n\nWe ran 3 tests.", 3),
    ("no punctuation at all", 1),
    ("", 0),
]

# (text, NLTK Punkt's count, M2RL's count): the deliberate differences (see `text`'s sentence section)
DIFFERENT = [
    ("Here is the plan.\n1. Mix the flour.\n2. Bake it.", 5, 3),  # list marker
    ("Steps:\n1. Mix the flour\n2. Bake it", 3, 3),  # list marker (same count, the break moves before `2.`)
    ("**1.** Mix the flour.\n**2.** Bake it.", 4, 2),  # list marker
    ("Here is the plan. 1. Mix. 2. Bake.", 5, 3),  # list marker
    ("Fruit, e.g. apples, is good. Yes.", 3, 2),  # abbreviation
    ("Use tools, i.e. hammers. Fine.", 3, 2),  # abbreviation
    ("Apples, pears, etc. are fruit. Yes.", 3, 2),  # etc. before a lower-case word
    ("It costs approx. 5 dollars. Fine.", 3, 2),  # abbreviation
    ("See No. 5 and Fig. 3 for details. Done.", 4, 2),  # abbreviation before a number
    ("Smith et al. showed it. Later work agreed.", 3, 2),  # al. before a lower-case word
    ("He paused... She left.", 1, 2),  # ellipsis before a capitalised common word
    ("Wait… What happened?", 1, 2),  # ellipsis before a capitalised common word
]

# real-format responses: NLTK Punkt's sentences, exactly (M2RL gives the same)
REAL = [
    ("Sure! Here is a short overview of the topic.\n\nThe Industrial Revolution began in Britain in the late 18th century. It transformed manufacturing, transport and agriculture. Historians still debate its causes; however, most agree that coal, capital and colonial trade all played a part.\n\nBy 1850, railways connected most major cities. Factory work drew millions into towns such as Manchester and Leeds. Living conditions were often poor, and reformers like Edwin Chadwick pushed for public health laws.\n\nIn short, the period reshaped the modern world. Is there anything else you would like to know?",
    [
        "Sure!",
        "Here is a short overview of the topic.",
        "The Industrial Revolution began in Britain in the late 18th century.",
        "It transformed manufacturing, transport and agriculture.",
        "Historians still debate its causes; however, most agree that coal, capital and colonial trade all played a part.",
        "By 1850, railways connected most major cities.",
        "Factory work drew millions into towns such as Manchester and Leeds.",
        "Living conditions were often poor, and reformers like Edwin Chadwick pushed for public health laws.",
        "In short, the period reshaped the modern world.",
        "Is there anything else you would like to know?"
    ]),
    ("Dear Mr. Thompson,\n\nThank you for your letter of March 3rd. I have reviewed the proposal from Acme Corp. and I think it is promising. The budget, at roughly $2.5 million, is within our limits.\n\nHowever, I have two concerns. First, the timeline seems optimistic. Second, the team has not worked with the U.S. regulators before.\n\nCould we meet next week to discuss? I am free on Tuesday at 3 p.m.\n\nBest regards,\nDr. Jane Alvarez",
    [
        "Dear Mr. Thompson,\n\nThank you for your letter of March 3rd.",
        "I have reviewed the proposal from Acme Corp. and I think it is promising.",
        "The budget, at roughly $2.5 million, is within our limits.",
        "However, I have two concerns.",
        "First, the timeline seems optimistic.",
        "Second, the team has not worked with the U.S. regulators before.",
        "Could we meet next week to discuss?",
        "I am free on Tuesday at 3 p.m.\n\nBest regards,\nDr. Jane Alvarez"
    ]),
    ("**Why sleep matters**\n\nSleep is not a luxury! It is a biological necessity. During deep sleep, the brain clears waste products and consolidates memories. Adults need 7-9 hours per night, according to the National Sleep Foundation.\n\n*Tips for better sleep:*\n* Keep a regular schedule.\n* Avoid screens an hour before bed.\n* Keep the bedroom cool and dark.\n\n\"I used to sleep five hours a night,\" one reader told us. \"Now I sleep eight, and I feel like a new person.\" That is a common story.",
    [
        "**Why sleep matters**\n\nSleep is not a luxury!",
        "It is a biological necessity.",
        "During deep sleep, the brain clears waste products and consolidates memories.",
        "Adults need 7-9 hours per night, according to the National Sleep Foundation.",
        "*Tips for better sleep:*\n* Keep a regular schedule.",
        "* Avoid screens an hour before bed.",
        "* Keep the bedroom cool and dark.",
        "\"I used to sleep five hours a night,\" one reader told us.",
        "\"Now I sleep eight, and I feel like a new person.\"",
        "That is a common story."
    ]),
]


@pytest.mark.parametrize("text,reference", AGREE)
def test_agrees_with_punkt(text, reference):
    assert count_sentences(text) == reference


@pytest.mark.parametrize("text,reference,ours", DIFFERENT)
def test_deliberate_differences_from_punkt(text, reference, ours):
    assert ours != reference or "\n2." in text  # the one same-count case moves a break
    assert count_sentences(text) == ours


@pytest.mark.parametrize("text,sentences", REAL)
def test_real_responses_split_as_punkt(text, sentences):
    assert split_into_sentences(text) == sentences


def test_list_items_are_one_sentence_each_with_their_marker():
    assert split_into_sentences("Here is the plan.\n1. Mix the flour.\n2. Bake it.") == [
        "Here is the plan.", "1. Mix the flour.", "2. Bake it."]
    assert split_into_sentences("Steps:\n  1. Mix the flour\n  2. Bake it") == [
        "Steps:", "1. Mix the flour", "2. Bake it"]
    # a number ending a sentence mid-line is Punkt's: `Step 1.` ends one
    assert split_into_sentences("Step 1. Mix.") == ["Step 1.", "Mix."]
    # a number at the end of a line that is not a list marker stays with its sentence
    assert split_into_sentences("The answer is\n42.") == ["The answer is\n42."]


def test_continuing_abbreviations_end_a_sentence_before_a_capital():
    assert count_sentences("We sell apples, pears, etc. Then we close.") == 2
    assert count_sentences("We sell apples, pears, etc. and more.") == 1
    assert count_sentences("Smith et al. The second paper.") == 2


def test_ifeval_number_sentences_uses_the_splitter():
    def follows(text, n, relation):
        meta = {"type": "ifeval", "instruction_id_list": ["length_constraints:number_sentences"],
                "kwargs": [{"num_sentences": n, "relation": relation}]}
        return verify_ifeval(text, "", meta).value == 1.0

    plan = "Here is the plan.\n1. Mix the flour.\n2. Bake it."  # 3 (Punkt: 5)
    assert follows(plan, 4, "less than") and not follows(plan, 4, "at least")
    assert follows("Fruit, e.g. apples, is good. Yes.", 3, "less than")  # 2 (Punkt: 3)


@pytest.mark.timeout(120)
def test_long_and_hostile_text_stays_fast():
    mb = 1_000_000
    for text in ["a. " * (mb // 3), "." * mb, "1.\n" * (mb // 3), "... She " * (mb // 8), "etc. a " * (mb // 7),
                 "!" * mb, "e.g. " * (mb // 5)]:
        t0 = time.monotonic()
        n = count_sentences(text)
        assert time.monotonic() - t0 < 5, text[:10]
        assert n >= 1
    # past MAX_SPLIT_CHARS the rest is one more sentence
    assert count_sentences("Hi. " * (MAX_SPLIT_CHARS // 4) + "Tail. " * 10) == MAX_SPLIT_CHARS // 4 + 1
