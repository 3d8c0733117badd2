"""The analyze component: checkpoints + eval folders + train cards -> analysis.json."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def analyze(spec_json: str, parent_run_id: str, models: list, analysis: Output[Artifact]):
    """Analyse the study's `models` (names under <artifact_root>/models) and the base into <artifact_root>/analysis."""
    from m2rl import storage
    from m2rl.names import BASE, merge_name
    from m2rl.workflow.glue import StageContext, publish

    ctx = StageContext(spec_json, parent_run_id)
    out = ctx.layout.analysis
    labels = {merge_name(m.label): m.method for m in ctx.spec.merge.methods}
    entries = {n: {"uri": ctx.layout.model(n), **({"merge_method": labels[n]} if n in labels else {})} for n in models}
    evals = {n: ctx.layout.eval(n) for n in [BASE, *models]}
    cards = {n: storage.join(e["uri"], "train_card.json") for n, e in entries.items() if n not in labels}

    def work() -> dict:
        from m2rl.analysis import analyze as analyze_stage

        present = {n: c for n, c in cards.items() if storage.exists(c)}
        result = analyze_stage(ctx.spec, entries, ctx.spec.base_model, evals, present, out)
        return {"sections": result.sections, "verdict": result.verdict, "seconds": result.seconds}

    key = {"analysis": ctx.spec.analysis.model_dump(mode="json"), "domains": ctx.spec.domains,
           "bootstrap": ctx.spec.evaluate.bootstrap, "base": ctx.spec.base_model}
    inputs = [e["uri"] for e in entries.values()] + list(evals.values())
    outcome = ctx.run("analyze", "analyze", out, key=key, inputs=inputs, work=work, done=["analysis.json"])
    publish(outcome, analysis)
