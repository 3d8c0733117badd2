"""Seconds per distillation step: the routed multi-teacher trainer against plain TRL in the same process.

Both train the same tiny random student (a Llama of the `small` preset) on the same prompts, batch and
lengths; plain TRL's DistillationTrainer has one teacher, the routed one two, each sample scored by its
domain's teacher. Routing overhead = routed / plain - 1 (the target is <= 10%).

    python benchmarks/distill_cpu.py [--rounds 3] [--steps 4] [--batch 8] [--tokens 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _config(out: Path, steps: int, batch: int, tokens: int):
    from trl import DistillationConfig

    return DistillationConfig(
        output_dir=str(out), max_steps=steps, learning_rate=1e-5, per_device_train_batch_size=batch,
        gradient_accumulation_steps=1, max_completion_length=tokens, seed=0, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, bf16=False, activation_checkpointing=False, disable_tqdm=True,
        dataloader_num_workers=0)


class _Timer:
    def __init__(self):
        self.times: list[float] = []

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class T(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer._t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                timer.times.append(time.perf_counter() - timer._t)

        return T()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--preset", default="small")
    a = ap.parse_args()

    import torch
    import transformers
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import DistillationTrainer

    from m2rl.distill.trainer import RoutedDistillationTrainer, TeacherPool
    from m2rl.models import build_random_model

    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        student, t1, t2 = (str(build_random_model(root / n, a.preset, seed=s)) for n, s in
                           (("student", 0), ("t1", 1), ("t2", 2)))
        rows = [{"prompt": [{"role": "user", "content": f"problem {i}: add {i} and {2 * i}"}],
                 "domain": ("math", "code")[i % 2], "id": str(i)} for i in range(64)]
        tok = AutoTokenizer.from_pretrained(student, padding_side="left")
        times: dict[str, list[float]] = {"plain TRL (1 teacher)": [], "routed (2 teachers)": []}
        for _ in range(a.rounds):  # ABAB: a neighbour's load on the machine falls on both alike
            for name in times:
                torch.manual_seed(0)
                timer = _Timer()
                cfg = _config(root / "out", a.steps, a.batch, a.tokens)
                if name.startswith("routed"):
                    trainer = RoutedDistillationTrainer(
                        model=student, teachers=TeacherPool({"math": t1, "code": t2}), args=cfg,
                        train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[timer.callback()])
                else:
                    trainer = DistillationTrainer(model=student, teacher_model=t1, args=cfg,
                                                  train_dataset=Dataset.from_list(rows), processing_class=tok,
                                                  callbacks=[timer.callback()])
                trainer.remove_callback(PrinterCallback)
                trainer.train()
                times[name] += timer.times[1:]  # the first step of a run warms up
    plain = times["plain TRL (1 teacher)"]
    print(f"{'trainer':<24} {'s/step min':>11} {'median':>8} {'min vs plain':>13} {'median vs plain':>16}")
    for name, ts in times.items():
        ts = sorted(ts)
        med, pmed = ts[len(ts) // 2], sorted(plain)[len(plain) // 2]
        print(f"{name:<24} {ts[0]:>11.3f} {med:>8.3f} {ts[0] / min(plain):>12.2f}x {med / pmed:>15.2f}x")
    routed = times["routed (2 teachers)"]
    print(f"routing overhead (min s/step): {100 * (min(routed) / min(plain) - 1):+.1f}% ({a.rounds} rounds x "
          f"{a.steps} steps, batch {a.batch} = both domains in every batch, {a.tokens} new tokens, preset {a.preset}, "
          f"torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
