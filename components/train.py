"""The train component: one GRPO run (a single domain, or the mix of all) -> a checkpoint folder."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train(spec_json: str, parent_run_id: str, run: str, dataset: Input[Dataset], model: Output[Model]):
    """Train `run` (a domain or "mix") into <artifact_root>/models/<single-domain|mix>; `model` holds its card."""
    from m2rl.names import run_model
    from m2rl.workflow.glue import StageContext, artifact_uri, publish

    ctx = StageContext(spec_json, parent_run_id)
    data_uri = artifact_uri(dataset, "dataset")
    name = run_model(run)
    out = ctx.layout.model(name)
    records = ctx.layout.train_split(run, data_uri)

    def work() -> dict:
        from m2rl.train import train as train_stage

        return train_stage(ctx.spec, run, records, ctx.spec.base_model, out).card

    key = {"train": ctx.spec.train.model_dump(mode="json"), "rewards": ctx.spec.rewards.model_dump(mode="json"),
           "run": run, "base": ctx.spec.base_model}
    if run in ctx.spec.merge.expert_steps and "merge" in ctx.spec.paradigms:
        key["expert_step"] = ctx.spec.merge.expert_steps[run]  # the run keeps that step's weights
    outcome = ctx.run("train", name, out, key=key, inputs=[data_uri], work=work, done=["train_card.json"])
    publish(outcome, model)
