"""The reasoning block: a verifier scores only the text after the last `</think>`.

`split_reasoning(text)` returns (the text after the last `</think>`, whether a `</think>` was found);
without one the whole text is the answer part. `strip_reasoning(text)` is its first half.
"""

from __future__ import annotations

THINK_CLOSE = "</think>"


def split_reasoning(text: str) -> tuple[str, bool]:
    """(answer text, closed): the text after the last `</think>`, or all of `text` when there is none."""
    cut = text.rfind(THINK_CLOSE)
    if cut < 0:
        return text, False
    return text[cut + len(THINK_CLOSE):], True


def strip_reasoning(text: str) -> str:
    """The text after the last `</think>` (all of `text` when it has none)."""
    return split_reasoning(text)[0]
