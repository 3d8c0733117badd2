"""The unified record: one row of parquet, the form every data source is adapted into once.

`prompt` is a list of chat messages; `tools` (optional, the prompt side) the OpenAI-style function
schemas the model is shown through the chat template's `tools=` argument (`render_chat`); `verifier`
carries `type` plus the type's metadata. In parquet the verifier block and the tools are stored as JSON
text, because their shape differs per record (a unit-test table, tool calls, IFEval kwargs) and parquet
needs one schema.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from m2rl import storage

FIELDS = ("id", "domain", "prompt", "label", "verifier", "source")
OPTIONAL_FIELDS = ("tools",)
ROLES = ("system", "user", "assistant", "tool")

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field(
            "prompt",
            pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])),
            nullable=False,
        ),
        pa.field("label", pa.string(), nullable=False),
        pa.field("verifier", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("tools", pa.string(), nullable=True),
    ]
)


class RecordError(ValueError):
    """A record that breaks the contract; the message names the record and the field."""

    def __init__(self, record_id: str, field: str, reason: str):
        self.record_id, self.field, self.reason = record_id, field, reason
        super().__init__(f"record {record_id!r}: {field}: {reason}")


def validate_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Check one record (in memory form) and return it normalised; raise RecordError naming the field."""
    rid = str(rec.get("id", "<no id>"))
    for f in FIELDS:
        if f not in rec or rec[f] is None:
            raise RecordError(rid, f, "missing")
    for f in ("id", "domain", "source"):
        if not isinstance(rec[f], str) or not rec[f]:
            raise RecordError(rid, f, f"must be a non-empty string, got {type(rec[f]).__name__}")
    prompt = rec["prompt"]
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise RecordError(rid, "prompt", "must be a non-empty list of chat messages")
    msgs = []
    for i, m in enumerate(prompt):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str):
            raise RecordError(rid, f"prompt[{i}]", "must be a message with string 'role' and 'content'")
        if m.get("role") not in ROLES:
            raise RecordError(rid, f"prompt[{i}].role", f"must be one of {', '.join(ROLES)}, got {m.get('role')!r}")
        msgs.append({"role": m["role"], "content": m["content"]})
    verifier = rec["verifier"]
    if isinstance(verifier, str):
        try:
            verifier = json.loads(verifier)
        except json.JSONDecodeError as exc:
            raise RecordError(rid, "verifier", f"not valid JSON: {exc}") from None
    if not isinstance(verifier, Mapping):
        raise RecordError(rid, "verifier", "must be a mapping with a 'type'")
    if not isinstance(verifier.get("type"), str) or not verifier["type"]:
        raise RecordError(rid, "verifier.type", "missing")
    label = rec["label"]
    if not isinstance(label, (str, int, float)) or isinstance(label, bool):
        raise RecordError(rid, "label", f"must be text or a number, got {type(label).__name__}")
    out = {
        "id": rec["id"], "domain": rec["domain"], "prompt": msgs, "label": str(label),
        "verifier": dict(verifier), "source": rec["source"],
    }
    tools = _tools(rid, rec.get("tools"))
    if tools:
        out["tools"] = tools
    return out


def _tools(rid: str, tools: Any) -> list[dict[str, Any]] | None:
    """The record's tool schemas: a list of OpenAI function tools (`{"type": "function", "function": {...}}`)
    or Responses-API ones (`{"type": "function", "name": ..., "parameters": ...}`), kept as given."""
    if tools is None or tools == "" or tools == []:
        return None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as exc:
            raise RecordError(rid, "tools", f"not valid JSON: {exc}") from None
    if not isinstance(tools, list):
        raise RecordError(rid, "tools", f"must be a list of tool schemas, got {type(tools).__name__}")
    for i, t in enumerate(tools):
        if not isinstance(t, Mapping):
            raise RecordError(rid, f"tools[{i}]", "must be a tool schema mapping")
        fn = t.get("function") if isinstance(t.get("function"), Mapping) else t
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise RecordError(rid, f"tools[{i}].name", "missing")
    return [dict(t) for t in tools]


def chat_tools(tools: Any) -> list[dict[str, Any]] | None:
    """Tool schemas in the form chat templates expect (`{"type": "function", "function": {name, description,
    parameters}}`); the Responses-API form (name/parameters at the top, `strict`) is converted."""
    if not tools:
        return None
    if isinstance(tools, str):
        tools = json.loads(tools)
    out = []
    for t in tools:
        if isinstance(t.get("function"), Mapping):
            out.append({"type": "function", "function": dict(t["function"])})
        else:
            fn = {k: t[k] for k in ("name", "description", "parameters") if k in t}
            out.append({"type": "function", "function": fn})
    return out


def _chat_message(m: Mapping[str, Any]) -> dict[str, Any]:
    """A message as the chat template gets it: an episode's assistant turn as the model wrote it (`text`, its
    raw output with the call blocks), a tool result with the tool's `name`."""
    if m["role"] == "assistant" and isinstance(m.get("text"), str):
        return {"role": "assistant", "content": m["text"]}
    if m["role"] == "tool" and m.get("name"):
        return {"role": "tool", "name": m["name"], "content": m["content"]}
    return {"role": m["role"], "content": m["content"]}


