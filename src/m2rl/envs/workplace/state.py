"""The workplace sandbox: WorkBench's tables in memory, shared read-only, copied per table on first write.

A `Sandbox` is the base data (loaded once per process per data location, or generated from a seed): the
mutable tables `emails` (by `email_id`), `calendar` (by `event_id`), `tasks` (by `task_id`), `crm` (by
`customer_id`), the plots made (`plots`, a list of file paths, empty at start), and the read-only
`analytics` visits and company `directory`. A `State` is one episode's view of a sandbox: a table is
copied (a dict of row dicts; rows are replaced, never edited in place) the first time a tool writes it, and
the ids it writes are kept (`touched`), so comparing two states looks at those rows only. Searches read
pre-sorted, pre-parsed indexes of a table, built once per base table and again after an episode's write.

The outcome compares two states as WorkBench does (`is_correct`): every mutable table, with every text
value lower-cased except `status`, `list_name` and `board`, whose case matters. Rows are compared by id
(pandas' row index, which `DataFrame.equals` also compares, is an artifact of concat and not state).
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from m2rl import storage

# table -> (file, id column, columns in file order)
TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "emails": ("emails.csv", "email_id",
               ("email_id", "inbox/outbox", "sender/recipient", "subject", "sent_datetime", "body")),
    "calendar": ("calendar_events.csv", "event_id",
                 ("event_id", "event_name", "participant_email", "event_start", "duration")),
    "tasks": ("project_tasks.csv", "task_id",
              ("task_id", "task_name", "assigned_to_email", "list_name", "due_date", "board")),
    "crm": ("customer_relationship_manager_data.csv", "customer_id",
            ("customer_id", "assigned_to_email", "customer_name", "customer_email", "customer_phone",
             "last_contact_date", "product_interest", "status", "follow_up_by", "notes")),
}
ANALYTICS_FILE = "analytics_data.csv"
ANALYTICS_COLUMNS = ("date_of_visit", "visitor_id", "page_views", "session_duration_seconds", "traffic_source",
                     "user_engaged")
DIRECTORY_FILE = "email_addresses.csv"
MUTABLE = ("emails", "calendar", "tasks", "crm", "plots")
CASE_KEPT = frozenset({"status", "list_name", "board"})  # WorkBench compares these case-sensitively
MAX_DIFF = 20  # rows listed per table in a state diff

Row = dict[str, Any]


class SandboxDataError(ValueError):
    """Sandbox data that cannot be read: the message names the file and the problem."""


@dataclass
class Sandbox:
    """The base data of a sandbox; shared read-only by every episode on it."""

    key: str
    tables: dict[str, dict[str, Row]]
    analytics: list[Row]
    directory: list[str]
    plots: tuple[str, ...] = ()
    search_text: dict[str, str] = field(default_factory=dict)  # email_id -> its lower-cased searchable text
    _indexes: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    word_hits: dict[str, set[int]] = field(default_factory=dict, repr=False)  # the email search's word cache

    def __post_init__(self) -> None:
        self.search_text = {eid: email_text(row) for eid, row in self.tables["emails"].items()}

    def index(self, table: str, build: Callable[[State, dict[str, Row]], Any]) -> Any:
        """`build(state, rows)` of a base table, made once (a search's pre-sorted, pre-parsed rows)."""
        key = (table, build.__qualname__)
        got = self._indexes.get(key)
        if got is None:
            got = self._indexes[key] = build(State(self), self.tables[table])
        return got


def email_text(row: Row) -> str:
    """What `email_search_emails` matches words in: subject, body and sender/recipient (`nan` for a blank)."""
    return " ".join("nan" if row.get(k) is None else str(row.get(k))
                    for k in ("subject", "body", "sender/recipient")).lower()


class State:
    """One episode's tables over a sandbox: copy-on-write per table."""

    __slots__ = ("sandbox", "tables", "plots", "touched", "_index")

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.tables: dict[str, dict[str, Row]] = dict(sandbox.tables)
        self.plots: list[str] | tuple[str, ...] = sandbox.plots
        self.touched: dict[str, set[str]] = {}  # table -> ids this episode added, replaced or deleted
        self._index: dict[tuple[str, str], Any] = {}

    def _write(self, table: str) -> dict[str, Row]:
        ids = self.touched.get(table)
        if ids is None:
            self.tables[table] = dict(self.tables[table])
            self.touched[table] = set()
        for key in [k for k in self._index if k[0] == table]:
            del self._index[key]
        return self.tables[table]

    def put(self, table: str, rid: str, row: Row) -> None:
        """Add or replace a row (rows are never changed in place: base rows are shared)."""
        self._write(table)[rid] = row
        self.touched[table].add(rid)

    def delete(self, table: str, rid: str) -> None:
        del self._write(table)[rid]
        self.touched[table].add(rid)

    def index(self, table: str, build: Callable[[State, dict[str, Row]], Any]) -> Any:
        """`build(state, rows)` of a table as it stands, cached until the table is next written."""
        if table not in self.touched:
            return self.sandbox.index(table, build)
        key = (table, build.__qualname__)
        got = self._index.get(key)
        if got is None:
            got = self._index[key] = build(self, self.tables[table])
        return got

    def add_plot(self, path: str) -> None:
        if isinstance(self.plots, tuple):
            self.plots = list(self.plots)
        self.plots.append(path)

    def changed(self) -> list[str]:
        """The mutable tables this episode wrote."""
        return sorted(self.touched) + (["plots"] if isinstance(self.plots, list) else [])


def _norm(col: str, value: Any) -> Any:
    if isinstance(value, str):
        return value if col in CASE_KEPT else value.lower()
    return value


def _norm_row(row: Row) -> dict[str, Any]:
    return {k: _norm(k, v) for k, v in row.items() if v is not None}


def diff_states(got: State, want: State) -> dict[str, Any]:
    """What differs between two states of one sandbox, per table: rows only in one (`extra`, `missing`) and
    changed fields (`changed`: {id: {field: [got, expected]}}), at most MAX_DIFF rows each; {} when equal."""
    if got.sandbox is not want.sandbox:
        raise ValueError("diff_states: the two states are of different sandboxes")
    out: dict[str, Any] = {}
    for table in ("emails", "calendar", "tasks", "crm"):
        a, b = got.tables[table], want.tables[table]
        # a row neither state touched is the same base row in both
        ids = sorted(got.touched.get(table, set()) | want.touched.get(table, set()))
        if not ids:
            continue
        extra = [k for k in ids if k in a and k not in b]
        missing = [k for k in ids if k in b and k not in a]
        changed: dict[str, Any] = {}
        for k in ids:
            row, other = a.get(k), b.get(k)
            if row is None or other is None or other is row:
                continue
            na, nb = _norm_row(row), _norm_row(other)
            if na != nb:
                fields = sorted(set(na) | set(nb))
                changed[k] = {f: [row.get(f), other.get(f)] for f in fields if na.get(f) != nb.get(f)}
        entry: dict[str, Any] = {}
        if extra:
            entry["extra"] = {k: a[k] for k in extra[:MAX_DIFF]}
        if missing:
            entry["missing"] = {k: b[k] for k in missing[:MAX_DIFF]}
        if changed:
            entry["changed"] = dict(list(changed.items())[:MAX_DIFF])
        if entry:
            out[table] = entry
    pa, pb = [p.lower() for p in got.plots], [p.lower() for p in want.plots]
    if pa != pb:
        out["plots"] = {"got": list(got.plots)[:MAX_DIFF], "expected": list(want.plots)[:MAX_DIFF]}
    return out


# ---- reading WorkBench's CSV files ----

def _rows(text: str, name: str, columns: Iterable[str] | None) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text))
    if columns is not None:
        want = tuple(columns)
        have = tuple(reader.fieldnames or ())
        lacking = [c for c in want if c not in have]
        if lacking:
            raise SandboxDataError(f"{name}: missing column(s) {', '.join(lacking)} (has {', '.join(have)})")
    # pandas' read_csv(dtype=str) reads an empty cell as NaN: None here
    return [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]


