"""The merge component: merge the single-domain experts with one method -> a checkpoint folder."""

from kfp import dsl
from kfp.dsl import Model, Output

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def merge(spec_json: str, parent_run_id: str, label: str, model: Output[Model]):
    """Merge the experts of <artifact_root>/models/single-* by the spec's merge `label` into models/merge-<label>."""
    from dataclasses import asdict, is_dataclass

    from m2rl.merge import merge as merge_stage
    from m2rl.orchestration.stages import StageContext, merge_name, publish, single_name

    ctx = StageContext(spec_json, parent_run_id)
    method = ctx.merge_method(label)
    name = merge_name(label)
    out = ctx.layout.model(name)
    experts = {d: ctx.layout.model(single_name(d)) for d in ctx.spec.domains}

    def work() -> dict:
        result = merge_stage(ctx.spec.base_model, experts, method.method, method.params, out, ctx.spec.merge.dtype)
        return asdict(result) if is_dataclass(result) else dict(result)

    key = {"method": method.model_dump(mode="json"), "dtype": ctx.spec.merge.dtype, "base": ctx.spec.base_model,
           "shard_size_mb": ctx.spec.merge.shard_size_mb}
    child = {"paradigm": "merge", "merge_method": method.method, "model": name}
    outcome = ctx.run("merge", name, out, key=key, inputs=list(experts.values()), work=work, done=["config.json"],
                      child=child)
    publish(outcome, model)
