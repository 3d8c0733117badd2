"""MLflow tracking, and the only place that imports MLflow: one parent run per study, one child run per stage
and model.

- `config`: where runs go (`tracking_uri`, `configure`) and the tag names.
- `runs`: the run policy (and its end: owner tags, SIGTERM/SIGINT -> KILLED, stale runs of dead owners
  marked KILLED by the next run of the stage). Only the stage glue (`m2rl.workflow.glue`) and the CLI stage commands open runs
  (`stage_run`, `command_run`); a stage function logs into the active run and never opens one. Also the child
  runs of a study (`child_runs`, `supersede_children`, `copy_child_run`) and `finish_run`.
- `log`: the one batch logger (`log_batch`: metrics, params, tags, chunked to MLflow's limits) and
  `log_dict` / `log_artifacts`, each into a given run or the active one, a no-op with neither.
- `study`: the study's parent run (`start_study`, `open_parent`, `find_parent`, `latest_parent`, `spec_hash`).
- `query`: `experiment_runs` for `m2rl compare`.

Tags (DESIGN.md): `m2rl.paradigm` (base/single/mix/merge), `m2rl.domain`, `m2rl.merge_method`, plus
`m2rl.stage`, `m2rl.model` and `m2rl.study`. Metrics: `eval/<benchmark>/<metric>`, `train/<domain>/reward`,
`cost/gpu_hours`. The parent run id travels between processes (KFP tasks, Ray jobs) in
`M2RL_PARENT_RUN_ID`; the tracking URI in `MLFLOW_TRACKING_URI`.
"""

from m2rl.tracking.config import (
    EXPERIMENT_ENV,
    PARENT_ENV,
    TAG_DOMAIN,
    TAG_END_REASON,
    TAG_METHOD,
    TAG_MODEL,
    TAG_OWNER_HOST,
    TAG_OWNER_PID,
    TAG_OWNER_START,
    TAG_PARADIGM,
    TAG_PARENT,
    TAG_SPEC_HASH,
    TAG_STAGE,
    TAG_STUDY,
    TAG_TASK,
    URI_ENV,
    configure,
    default_uri,
    env_configured,
    env_parent,
    tracking_uri,
)
from m2rl.tracking.log import active_run_id, log_artifacts, log_batch, log_dict
from m2rl.tracking.query import TrackingError, experiment_runs
from m2rl.tracking.runs import (
    StageTerminated,
    child_runs,
    command_run,
    copy_child_run,
    finish_run,
    mark_stale_runs,
    owner_tags,
    stage_run,
    supersede_children,
)
from m2rl.tracking.study import find_parent, latest_parent, open_parent, spec_hash, start_study

__all__ = [
    "EXPERIMENT_ENV", "PARENT_ENV", "TAG_DOMAIN", "TAG_END_REASON", "TAG_METHOD", "TAG_MODEL", "TAG_OWNER_HOST",
    "TAG_OWNER_PID", "TAG_OWNER_START", "TAG_PARADIGM", "TAG_PARENT", "TAG_SPEC_HASH", "TAG_STAGE", "TAG_STUDY",
    "TAG_TASK", "URI_ENV", "StageTerminated", "TrackingError", "active_run_id", "child_runs", "command_run",
    "configure", "copy_child_run", "default_uri", "env_configured", "env_parent", "experiment_runs", "find_parent",
    "finish_run", "latest_parent", "log_artifacts", "log_batch", "log_dict", "mark_stale_runs", "open_parent",
    "owner_tags", "spec_hash", "stage_run", "start_study", "supersede_children", "tracking_uri",
]
