"""The merge component: merge the single-domain experts with one method -> a checkpoint folder."""

from kfp import dsl
from kfp.dsl import Model, Output

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def merge(spec_json: str, parent_run_id: str, label: str, model: Output[Model]):
    """Merge the experts of <artifact_root>/models/single-* by the spec's merge `label` into models/merge-<label>."""
    from m2rl.orchestration.stages import StageContext, merge_name, publish, single_name

    ctx = StageContext(spec_json, parent_run_id)
    method, settings = ctx.merge_method(label), ctx.spec.merge
    name = merge_name(label)
    out = ctx.layout.model(name)
    experts = [ctx.layout.model(single_name(d)) for d in ctx.spec.domains]

    def work() -> dict:  # merge() opens its own MLflow child run
        import mlflow

        from m2rl.merge import merge as merge_stage

        result = merge_stage(ctx.spec.base_model, experts, method.method, method.params, out, settings.dtype,
                             settings.shard_size_mb * 2**20, label=label, track=True)
        return {**result.card, "mlflow_run_id": mlflow.last_active_run().info.run_id}

    key = {"method": method.model_dump(mode="json"), "dtype": settings.dtype, "base": ctx.spec.base_model,
           "shard_size_mb": settings.shard_size_mb}
    outcome = ctx.run("merge", name, out, key=key, inputs=experts, work=work, done=["merge_card.json"])
    publish(outcome, model)
