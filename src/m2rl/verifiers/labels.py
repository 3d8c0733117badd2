"""Records through a single text column: OpenRLHF's `label` column carries the record's verifier.

`encode_label(record)` is JSON of the record's `label`, `verifier`, `domain` and `id`;
`decode_label(text)` turns it back into a record-like mapping that `m2rl.verifiers.score` accepts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

LABEL_KEYS = ("label", "verifier", "domain", "id")
MARKER = "m2rl"  # a version key, so a foreign label is told apart from ours


class LabelError(ValueError):
    """A label column value that is not an encoded M2RL record."""


def encode_label(record: Mapping[str, Any]) -> str:
    """The OpenRLHF label text of `record`: JSON of its label, verifier, domain and id."""
    verifier = record.get("verifier")
    if isinstance(verifier, str):  # parquet stores the verifier block as JSON text
        try:
            verifier = json.loads(verifier)
        except ValueError:
            raise LabelError(f"record {record.get('id')!r}: verifier is not valid JSON") from None
    if not isinstance(verifier, Mapping) or not isinstance(verifier.get("type"), str):
        raise LabelError(f"record {record.get('id')!r}: verifier must be a mapping with a string `type`")
    label = record.get("label", "")
    payload = {
        MARKER: 1,
        "label": "" if label is None else str(label),
        "verifier": dict(verifier),
        "domain": record.get("domain"),
        "id": record.get("id"),
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True)


def decode_label(text: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The record-like mapping (label, verifier, domain, id) encoded by `encode_label`."""
    if isinstance(text, Mapping):
        data: Any = dict(text)
    else:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str):
            raise LabelError(f"label must be JSON text, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except ValueError:
            raise LabelError(f"label is not JSON of an M2RL record: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise LabelError(f"label is not JSON of an M2RL record: {str(text)[:80]!r}")
    verifier = data.get("verifier")
    if isinstance(verifier, str):
        try:
            verifier = json.loads(verifier)
        except ValueError:
            raise LabelError("label: its verifier is not valid JSON") from None
    if not isinstance(verifier, dict) or not isinstance(verifier.get("type"), str):
        raise LabelError(f"label has no verifier with a string `type`: {str(text)[:80]!r}")
    label = data.get("label", "")
    return {
        "label": "" if label is None else str(label),
        "verifier": verifier,
        "domain": data.get("domain"),
        "id": data.get("id"),
    }
