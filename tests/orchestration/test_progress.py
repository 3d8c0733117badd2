"""The progress view of `m2rl run` follows the components' events."""

from __future__ import annotations

import io
import json

from rich.console import Console

from m2rl.orchestration.progress import ProgressView
from m2rl.spec import StudySpec
from m2rl.workflow.plan import steps


def test_progress_view_lines_and_table(tmp_path):
    events = tmp_path / "events.jsonl"
    out = io.StringIO()
    plan = steps(StudySpec(), "mix")
    assert [(s.stage, s.item) for s in plan] == [("data", "data"), ("train", "mix"), ("evaluate", "base"),
                                                 ("evaluate", "mix"), ("analyze", "analyze"), ("report", "report")]
    view = ProgressView(plan, events, Console(file=out, width=200), live=False)
    lines = [{"t": 1.0, "event": "cached", "stage": "data", "item": "data"},
             {"t": 2.0, "event": "start", "stage": "train", "item": "mix"},
             {"t": 9.5, "event": "done", "stage": "train", "item": "mix", "seconds": 7.5},
             {"t": 10.0, "event": "start", "stage": "evaluate", "item": "base"},
             {"t": 12.0, "event": "failed", "stage": "evaluate", "item": "base", "error": "EvalError: no problems"}]
    with open(events, "w") as f:
        f.write("\n".join(json.dumps(x) for x in lines) + "\n" + '{"t": 13, "event": "st')  # a half-written line
    view.poll()
    assert view.counts() == {"cached": 1, "done": 1, "failed": 1, "pending": 3}
    text = out.getvalue()
    assert "[ 1/6] cached  data" in text and "[ 2/6] done    train mix 7.5s" in text
    assert "failed  evaluate base 2.0s: EvalError: no problems" in text
    with open(events, "a") as f:
        f.write('art", "stage": "evaluate", "item": "mix"}\n')
    view.poll()  # the line completed later is read whole
    assert view.rows[("evaluate", "mix")].status == "running"
    table = view.table()
    assert table.row_count == 6 and "1 done, 1 cached, 1 running, 2 pending" in str(table.title)