def render_chat(tokenizer: Any, messages: Iterable[Mapping[str, Any]], tools: Any = None, *,
                tokenize: bool = False) -> Any:
    """The prompt as the model sees it: the chat template with the generation prompt, the record's tool
    schemas passed as `tools=`; without a template, the contents joined (tools listed as JSON first).
    `messages` may go on past the prompt (an episode so far: assistant turns and `tool` results)."""
    msgs = [_chat_message(m) for m in messages]
    schemas = chat_tools(tools)
    if getattr(tokenizer, "chat_template", None):
        kwargs = {"tools": schemas} if schemas else {}
        out = tokenizer.apply_chat_template(msgs, tokenize=tokenize, add_generation_prompt=True, **kwargs)
        if tokenize and hasattr(out, "keys"):
            out = out["input_ids"]
        return out
    head = [json.dumps(schemas, ensure_ascii=False)] if schemas else []
    text = "\n\n".join(head + [m["content"] for m in msgs]) + "\n\n"
    return tokenizer(text)["input_ids"] if tokenize else text


def to_row(rec: Mapping[str, Any], validated: bool = False) -> dict[str, Any]:
    """In-memory record -> parquet row (verifier as JSON text); `validated` skips re-checking."""
    r = dict(rec) if validated else validate_record(rec)
    r["verifier"] = json.dumps(r["verifier"], sort_keys=True, ensure_ascii=False)
    tools = r.get("tools")
    r["tools"] = json.dumps(tools, sort_keys=True, ensure_ascii=False) if tools else None
    return r


def from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Parquet row -> in-memory record (verifier as a dict)."""
    r = dict(row)
    r["verifier"] = json.loads(r["verifier"]) if isinstance(r["verifier"], str) else r["verifier"]
    r["prompt"] = [dict(m) for m in r["prompt"]]
    tools = r.pop("tools", None)  # files written before the field existed have no column
    if tools:
        r["tools"] = json.loads(tools) if isinstance(tools, str) else tools
    return r


class RecordWriter:
    """Streams records into one parquet file, written under a temp name and renamed on close.

    Use as a context manager: on an exception the temp file is removed and nothing is left. The temp name is
    a `storage.Lease` of the destination (what a killed earlier writer of it left is swept first).
    """

    def __init__(self, path: str | Path, row_group_rows: int = 8192):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        storage.sweep(self.path)
        self._lease = storage.Lease(self.path).__enter__()
        self._tmp = self._lease.tmp
        try:
            self._writer = pq.ParquetWriter(self._tmp, SCHEMA, compression="zstd")
        except BaseException:
            self._lease.__exit__(None, None, None)
            raise
        self._buf: list[dict[str, Any]] = []
        self._rows = row_group_rows
        self.count = 0
        self.closed = False

    def write(self, rec: Mapping[str, Any], validated: bool = False) -> None:
        """Buffer one record; `validated=True` when it came from `validate_record` already."""
        self._buf.append(to_row(rec, validated))
        if len(self._buf) >= self._rows:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._writer.write_table(pa.Table.from_pylist(self._buf, schema=SCHEMA))
            self.count += len(self._buf)
            self._buf = []

    def close(self) -> None:
        try:
            self._flush()
            self._writer.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            with contextlib.suppress(Exception):
                self.abort()
            raise
        self.closed = True
        self._lease.__exit__(None, None, None)

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)
            self._lease.__exit__(None, None, None)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_records(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write records to a parquet file atomically; returns the count."""
    with RecordWriter(path) as w:
        for r in records:
            w.write(r)
    return w.count


def iter_records(path: str | Path, batch_rows: int = 8192) -> Iterator[dict[str, Any]]:
    """Stream records from a parquet file, one row group batch at a time."""
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            yield from_row(row)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a whole (small) records parquet into memory."""
    return list(iter_records(path))


def tool_results_text(tokenizer: Any, tool_messages: Sequence[Mapping[str, Any]]) -> str:
    """What follows an assistant turn that ended with its end-of-turn token, up to the next assistant header:
    the `tool` messages as the chat template renders them after a tool-calling turn (TRL's `_get_tool_suffix_ids`,
    as text). The model's own turn is kept token for token; only this text is added between turns."""
    if not tool_messages:
        raise ValueError("tool_results_text: no tool messages")
    call = {"type": "function", "function": {"name": tool_messages[0].get("name") or "tool", "arguments": {}}}
    turn = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    results = [{"role": "tool", "name": m.get("name") or "tool", "content": m["content"]} for m in tool_messages]
    prefix = tokenizer.apply_chat_template(turn, tokenize=False)
    eos = tokenizer.eos_token or ""
    cut = prefix.rfind(eos) if eos else -1
    if cut >= 0:
        prefix = prefix[: cut + len(eos)]
    full = tokenizer.apply_chat_template(turn + results, tokenize=False, add_generation_prompt=True)
    if not full.startswith(prefix):
        raise ValueError("the chat template does not render a conversation's prefix the same way (it cannot run "
                         "multi-turn episodes)")
    return full[len(prefix):]
