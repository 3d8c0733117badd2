"""TRL reward function (GRPOTrainer's signature): `reward_func(prompts, completions, **columns)`.

TRL passes every dataset column as a keyword list aligned with `completions`. The record comes from
the columns `label` and `verifier` (a mapping or JSON text; plus `domain` and `id` when present), or
from one encoded `label` column (`m2rl.verifiers.encode_label`). A completion is text, or a
conversational list of messages (the assistant messages' text is scored, with the tool calls TRL parsed
out of a turn written back as `<tool_call>` blocks). Scoring goes through
`score_batch` (worker processes, a hard per-item timeout). Returns one float in [0, 1] per completion.
`require_think_close=True` (the spec's `rewards.require_think_close`; the trl backend binds it) scores a
completion without `</think>` 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from m2rl.verifiers.labels import LabelError, decode_label
from m2rl.verifiers.pool import score_batch
from m2rl.verifiers.registry import Score


def completion_text(completion: Any) -> str:
    """The text of a completion: itself, or its assistant messages' content joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content(completion.get("content")) + _calls(completion.get("tool_calls"))
    if isinstance(completion, Sequence):
        msgs = [m for m in completion if isinstance(m, Mapping)]
        said = [m for m in msgs if m.get("role", "assistant") == "assistant"] or msgs
        return "".join(_content(m.get("content")) + _calls(m.get("tool_calls")) for m in said)
    return "" if completion is None else str(completion)


def _calls(tool_calls: Any) -> str:
    """Calls TRL parsed out of an assistant turn (when the run offers tools), written back as the Hermes
    `<tool_call>` blocks the model produced, so a tool-call verifier reads them from the text."""
    if not isinstance(tool_calls, Sequence) or isinstance(tool_calls, str):
        return ""
    out = []
    for tc in tool_calls:
        fn = tc.get("function", tc) if isinstance(tc, Mapping) else None
        if isinstance(fn, Mapping) and fn.get("name"):
            args = fn.get("arguments", {})
            call = {"name": fn["name"], "arguments": json.loads(args) if _is_json_text(args) else args}
            out.append("<tool_call>\n" + json.dumps(call, ensure_ascii=False) + "\n</tool_call>")
    return "".join(out)


def _is_json_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # multimodal-style [{"type": "text", "text": ...}]
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def _record(i: int, columns: Mapping[str, Any]) -> dict[str, Any]:
    def col(name: str) -> Any:
        vals = columns.get(name)
        return vals[i] if isinstance(vals, Sequence) and not isinstance(vals, str) and i < len(vals) else None

    verifier = col("verifier")
    if verifier is None:
        return decode_label(col("label"))
    if isinstance(verifier, str):
        try:
            verifier = json.loads(verifier)
        except ValueError:
            raise LabelError(f"row {i}: column `verifier` is not valid JSON") from None
    label = col("label")
    return {"label": "" if label is None else str(label), "verifier": verifier, "domain": col("domain"),
            "id": col("id")}


def reward_func(prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None, *,
                require_think_close: bool = False, **kwargs: Any) -> list[float]:
    """One reward in [0, 1] per completion (a bad record row scores 0)."""
    if completions is None:
        raise TypeError("reward_func needs `completions`")
    workers, timeout = kwargs.pop("m2rl_workers", None), kwargs.pop("m2rl_timeout", None)
    texts = [completion_text(c) for c in completions]
    out: list[float] = [0.0] * len(texts)
    recs, idx = [], []
    for i in range(len(texts)):
        try:
            rec = _record(i, kwargs)
        except LabelError:
            continue
        recs.append(rec)
        idx.append(i)
    if recs:
        from m2rl.verifiers.api import VerifierError, check_record

        good = []
        for j, rec in enumerate(recs):
            try:
                check_record(rec)
                good.append(j)
            except VerifierError:
                continue
        scores: list[Score] = score_batch([recs[j] for j in good], [texts[idx[j]] for j in good],
                                          workers=workers, timeout=timeout, require_think_close=require_think_close)
        for j, s in zip(good, scores, strict=True):
            out[idx[j]] = s.value
    return out


reward_func.__name__ = "m2rl_verifier"
