"""IFBench: out-of-distribution verifiable instructions (allenai/IFBench_test: key, prompt, instruction_id_list, kwargs;
or the paper's processed `val/IFBench_test.parquet`, see m2rl.evaluate.benchmarks._instructions)."""

from __future__ import annotations

from m2rl.evaluate.benchmarks._instructions import InstructionOptions, load_instructions
from m2rl.evaluate.registry import register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec

HUB_ID = "allenai/IFBench_test"


@register_benchmark("ifbench", domain="if", hub_id=HUB_ID, k=1, params=InstructionOptions)
def load_ifbench(spec: BenchmarkSpec) -> list[dict]:
    """IFBench (Avg@1, prompt-level strict accuracy)."""
    return load_instructions("ifbench", spec, HUB_ID, split="train")
