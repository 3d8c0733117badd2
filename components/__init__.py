"""KFP components: one per stage, each a thin wrapper around the stage's library function.

Every component takes the study spec as JSON text (`spec_json`) and the MLflow parent run id
(`parent_run_id`), runs its stage through `m2rl.workflow.glue.StageContext` (MLflow child run,
stage record for caching and resume), and publishes small outputs (cards, metrics, reports) as KFP
artifacts whose metadata carries the URI of the large output at the artifact root (checkpoints and
datasets never go through the KFP launcher). The image set here is a default: the pipelines set each
task's image from the spec's `kubernetes` section.
"""

from components.analyze import analyze
from components.data import data
from components.distill import distill
from components.evaluate import evaluate
from components.merge import merge
from components.report import report
from components.train import train

__all__ = ["analyze", "data", "distill", "evaluate", "merge", "report", "train"]
