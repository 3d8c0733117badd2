"""The train component: one GRPO run (a single domain, or the mix of all) -> a checkpoint folder; launched as a
KubeRay RayJob when the spec asks for more than one node or `kubernetes.rayjob` (m2rl.workflow.train)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train(spec_json: str, parent_run_id: str, run: str, dataset: Input[Dataset], model: Output[Model]):
    """Train `run` (a domain or "mix") into <artifact_root>/models/<single-domain|mix>; `model` holds its card."""
    from m2rl.names import run_model
    from m2rl.workflow.glue import StageContext, artifact_uri, publish
    from m2rl.workflow.train import train_key, train_work

    ctx = StageContext(spec_json, parent_run_id)
    data_uri = artifact_uri(dataset, "dataset")
    name = run_model(run)
    out = ctx.layout.model(name)
    records = ctx.layout.train_split(run, data_uri)
    outcome = ctx.run("train", name, out, key=train_key(ctx.spec, run), inputs=[data_uri],
                      work=lambda: train_work(ctx, run, records, out), done=["train_card.json"])
    publish(outcome, model)
