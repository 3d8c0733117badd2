"""`accelerate launch -m m2rl.distill.gpu_entry ...`: the GPU trainer process of the distill stage (see
`m2rl.distill.launch`). Arguments are parsed by TRL's parser (`m2rl.distill.server.parse_trainer_args`); the
prompts are the distill stage's rows; the final checkpoint and `distill_summary.json` go to `--out`."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from m2rl.distill.server import RoutedServerDistillationTrainer, parse_trainer_args
    from m2rl.distill.stage import prompt_rows, steps_per_optimizer
    from m2rl.spec import spec_from_dict
    from m2rl.train import checkpoints

    entry, config = parse_trainer_args(sys.argv[1:] if argv is None else argv)
    spec = spec_from_dict(json.loads(entry.spec_json), "--spec_json")
    tokenizer = AutoTokenizer.from_pretrained(entry.student, padding_side="left", truncation_side="left")
    rows, too_long = prompt_rows(spec, entry.records, tokenizer)
    trainer = RoutedServerDistillationTrainer(model=entry.student, args=config, train_dataset=Dataset.from_list(rows),
                                              processing_class=tokenizer)
    latest = checkpoints.latest_complete(config.output_dir) if Path(config.output_dir).is_dir() else None
    trainer.train(resume_from_checkpoint=str(latest) if latest else None)
    if trainer.accelerator.is_main_process:
        trainer.save_model(entry.out)
        tokenizer.save_pretrained(entry.out)
        per_step, _ = steps_per_optimizer(spec)
        summary = {"steps": -(-trainer.state.global_step // per_step), "optimizer_steps": trainer.state.global_step,
                   "teacher_calls": dict(trainer.teacher_calls), "prompts_over_max_len": sum(too_long.values())}
        (Path(entry.out) / "distill_summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
