"""The `ifeval` verifier: every instruction id passes and fails, modes, rewards, bad metadata, the builtin
generator's records, determinism and backtracking bait."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m2rl.data.builtin import generate
from m2rl.verifiers.instructions import INSTRUCTIONS, instruction_ids
from m2rl.verifiers.instructions.text import _detect, count_sentences, word_tokenize
from m2rl.verifiers.registry import get_verifier
from m2rl.verifiers.types.ifeval import loose_variants, verify_ifeval
from tests.verifiers.ifeval_builder import candidates
from tests.verifiers.ifeval_cases import CASES, FR, LONG_EN


def meta(ids, kwargs, **extra):
    return {"type": "ifeval", "instruction_id_list": list(ids), "kwargs": list(kwargs), **extra}


def test_registered_under_ifeval():
    assert get_verifier("ifeval") is verify_ifeval


def test_all_ids_supported_and_covered():
    assert len(instruction_ids("ifeval")) == 25
    assert len(instruction_ids("ifbench")) == 58
    assert len(instruction_ids("iftrain")) == 29
    assert {c[0] for c in CASES} == set(INSTRUCTIONS.names())


@pytest.mark.parametrize(("iid", "kwargs", "good", "bad"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_instruction_passes_and_fails(iid, kwargs, good, bad):
    ok = verify_ifeval(good, "", meta([iid], [kwargs]))
    assert ok.value == 1.0, ok.details
    assert ok.details["instructions"] == {iid: True}
    no = verify_ifeval(bad, "", meta([iid], [kwargs]))
    assert no.value == 0.0, no.details
    assert no.details["instructions"] == {iid: False}
    assert "reasons" not in no.details  # a plain failure, not a kwargs problem


def test_empty_response_follows_nothing():
    s = verify_ifeval("   ", "", meta(["punctuation:no_comma"], [{}]))
    assert s.value == 0.0 and "empty response" in s.details["reason"]


def test_reward_binary_and_fraction():
    ids = ["punctuation:no_comma", "startend:quotation", "detectable_format:title"]
    text = "No commas here."
    assert verify_ifeval(text, "", meta(ids, [{}, {}, {}])).value == 0.0
    s = verify_ifeval(text, "", meta(ids, [{}, {}, {}], reward="fraction"))
    assert s.value == pytest.approx(1 / 3)
    assert s.details["passed"] == 1 and s.details["total"] == 3 and s.details["reward"] == "fraction"


def test_loose_mode_strips_first_last_lines_and_asterisks():
    text = "Sure, here is my answer:\nMy answer is yes\n**Hope this helps**"
    m = meta(["punctuation:no_comma", "startend:end_checker"], [{}, {"end_phrase": "My answer is yes"}])
    assert verify_ifeval(text, "", m).value == 0.0
    loose = verify_ifeval(text, "", {**m, "mode": "loose"})
    assert loose.value == 1.0 and loose.details["mode"] == "loose"
    assert "My answer is yes" in loose_variants(text)
    # loose mode still fails what no variant satisfies
    assert verify_ifeval("a, b\nc, d", "", meta(["punctuation:no_comma"], [{}], mode="loose")).value == 0.0
    # asterisks removed: the bold title phrase ends the response
    bold = meta(["startend:end_checker"], [{"end_phrase": "the end"}], mode="loose")
    assert verify_ifeval("Story.\n**The end**", "", bold).value == 1.0


def test_unknown_id_fails_only_itself():
    s = verify_ifeval("No commas here.", "", meta(["punctuation:no_comma", "made:up"], [{}, {}], reward="fraction"))
    assert s.value == 0.5
    assert s.details["instructions"] == {"punctuation:no_comma": True, "made:up": False}
    assert s.details["unknown"] == ["made:up"]
    assert "unknown instruction id" in s.details["reasons"]["made:up"]


def test_missing_or_bad_kwargs_fail_that_instruction_with_reason():
    ids = ["keywords:frequency", "length_constraints:number_words", "punctuation:no_comma"]
    kwargs = [{"keyword": "sea", "frequency": None, "relation": "at least"},
              {"num_words": 3, "relation": "more than"}, None]
    s = verify_ifeval("the sea", "", meta(ids, kwargs, reward="fraction"))
    assert s.details["instructions"] == {ids[0]: False, ids[1]: False, ids[2]: True}
    assert "'frequency' is required" in s.details["reasons"][ids[0]]
    assert "'relation' must be one of" in s.details["reasons"][ids[1]]


def test_kwargs_as_json_text_floats_and_duplicates():
    m = {"instruction_id_list": ["count:word_count_range", "count:word_count_range"],
         "kwargs": '[{"min_words": 1.0, "max_words": 3.0, "unused": null}, {"min_words": 5, "max_words": 9}]'}
    s = verify_ifeval("one two", "", {**m, "reward": "fraction"})
    assert s.details["instructions"] == {"count:word_count_range": True, "count:word_count_range#1": False}


@pytest.mark.parametrize("bad", [
    {"instruction_id_list": []},
    {"instruction_id_list": "punctuation:no_comma"},
    {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]},
    {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}], "mode": "lenient"},
    {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}], "reward": "partial"},
])
def test_bad_metadata_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="ifeval: verifier"):
        verify_ifeval("text", "", bad)


def test_builtin_generator_records_are_supported_and_satisfiable():
    for seed in (0, 1):
        for record in generate("if", seed, 50):
            v = record["verifier"]
            assert all(i in INSTRUCTIONS for i in v["instruction_id_list"]), v
            for text in candidates(v["instruction_id_list"], v["kwargs"]):
                if verify_ifeval(text, "", v).value == 1.0:
                    break
            else:
                pytest.fail(f"no built response satisfies {record['id']}: {v}")
            # an empty response follows none of them
            assert verify_ifeval("", "", v).value == 0.0


def test_language_detection_is_deterministic():
    texts = [FR, LONG_EN, "Hola amigo, ¿cómo estás hoy?", "ok", "12345"]
    first = [_detect.__wrapped__(t) for t in texts]
    assert first[:2] == ["fr", "en"]
    assert first[-1] is None  # no letters: undetectable, counted as followed like IFEval does
    import langdetect

    for seed in range(5):
        random.seed(seed)
        langdetect.DetectorFactory.seed = seed + 1  # other code changing the global seed does not matter
        assert [_detect.__wrapped__(t) for t in texts] == first
    langdetect.DetectorFactory.seed = None
    code = ("from m2rl.verifiers.instructions.text import detect_language as d;"
            f"print([d(t) for t in {texts!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr(first)


def test_tokenizers_without_nltk_data():
    assert word_tokenize("I don't know, Mr. Smith's well-known 3.14 cats!") == [
        "I", "do", "n't", "know", ",", "Mr", ".", "Smith", "'s", "well-known", "3.14", "cats", "!"]
    assert count_sentences("Hello Mr. Smith. How are you? Fine... Thanks!") == 4


N = 200_000  # quadratic matching at this size takes hours; linear matching takes well under a second
BAIT = {
    "brackets": "[" * N,
    "newlines": "\n" * N,
    "spaces": " " * N,
    "angles": "<<" * (N // 2),
    "postscript": "p. " * (N // 3),
    "dashes": "-\n" * (N // 2),
    "quote-bang": '"' + "!" * N,
    "mixed": "a[b*c<<d\n \"'(-.,!?" * (N // 20),
}


@pytest.mark.parametrize("bait", sorted(BAIT))
def test_megabyte_backtracking_bait_scores_fast(bait):
    """Every checker on 200 KB of regex bait: linear time (a quadratic regex would take hours)."""
    text = BAIT[bait]
    for iid, kwargs, _, _ in CASES:
        start = time.perf_counter()
        s = verify_ifeval(text, "", meta([iid], [kwargs]))
        assert 0.0 <= s.value <= 1.0 and "reasons" not in s.details, (iid, s.details)
        assert time.perf_counter() - start < 5, (iid, bait)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("*-\n[]<>\"'.!?,;: \t#"), max_size=300),
       mode=st.sampled_from(["strict", "loose"]))
def test_never_raises_whatever_the_response(text, mode):
    ids = [c[0] for c in CASES]
    s = verify_ifeval(text, "", meta(ids, [c[1] for c in CASES], mode=mode, reward="fraction"))
    assert 0.0 <= s.value <= 1.0
    assert "reasons" not in s.details, s.details["reasons"]


def test_lone_surrogates_and_odd_unicode():
    text = "Bad \ud800 bytes \udfff here. İstanbul ß ﬁ 🍵\u200b. ******\n* x\n<<t>>"
    for mode in ("strict", "loose"):
        s = verify_ifeval(text, "", meta([c[0] for c in CASES], [c[1] for c in CASES], mode=mode, reward="fraction"))
        assert 0.0 < s.value < 1.0 and "reasons" not in s.details
