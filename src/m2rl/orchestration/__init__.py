"""Orchestration: the study as a KFP pipeline, run locally by kfp.local or on a cluster by kfp.Client.

- `stages`: the glue every component runs around its stage (spec parameter, MLflow child run under the
  study's parent run, stage records for caching and resume, progress events); no kfp import.
- `parent`: the study's MLflow parent run (created, or resumed when the same spec ran before).
- `local`: `run_local(spec)`, the embedded default (`m2rl run`): kfp.local's subprocess runner in the
  current environment, pipeline root and MLflow SQLite store under the spec's work_dir.
- `package`: `compile_package(spec, path)` and `submit(spec, host, ...)` with kfp.Client (`m2rl compile`,
  `m2rl submit`).
- `progress`: the progress view of `m2rl run`.
"""
