"""Multi-teacher on-policy distillation (MT-OPD): the base distilled from the expert of each prompt's domain.

`distill(spec, data, teachers, base, out)` is the stage (`m2rl.distill.stage`); the CPU trainer is
`m2rl.distill.trainer.RoutedDistillationTrainer` (TRL's DistillationTrainer, teachers routed by domain), the
GPU one `m2rl.distill.server.RoutedServerDistillationTrainer` (TRL's server distillation against one vLLM
server per teacher), laid out by `m2rl.distill.launch`.
"""

from m2rl.distill.stage import DistillError, DistillResult, describe, distill, experts_needed, teacher_refs

__all__ = ["DistillError", "DistillResult", "describe", "distill", "experts_needed", "teacher_refs"]
