"""Progress events of a pipeline task: one JSON line each, appended to the file `$M2RL_EVENTS` names.

`m2rl run` (m2rl.orchestration.progress) tails that file: the components' glue writes start / done / cached /
failed around a stage (`emit`), and a stage reports where it is inside a long run (`report`: a GRPO step with
its reward, evaluation problems done of total), so a terminal never sits silent for minutes. The glue names
the running task in `$M2RL_TASK` (`stage/item`); outside a pipeline both are unset and nothing is written.
Stdlib only: any layer may report.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

EVENTS_ENV = "M2RL_EVENTS"
TASK_ENV = "M2RL_TASK"


def emit(event: str, stage: str, item: str, **extra: Any) -> None:
    """Append one event to $M2RL_EVENTS (no-op when unset)."""
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    line = json.dumps({"t": time.time(), "event": event, "stage": stage, "item": item, **extra}, default=str)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def report(detail: str, **figures: Any) -> None:
    """A `progress` event of the running task (`$M2RL_TASK`): `detail` is the line shown, `figures` what it
    counts (e.g. step=3, steps=8, reward=0.41)."""
    task = os.environ.get(TASK_ENV)
    if not task or not os.environ.get(EVENTS_ENV):
        return
    stage, _, item = task.partition("/")
    emit("progress", stage, item or stage, detail=detail, **figures)
