"""IFEval: 541 prompts with verifiable instructions (google/IFEval: key, prompt, instruction_id_list, kwargs)."""

from __future__ import annotations

from m2rl.evaluate.benchmarks._instructions import InstructionOptions, load_instructions
from m2rl.evaluate.registry import register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec

HUB_ID = "google/IFEval"


@register_benchmark("ifeval", domain="if", hub_id=HUB_ID, k=1, params=InstructionOptions)
def load_ifeval(spec: BenchmarkSpec) -> list[dict]:
    """IFEval (Avg@1, prompt-level strict accuracy; options.mode=loose for loose)."""
    return load_instructions("ifeval", spec, HUB_ID, split="train")