def _find(root: str, name: str) -> str:
    """`name` in a WorkBench data folder: at its top, or in `processed/` or `raw/` (the repositories' layout)."""
    for sub in ("", "processed", "raw", "csv_data/processed", "csv_data/raw", "data/processed", "data/raw"):
        uri = storage.join(root, sub, name) if sub else storage.join(root, name)
        if storage.exists(uri):
            return uri
    raise SandboxDataError(f"{storage.join(root, name)}: not found (looked in the folder and its processed/, "
                           "raw/ sub-folders)")


def load_workbench(root: str) -> Sandbox:
    """The sandbox of WorkBench's data files under `root` (a folder or an `s3://` prefix)."""
    tables: dict[str, dict[str, Row]] = {}
    for table, (fname, key, columns) in TABLES.items():
        uri = _find(root, fname)
        rows = _rows(storage.read_text(uri), uri, columns)
        by_id: dict[str, Row] = {}
        for i, row in enumerate(rows):
            rid = row.get(key)
            if rid is None:
                raise SandboxDataError(f"{uri}: row {i + 2}: {key} is empty")
            by_id[rid] = {c: row.get(c) for c in columns}
        tables[table] = by_id
    uri = _find(root, ANALYTICS_FILE)
    analytics = []
    for row in _rows(storage.read_text(uri), uri, ANALYTICS_COLUMNS):
        row = {c: row.get(c) for c in ANALYTICS_COLUMNS}
        row["user_engaged"] = row["user_engaged"] == "True"  # as the real tool converts it
        analytics.append(row)
    uri = _find(root, DIRECTORY_FILE)
    directory = [ln.strip() for ln in storage.read_text(uri).splitlines() if ln.strip()]  # no header row
    return Sandbox(f"workbench:{root}", tables, analytics, directory)


_cache: dict[str, Sandbox] = {}
_lock = threading.Lock()


def cached(key: str, make: Any) -> Sandbox:
    """The sandbox under `key`, made once per process by `make()`."""
    box = _cache.get(key)
    if box is None:
        with _lock:
            box = _cache.get(key)
            if box is None:
                box = make()
                _cache[key] = box
    return box


def as_rows(table: Mapping[str, Row]) -> list[Row]:
    return list(table.values())
