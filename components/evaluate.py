"""The evaluate component: one model on its benchmarks of the spec (`model_benchmarks`) -> metrics.json and samples."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from components.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def evaluate(spec_json: str, parent_run_id: str, model_name: str, model_ref: str, metrics: Output[Metrics],
             scores: Output[Artifact], model: Input[Model] = None):
    """Evaluate `model` (else `model_ref`, the base) into <artifact_root>/eval/<model_name>."""
    import json

    from m2rl import storage
    from m2rl.evaluate.stage import evaluate as evaluate_stage
    from m2rl.evaluate.stage import model_benchmarks
    from m2rl.workflow.glue import StageContext, artifact_uri, publish

    ctx = StageContext(spec_json, parent_run_id)
    ref = artifact_uri(model, "model") if model is not None else model_ref
    out = ctx.layout.eval(model_name)

    def work() -> dict:
        evaluate_stage(ref, model_benchmarks(ctx.spec, model_name), out, settings=ctx.spec.evaluate, model_name=model_name,
                       require_think_close=ctx.spec.rewards.require_think_close, env_params=ctx.spec.envs)
        return json.loads(storage.read_text(storage.join(out, "metrics.json")))

    key = {"evaluate": ctx.spec.evaluate.model_dump(mode="json"), "rewards": ctx.spec.rewards.model_dump(mode="json"),
           "envs": ctx.spec.envs, "model": model_name}
    outcome = ctx.run("evaluate", model_name, out, key=key, inputs=[ref, ctx.layout.data], work=work,
                      done=["metrics.json"])
    publish(outcome, scores)
    for bench, values in outcome.summary.get("benchmarks", {}).items():
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                metrics.log_metric(f"eval/{bench}/{k}", float(v))
    metrics.metadata.update(outcome.metadata)
