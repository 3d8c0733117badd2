"""The progress view of `m2rl run`: one row per pipeline task, fed by the components' progress events.

Components append JSON lines (start / done / cached / failed, and `progress` from inside a running stage:
a GRPO step with its reward, evaluation problems done of total; `m2rl.progress`) to the events file
(`$M2RL_EVENTS`); a thread tails it. On a terminal the table is redrawn live, a running row showing its latest
progress; otherwise each event prints one line, a running task's progress at most every `PROGRESS_EVERY`
seconds (and its last one before it finishes).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

PROGRESS_EVERY = 10.0  # seconds between two printed progress lines of one task (non-live output)
STYLE = {"pending": "dim", "running": "bold yellow", "done": "green", "cached": "cyan", "failed": "bold red"}


@dataclass
class Row:
    stage: str
    item: str
    status: str = "pending"
    started: float | None = None
    seconds: float | None = None
    error: str = ""
    detail: str = ""
    printed: float = 0.0  # when its last progress line was printed (non-live output)


class ProgressView:
    """Tails `events` and shows the status of every step of `steps` (objects with .stage and .item)."""

    def __init__(self, steps: Sequence[Any], events: Path, console: Console, live: bool | None = None) -> None:
        self.rows = {(s.stage, s.item): Row(s.stage, s.item) for s in steps}
        self.events = events
        self.console = console
        self.live = console.is_terminal if live is None else live
        self._offset = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None
        self.t0 = time.time()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows.values():
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def poll(self) -> None:
        """Read new events and apply them."""
        if not self.events.exists():
            return
        with open(self.events, encoding="utf-8") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        self._offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            self._apply(ev)

    def _apply(self, ev: dict[str, Any]) -> None:
        key = (ev.get("stage"), ev.get("item"))
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = Row(str(key[0]), str(key[1]))
        kind = ev.get("event")
        if kind == "progress":
            row.detail = str(ev.get("detail", ""))
            if row.status == "pending":
                row.status, row.started = "running", ev.get("t", time.time())
            now = ev.get("t", time.time())
            if not self.live and now - row.printed >= PROGRESS_EVERY:
                row.printed = now
                self.console.print(self._line(row), highlight=False)
            return
        if kind == "start":
            row.status, row.started = "running", ev.get("t", time.time())
        elif kind == "done":
            row.status, row.seconds = "done", ev.get("seconds")
        elif kind == "cached":
            row.status, row.seconds = "cached", 0.0
        elif kind == "failed":
            row.status, row.error = "failed", str(ev.get("error", ""))
            if row.started:
                row.seconds = ev.get("t", time.time()) - row.started
        else:
            return
        if not self.live:
            self.console.print(self._line(row), highlight=False)

    def _line(self, row: Row) -> str:
        done = sum(1 for r in self.rows.values() if r.status in ("done", "cached"))
        secs = f" {row.seconds:.1f}s" if row.seconds and row.status != "cached" else ""
        err = f": {row.error}" if row.error else ""
        detail = f": {row.detail}" if row.status == "running" and row.detail else ""
        if row.status == "running" and row.started and row.detail:
            secs = f" {time.time() - row.started:.0f}s"
        item = row.item if row.item != row.stage else ""
        return f"[{done:>2}/{len(self.rows)}] {row.status:<7} {row.stage} {item}{secs}{detail}{err}"

    def table(self) -> Table:
        c = self.counts()
        title = (f"M2RL study — {c.get('done', 0)} done, {c.get('cached', 0)} cached, {c.get('running', 0)} running, "
                 f"{c.get('pending', 0)} pending  ({time.time() - self.t0:.0f}s)")
        t = Table(title=title, title_justify="left")
        for col in ("stage", "item", "status", "time", "progress"):
            t.add_column(col, justify="right" if col == "time" else "left")
        now = time.time()
        for r in self.rows.values():
            if r.status == "running" and r.started:
                secs = f"{now - r.started:.0f}s"
            else:
                secs = f"{r.seconds:.1f}s" if r.seconds else ""
            t.add_row(r.stage, "" if r.item == r.stage else r.item, f"[{STYLE[r.status]}]{r.status}[/]", secs,
                      r.detail if r.status == "running" else "")
        return t

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.poll()
            if self._live is not None:
                self._live.update(self.table())

    def __enter__(self) -> ProgressView:
        if self.live:
            self._live = Live(self.table(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        self._thread = threading.Thread(target=self._loop, name="m2rl-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()
        if self._live is not None:
            self._live.update(self.table())
            self._live.__exit__(*exc)
