"""The data component: sources -> per-domain train/eval parquet, the mix blend and the data card."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def data(spec_json: str, parent_run_id: str, dataset: Output[Dataset]):
    """Run the data stage into <artifact_root>/data; `dataset` holds the data card and the folder's URI."""
    from m2rl.workflow.glue import StageContext, publish

    ctx = StageContext(spec_json, parent_run_id)
    out = ctx.layout.data

    def work() -> dict:
        from m2rl.data import run_data_stage

        return run_data_stage(ctx.spec, out).card

    outcome = ctx.run("data", "data", out, key={"data": ctx.spec.data.model_dump(mode="json")}, inputs=[], work=work,
                      done=["data_card.json"])
    publish(outcome, dataset)
