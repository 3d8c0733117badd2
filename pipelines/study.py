"""The study pipeline: the plan of `m2rl.workflow.plan` as a KFP DAG, data -> train per domain + mixed ->
merge per method and distill (after the experts) -> evaluate per model -> analyze -> report.

The domains, merge methods and models are known when the pipeline is built, so `build` makes one task per
item in Python (no `dsl.ParallelFor`, no `dsl.Condition`): the same DAG runs under kfp.local and on a KFP
cluster, where tasks with no dependency between them run in parallel. Every edge whose lineage the KFP UI
should show passes a KFP artifact, whose metadata carries the artifact-root URI of the large output: data ->
train (the dataset), expert -> merge (one input per domain), expert -> distill (`teacher_<domain>`), train / merge / distill -> evaluate (the model), analyze
-> report. The evaluations' fan-in to analyze (one per model) is an `.after()` dependency: analyze reads them
from the artifact layout. When `m2rl.k8s.launches_rayjob(spec)` the train tasks are launcher steps: each runs
its training as a KubeRay RayJob (`m2rl.workflow.train`) from a CPU pod.
"""
# No `from __future__ import annotations`: kfp reads the pipeline function's annotations as types.

from collections.abc import Callable

from kfp import dsl

import components as c
from m2rl.k8s import launches_rayjob
from m2rl.names import BASE, DISTILL, merge_name, run_model, single_name
from m2rl.spec import StudySpec
from m2rl.workflow.plan import Step, expert_input, pipeline_name, plan, teacher_input
from pipelines import kube


def build(spec: StudySpec, variant: str = "study") -> Callable:
    """The pipeline function of one variant of a study (call it under kfp.local, or compile it for a cluster)."""
    p = plan(spec, variant)
    k8s = spec.kubernetes
    rayjob = launches_rayjob(spec)  # the train steps launch RayJobs (m2rl.workflow.train) instead of training

    @dsl.pipeline(name=pipeline_name(spec, variant),
                  description=f"M2RL {variant}: {spec.name} ({', '.join(p.paradigms)})")
    def pipeline(spec_json: str = spec.model_dump_json(), parent_run_id: str = ""):
        common = {"spec_json": spec_json, "parent_run_id": parent_run_id}

        def task(step: Step, t: dsl.PipelineTask) -> dsl.PipelineTask:
            t.set_display_name(step.display_name)
            return kube.apply(t, k8s, stage=step.stage, gpu=step.gpu, launcher=rayjob and step.stage == "train")

        data = task(Step("data", "data"), c.data(**common))
        trained: dict[str, dsl.PipelineTask] = {}  # model name -> the train task producing it
        for run in p.runs:
            name = run_model(run)
            trained[name] = task(Step("train", name), c.train(**common, run=run, dataset=data.outputs["dataset"]))
        experts = {expert_input(d): trained[single_name(d)].outputs["model"] for d in p.experts}
        merged: dict[str, dsl.PipelineTask] = {}  # model name -> the merge task producing it
        for label in p.merges:
            name = merge_name(label)
            merged[name] = task(Step("merge", name), c.merge(**common, label=label, **experts))
        if p.distill:
            teachers = {teacher_input(d): trained[single_name(d)].outputs["model"] for d in p.teachers}
            merged[DISTILL] = task(Step("distill", DISTILL),
                                   c.distill(**common, dataset=data.outputs["dataset"], **teachers))
        evaluations = [task(Step("evaluate", BASE),
                            c.evaluate(**common, model_name=BASE, model_ref=spec.base_model).after(data))]
        for name, producer in {**trained, **merged}.items():
            evaluations.append(task(Step("evaluate", name), c.evaluate(
                **common, model_name=name, model_ref="", model=producer.outputs["model"])))
        analysis = task(Step("analyze", "analyze"), c.analyze(**common, models=p.models).after(*evaluations))
        task(Step("report", "report"), c.report(**common, analysis=analysis.outputs["analysis"]))

    return pipeline
