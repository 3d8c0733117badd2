"""The study pipeline: data -> train per domain + mixed -> merge per method -> evaluate per model -> analyze -> report.

The domains, merge methods and models are known when the pipeline is built, so `build` makes one task per
item in Python (no `dsl.ParallelFor`, no `dsl.Condition`): the same DAG runs under kfp.local and on a KFP
cluster, where tasks with no dependency between them run in parallel. One-to-one edges pass KFP artifacts
(data -> train, train/merge -> evaluate, analyze -> report) whose metadata carries the artifact-root URI of
the large output; fan-in edges (experts -> merge, evaluations -> analyze) are `.after()` dependencies and the
consumer reads its inputs from the artifact layout.
"""


import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kfp import dsl

import components as c
from m2rl.orchestration.stages import BASE, MIX, merge_name, single_name
from m2rl.spec import StudySpec
from pipelines import kube

GPU_STAGES = ("train", "evaluate")


@dataclass(frozen=True)
class Step:
    """One task of the pipeline: its stage and the item it works on (a domain run, a merge, a model)."""

    stage: str
    item: str

    @property
    def gpu(self) -> bool:
        return self.stage in GPU_STAGES

    @property
    def display_name(self) -> str:
        """`train math`, `merge ties`, `evaluate single-math`, `data`."""
        if self.item == self.stage:
            return self.stage
        item = self.item.split("-", 1)[1] if self.stage in ("train", "merge") and "-" in self.item else self.item
        return f"{self.stage} {item}"


def plan(spec: StudySpec, paradigms: Sequence[str] | None = None) -> list[Step]:
    """Every task of the pipeline for these paradigms (default the spec's), in a valid run order."""
    paradigms = list(paradigms or spec.paradigms)
    bad = [p for p in paradigms if p not in ("mix", "merge")]
    if bad or not paradigms:
        raise ValueError(f"paradigms: must be a non-empty list of 'mix' / 'merge', got {paradigms!r}")
    trained = [single_name(d) for d in spec.domains] if "merge" in paradigms else []
    if "mix" in paradigms:
        trained.append(MIX)
    merged = [merge_name(m.label) for m in spec.merge.methods] if "merge" in paradigms else []
    steps = [Step("data", "data")]
    steps += [Step("train", n) for n in trained]
    steps += [Step("merge", n) for n in merged]
    steps += [Step("evaluate", n) for n in [BASE, *trained, *merged]]
    steps += [Step("analyze", "analyze"), Step("report", "report")]
    return steps


def pipeline_name(spec: StudySpec, variant: str = "study") -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", spec.name.lower()).strip("-") or "m2rl"
    return base if variant == "study" else f"{base}-{variant}"


def build(spec: StudySpec, paradigms: Sequence[str] | None = None, variant: str = "study") -> Callable:
    """The pipeline function of a study (call it under kfp.local, or compile it for a cluster)."""
    steps = plan(spec, paradigms)
    k8s = spec.kubernetes
    models = [s.item for s in steps if s.stage == "evaluate" and s.item != BASE]

    @dsl.pipeline(name=pipeline_name(spec, variant),
                  description=f"M2RL {variant}: {spec.name} ({', '.join(paradigms or spec.paradigms)})")
    def pipeline(spec_json: str = spec.model_dump_json(), parent_run_id: str = ""):
        common = {"spec_json": spec_json, "parent_run_id": parent_run_id}
        tasks: dict[Step, dsl.PipelineTask] = {}

        def add(step: Step, task: dsl.PipelineTask) -> dsl.PipelineTask:
            task.set_display_name(step.display_name)
            tasks[step] = kube.apply(task, k8s, stage=step.stage, gpu=step.gpu)
            return task

        data = add(steps[0], c.data(**common))
        for step in steps[1:]:
            if step.stage == "train":
                run = MIX if step.item == MIX else step.item[len("single-"):]
                add(step, c.train(**common, run=run, dataset=data.outputs["dataset"]))
            elif step.stage == "merge":
                experts = [t for s, t in tasks.items() if s.stage == "train" and s.item != MIX]
                add(step, c.merge(**common, label=step.item[len("merge-"):]).after(*experts))
            elif step.stage == "evaluate" and step.item == BASE:
                add(step, c.evaluate(**common, model_name=BASE, model_ref=spec.base_model).after(data))
            elif step.stage == "evaluate":
                producer = next(t for s, t in tasks.items() if s.stage in ("train", "merge") and s.item == step.item)
                add(step, c.evaluate(**common, model_name=step.item, model_ref="", model=producer.outputs["model"]))
            elif step.stage == "analyze":
                evals = [t for s, t in tasks.items() if s.stage == "evaluate"]
                add(step, c.analyze(**common, models=models).after(*evals))
            elif step.stage == "report":
                analysis = tasks[Step("analyze", "analyze")]
                add(step, c.report(**common, analysis=analysis.outputs["analysis"]))

    return pipeline
