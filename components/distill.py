"""The distill component: multi-teacher on-policy distillation of the base from each domain's expert -> a
checkpoint folder (the model `distill`)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def distill(spec_json: str, parent_run_id: str, dataset: Input[Dataset], model: Output[Model],
            teacher_math: Input[Model] = None, teacher_code: Input[Model] = None,
            teacher_science: Input[Model] = None, teacher_if: Input[Model] = None,
            teacher_agent: Input[Model] = None):
    """Distil the experts (`teacher_<domain>`, else `distill.teachers`) into the base on the prompts of every
    domain (the mix blend), into <artifact_root>/models/distill."""
    from m2rl.distill import distill as distill_stage
    from m2rl.distill import teacher_refs
    from m2rl.names import DISTILL, MIX
    from m2rl.workflow.glue import StageContext, artifact_uri, publish
    from m2rl.workflow.plan import teacher_input

    ctx = StageContext(spec_json, parent_run_id)
    given = {"math": teacher_math, "code": teacher_code, "science": teacher_science, "if": teacher_if,
             "agent": teacher_agent}
    teachers = teacher_refs(ctx.spec, ctx.layout)
    for d in ctx.spec.domains:
        if d not in ctx.spec.distill.teachers:
            teachers[d] = artifact_uri(given.get(d), teacher_input(d))
    data_uri = artifact_uri(dataset, "dataset")
    records, out = ctx.layout.train_split(MIX, data_uri), ctx.layout.model(DISTILL)
    key = {"distill": ctx.spec.distill.model_dump(mode="json"), "base": ctx.spec.base_model, "teachers": teachers}
    outcome = ctx.run("distill", DISTILL, out, key=key, inputs=[data_uri, *teachers.values()],
                      work=lambda: distill_stage(ctx.spec, records, teachers, ctx.spec.base_model, out).card,
                      done=["train_card.json"])
    publish(outcome, model)
