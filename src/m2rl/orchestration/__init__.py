"""Orchestration: the study's KFP pipeline run locally by kfp.local or on a cluster by kfp.Client.

It sits above `pipelines` (the KFP pipeline) and `m2rl.workflow` (the plan of the DAG and the stage glue
the components run); the study's MLflow parent run comes from `m2rl.tracking`.

- `local`: `run_local(spec)`, the embedded default (`m2rl run`): kfp.local's subprocess runner in the
  current environment, pipeline root and MLflow SQLite store under the spec's work_dir.
- `package`: `compile_package(spec, path)` and `submit(spec, host, ...)` with kfp.Client (`m2rl compile`,
  `m2rl submit`).
- `progress`: the progress view of `m2rl run`.
"""
