"""A fixture study built in the test: tiny random models with planted task vectors, eval folders in the
evaluate stage's contract format with planted per-problem scores, and train cards.

Domains math and code. Planted weights (tau = theta - theta_base, sparse Gaussian on every tensor):
single-math = base + tau_m, single-code = base + tau_c, mix = base + (tau_m + tau_c)/2 + tau_x,
merge-average = base + (tau_m + tau_c)/2, merge-task_arithmetic = base + tau_m + tau_c (same direction
as merge-average: cosine 1). Planted scores: the mixed model solves math far better than the merges
(mix wins math), code is close (a tie), and the mixed model's responses are longer and verify more often.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from m2rl.checkpoint import CheckpointReader, ShardedWriter, copy_side_files
from m2rl.evaluate import summarize
from m2rl.models import build_random_model

DOMAINS = ("math", "code")
BENCHES = {"math": "builtin_math", "code": "builtin_code"}
N_PROBLEMS, K = 40, 4
# planted per-problem solve probabilities per model and domain
SOLVE_P = {
    "base": {"math": 0.15, "code": 0.20},
    "single-math": {"math": 0.60, "code": 0.20},
    "single-code": {"math": 0.15, "code": 0.55},
    "mix": {"math": 0.80, "code": 0.50},
    "merge-average": {"math": 0.35, "code": 0.50},
    "merge-task_arithmetic": {"math": 0.30, "code": 0.48},
}
VERIFY_RATE = {"base": 0.0, "single-math": 0.25, "single-code": 0.1, "mix": 0.5, "merge-average": 0.2,
               "merge-task_arithmetic": 0.2}
WORDS = {"base": 8, "single-math": 12, "single-code": 12, "mix": 30, "merge-average": 14, "merge-task_arithmetic": 14}
GPU_HOURS = {"single-math": 0.5, "single-code": 0.7, "mix": 0.9}


@dataclass
class FixtureStudy:
    root: Path
    base: str
    models: dict[str, dict]
    evals: dict[str, str]
    train_cards: dict[str, str]
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # model -> bench -> (problems, K)

    def accuracy(self, model: str, bench: str) -> float:
        return float(self.scores[model][bench].mean())


def sparse_delta(shape, seed: int, density: float = 0.05, scale: float = 0.05) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) < density
    return torch.randn(shape, generator=g) * scale * mask


def write_model(base_dir: Path, out: Path, deltas) -> Path:
    """base + delta(name, tensor) for every tensor, written as a checkpoint folder with the base's side files."""
    reader = CheckpointReader(base_dir)
    writer = ShardedWriter(out, max_shard_bytes=200_000)  # several shards, to exercise the index
    for name in reader.names():
        t = reader.get(name)
        writer.add(name, (t.float() + deltas(name, t)).to(t.dtype))
    writer.finish()
    copy_side_files(base_dir, out)
    return out


def write_eval(folder: Path, model: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    scores_by_bench = {}
    benchmarks = {}
    for domain in DOMAINS:
        bench = BENCHES[domain]
        p = SOLVE_P[model][domain]
        # a per-problem difficulty shared by every model keeps them correlated, as real models are
        difficulty = np.random.default_rng(zlib.crc32(bench.encode())).uniform(-0.3, 0.3, N_PROBLEMS)
        probs = np.clip(p + difficulty, 0.02, 0.98)
        scores = (rng.random((N_PROBLEMS, K)) < probs[:, None]).astype(float)
        scores_by_bench[bench] = scores
        rows = {c: [] for c in ("problem_id", "sample_index", "domain", "prompt", "response", "score", "details",
                                "answer")}
        for i in range(N_PROBLEMS):
            for s in range(K):
                n = WORDS[model] + int(rng.integers(0, 4))
                text = " ".join(["step"] * n)
                if rng.random() < VERIFY_RATE[model]:
                    text = text + " Wait, let me check: ok." if s % 2 else "Let me verify. " + text
                rows["problem_id"].append(f"{domain}-{i:03d}")
                rows["sample_index"].append(s)
                rows["domain"].append(domain)
                rows["prompt"].append(f"Solve {domain} problem {i}: what is {i} + {s}?")
                rows["response"].append(text + f" Answer: {i}")
                rows["score"].append(float(scores[i, s]))
                rows["details"].append(json.dumps({"planted": True}))
                rows["answer"].append(str(i))
        (folder / bench).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(rows), folder / bench / "samples.parquet")
        # metrics.json exactly as the evaluate stage writes it (its own summarize over the planted table)
        answers = [[str(i)] * K for i in range(N_PROBLEMS)]
        benchmarks[bench] = {**summarize(scores.tolist(), answers, resamples=500, seed=0), "domain": domain,
                             "sampling": {"temperature": 1.0, "top_p": 0.7, "max_new_tokens": 512}}
    (folder / "metrics.json").write_text(json.dumps({"model": model, "benchmarks": benchmarks}))
    return scores_by_bench


def make_study(root: Path) -> FixtureStudy:
    root.mkdir(parents=True, exist_ok=True)
    base = build_random_model(root / "models" / "base", "tiny", seed=0)
    reader = CheckpointReader(base)
    tau_m = {n: sparse_delta(reader.slice_info(n)[0], 1000 + i) for i, n in enumerate(reader.names())}
    tau_c = {n: sparse_delta(reader.slice_info(n)[0], 2000 + i) for i, n in enumerate(reader.names())}
    tau_x = {n: sparse_delta(reader.slice_info(n)[0], 3000 + i, density=0.02) for i, n in enumerate(reader.names())}
    plans = {
        "single-math": lambda n, t: tau_m[n],
        "single-code": lambda n, t: tau_c[n],
        "mix": lambda n, t: (tau_m[n] + tau_c[n]) / 2 + tau_x[n],
        "merge-average": lambda n, t: (tau_m[n] + tau_c[n]) / 2,
        "merge-task_arithmetic": lambda n, t: tau_m[n] + tau_c[n],
    }
    models = {}
    for name, fn in plans.items():
        write_model(base, root / "models" / name, fn)
        entry = {"uri": str(root / "models" / name)}
        if name.startswith("merge-"):
            entry["merge_method"] = name[len("merge-"):]
        models[name] = entry
    rng = np.random.default_rng(7)
    evals, scores = {}, {}
    for name in ["base", *plans]:
        folder = root / "eval" / name
        scores[name] = write_eval(folder, name, rng)
        evals[name] = str(folder)
    cards = {}
    for name, hours in GPU_HOURS.items():
        card = {"run": "mix" if name == "mix" else name.split("-", 1)[1],
                "paradigm": "mix" if name == "mix" else "single",
                "domains": list(DOMAINS) if name == "mix" else [name.split("-", 1)[1]],
                "steps": 10, "wall_seconds": hours * 3600, "device": "gpu", "num_devices": 1, "gpu_hours": hours,
                "reward_curve": [{"step": 0, "reward": 0.1}], "backend": "openrlhf"}
        path = root / "models" / name / "train_card.json"
        path.write_text(json.dumps(card))
        cards[name] = str(path)
    return FixtureStudy(root=root, base=str(base), models=models, evals=evals, train_cards=cards, scores=scores)
