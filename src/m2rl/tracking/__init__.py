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
- `models`: every checkpoint of a study as an external LoggedModel (`begin_model` / `finish_model` /
  `ensure_model`, `study_models`, `study_model_rows` for `m2rl compare`), the recommendation in the Model
  Registry (`recommend`, `register_recommended`) and the parent run's description (`study_note`).
- `datasets`: the study's splits as MLflow datasets (`data_datasets`, `dataset`, `log_datasets`,
  `run_datasets`) and an
  evaluation's samples as a table artifact (`log_samples_table`, `load_samples_table`). Metrics logged inside
  `log.model_scope` belong to its LoggedModel (and name their benchmark's dataset).

Tags (DESIGN.md): `m2rl.paradigm` (base/single/mix/merge/distill), `m2rl.domain`, `m2rl.merge_method`, plus
`m2rl.stage`, `m2rl.model` and `m2rl.study`, on runs and on the study's LoggedModels (these also carry
`m2rl.study_run`, `m2rl.checkpoint`, `m2rl.parents`); experiments are of MLflow's model-training kind. Metrics: `eval/<benchmark>/<metric>`, `train/<domain>/reward`,
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
from m2rl.tracking.datasets import (
    CONTEXT_EVAL,
    CONTEXT_TRAIN,
    SAMPLES_TABLE,
    data_datasets,
    dataset,
    load_samples_table,
    log_datasets,
    log_samples_table,
    run_datasets,
    spec_digest,
)
from m2rl.tracking.log import active_model_id, active_run_id, log_artifacts, log_batch, log_dict, model_scope
from m2rl.tracking.models import (
    ALIAS,
    TAG_CHECKPOINT,
    TAG_PARENTS,
    TAG_STUDY_RUN,
    begin_model,
    describe_study,
    ensure_model,
    find_model,
    finish_model,
    model_metrics,
    recommend,
    register_recommended,
    study_model_rows,
    study_models,
    study_note,
)
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
    "ALIAS", "CONTEXT_EVAL", "CONTEXT_TRAIN", "SAMPLES_TABLE", "TAG_CHECKPOINT", "TAG_PARENTS", "TAG_STUDY_RUN",
    "active_model_id", "begin_model", "data_datasets", "dataset", "describe_study", "ensure_model", "find_model",
    "finish_model", "load_samples_table", "log_datasets", "log_samples_table", "model_metrics", "model_scope",
    "recommend", "register_recommended", "run_datasets", "spec_digest", "study_model_rows", "study_models", "study_note",
    "EXPERIMENT_ENV", "PARENT_ENV", "TAG_DOMAIN", "TAG_END_REASON", "TAG_METHOD", "TAG_MODEL", "TAG_OWNER_HOST",
    "TAG_OWNER_PID", "TAG_OWNER_START", "TAG_PARADIGM", "TAG_PARENT", "TAG_SPEC_HASH", "TAG_STAGE", "TAG_STUDY",
    "TAG_TASK", "URI_ENV", "StageTerminated", "TrackingError", "active_run_id", "child_runs", "command_run",
    "configure", "copy_child_run", "default_uri", "env_configured", "env_parent", "experiment_runs", "find_parent",
    "finish_run", "latest_parent", "log_artifacts", "log_batch", "log_dict", "mark_stale_runs", "open_parent",
    "owner_tags", "spec_hash", "stage_run", "start_study", "supersede_children", "tracking_uri",
]
