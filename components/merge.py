"""The merge component: merge the single-domain experts with one method -> a checkpoint folder."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def merge(spec_json: str, parent_run_id: str, label: str, model: Output[Model], expert_math: Input[Model] = None,
          expert_code: Input[Model] = None, expert_science: Input[Model] = None, expert_if: Input[Model] = None,
          expert_agent: Input[Model] = None):
    """Merge the experts of the spec's domains (`expert_<domain>`) by the spec's merge `label`, into
    <artifact_root>/models/merge-<label>."""
    from m2rl.names import merge_name
    from m2rl.workflow.glue import StageContext, artifact_uri, publish
    from m2rl.workflow.plan import expert_input

    ctx = StageContext(spec_json, parent_run_id)
    given = {"math": expert_math, "code": expert_code, "science": expert_science, "if": expert_if,
             "agent": expert_agent}
    experts = [artifact_uri(given.get(d), expert_input(d)) for d in ctx.spec.domains]
    method, settings, name = ctx.merge_method(label), ctx.spec.merge, merge_name(label)
    out = ctx.layout.model(name)

    def work() -> dict:
        from m2rl.merge import merge as merge_stage
        from m2rl.merge.stage import expert_checkpoints

        at_steps = expert_checkpoints(dict(zip(ctx.spec.domains, experts, strict=True)), settings.expert_steps)
        return merge_stage(ctx.spec.base_model, at_steps, method.method, method.params, out, settings.dtype,
                           settings.shard_size_mb * 2**20, label=label).card

    key = {"method": method.model_dump(mode="json"), "dtype": settings.dtype, "base": ctx.spec.base_model,
           "shard_size_mb": settings.shard_size_mb, "expert_steps": settings.expert_steps}
    publish(ctx.run("merge", name, out, key=key, inputs=experts, work=work, done=["merge_card.json"]), model)
