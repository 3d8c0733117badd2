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


def test_a_running_stage_reports_its_progress(tmp_path, monkeypatch):
    """`m2rl.progress.report` inside a stage lands on its row: printed at most every PROGRESS_EVERY seconds
    (non-live), shown in the live table, and nothing is written outside a pipeline task."""
    from m2rl import progress
    from m2rl.orchestration import progress as view_mod

    events = tmp_path / "events.jsonl"
    monkeypatch.delenv(progress.TASK_ENV, raising=False)
    monkeypatch.setenv(progress.EVENTS_ENV, str(events))
    progress.report("step 1/8")  # no task named: not a pipeline stage
    assert not events.exists()
    monkeypatch.setenv(progress.TASK_ENV, "train/single-math")
    clock = iter([100.0, 101.0, 105.0, 111.0, 112.0])
    with monkeypatch.context() as m:
        m.setattr(progress.time, "time", lambda: next(clock))
        for step, reward in [(1, 0.25), (2, 0.31), (3, 0.4), (4, 0.47), (5, 0.5)]:
            progress.report(f"step {step}/8 reward={reward:.2f}", step=step, steps=8, reward=reward)
    evs = [json.loads(x) for x in events.read_text().splitlines()]
    assert [e["event"] for e in evs] == ["progress"] * 5
    assert evs[0]["stage"] == "train" and evs[0]["item"] == "single-math" and evs[2]["reward"] == 0.4

    out = io.StringIO()
    spec = StudySpec(data={"domains": {"math": {}}})
    view = ProgressView(steps(spec, "study"), events, Console(file=out, width=200), live=False)
    view.poll()
    lines = [x for x in out.getvalue().splitlines() if "single-math" in x]
    # t = 100 printed, 101 and 105 within 10 s of it skipped, 111 printed, 112 skipped
    assert len(lines) == 2 and lines[0].endswith("step 1/8 reward=0.25") and lines[1].endswith("step 4/8 reward=0.47")
    assert view.rows[("train", "single-math")].status == "running"
    assert view_mod.PROGRESS_EVERY == 10.0
    live = ProgressView(steps(spec, "study"), events, Console(file=io.StringIO(), width=200), live=True)
    live.poll()
    cells = [c for col in live.table().columns if col.header == "progress" for c in col._cells]
    assert "step 5/8 reward=0.50" in cells

