"""The study as a workflow, below both its KFP form and its runners: no kfp, no `pipelines`, no orchestration.

- `plan`: the DAG of a study (which tasks, in which order, their names): `plan(spec, variant)`, `Step`,
  `pipeline_name`. `pipelines` builds its KFP pipeline from it; `m2rl.orchestration` shows its progress.
- `glue`: what every KFP component does around its stage function (`StageContext`: the spec parameter, the
  artifact layout, the MLflow child run under the study's parent run, stage records for caching and resume,
  progress events; `publish` / `artifact_uri` for the KFP artifacts on the DAG's edges).
"""
