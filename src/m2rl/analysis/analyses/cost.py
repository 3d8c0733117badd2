"""Cost: GPU-hours of every training run (CPU-hours on a CPU machine) and mix / sum of single-domain runs;
the distillation run's own (`distill_gpu_hours`; the paradigm also needs the experts it distils).

GPU-hours come from the train cards (GPUs x wall hours). The merge paradigm costs the sum of the
single-domain runs (merging itself is a CPU job of minutes and is not counted), as in the paper's table.
"""

from __future__ import annotations

from typing import Any

from m2rl.analysis.registry import AnalysisContext, register
from m2rl.names import PARADIGM_ORDER


def cost_unit(devices: set[str]) -> str:
    if "unknown" in devices:
        return "device-hours"
    if devices == {"cpu"}:
        return "CPU-hours"
    if devices <= {"gpu"}:
        return "GPU-hours"
    return "device-hours (GPU and CPU runs mixed)"


@register("cost")
def cost(ctx: AnalysisContext) -> dict[str, Any]:
    if not ctx.train_cards:
        return {"skipped": "no train cards"}
    runs = []
    for name, card in ctx.train_cards.items():
        entry = ctx.models.get(name)
        paradigm = entry.paradigm if entry else card.get("paradigm", "single")
        runs.append({
            "run": name, "paradigm": paradigm, "domains": card.get("domains") or ([entry.domain] if entry else []),
            "device": str(card.get("device", "gpu")), "num_devices": int(card.get("num_devices", 1)),
            "steps": card.get("steps"), "wall_hours": (card.get("wall_seconds") or 0) / 3600.0,
            "gpu_hours": float(card["gpu_hours"]), "backend": card.get("backend"),
        })
    rank = {d: i for i, d in enumerate(ctx.domains)}
    runs.sort(key=lambda r: (PARADIGM_ORDER.get(r["paradigm"], 9), rank.get(r["run"].split("-", 1)[-1], 99), r["run"]))
    singles = [r for r in runs if r["paradigm"] == "single"]
    mixes = [r for r in runs if r["paradigm"] == "mix"]
    distills = [r for r in runs if r["paradigm"] == "distill"]
    singles_total = sum(r["gpu_hours"] for r in singles) if singles else None
    mix_total = sum(r["gpu_hours"] for r in mixes) if mixes else None
    ratio = mix_total / singles_total if mix_total is not None and singles_total else None
    return {
        "unit": cost_unit({r["device"] for r in runs}),
        "runs": runs,
        "mix_gpu_hours": mix_total,
        "singles_gpu_hours": singles_total,
        "merge_gpu_hours": singles_total,
        "distill_gpu_hours": sum(r["gpu_hours"] for r in distills) if distills else None,
        "mix_over_singles": ratio,
        "total_gpu_hours": sum(r["gpu_hours"] for r in runs),
    }
