"""The report component: analysis.json -> report.html and report.md, logged to the study's parent run."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def report(spec_json: str, parent_run_id: str, analysis: Input[Artifact], html: Output[HTML],
           markdown: Output[Markdown]):
    """Build the report into <artifact_root>/report; `html` and `markdown` are copies of it for the KFP UI."""
    from m2rl import storage, tracking
    from m2rl.workflow.glue import StageContext, artifact_uri, publish

    ctx = StageContext(spec_json, parent_run_id)
    analysis_dir = artifact_uri(analysis, "analysis")
    out = ctx.layout.report

    def work() -> dict:
        from m2rl.analysis import build_report

        result = build_report(analysis_dir, out, parent_run_id=ctx.parent_run_id or None)
        return {"html": result.html, "markdown": result.markdown, "verdict": result.verdict, "tables": result.tables}

    key = {"parent_run_id": ctx.parent_run_id}
    outcome = ctx.run("report", "report", out, key=key, inputs=[analysis_dir], work=work,
                      done=["report.html", "report.md"])
    publish(outcome, html, text=storage.read_text(storage.join(out, "report.html")))
    publish(outcome, markdown, text=storage.read_text(storage.join(out, "report.md")))
    tracking.finish_run(ctx.parent_run_id)
