"""The train stage: GRPO on OpenRLHF (GPU pods) or TRL (the CPU), single-domain or mixed, from one spec."""

from m2rl.train.job import TrainError, TrainJob
from m2rl.train.registry import backend_names, get_backend, register_backend
from m2rl.train.stage import TrainResult, describe, plan, train

__all__ = [
    "TrainError", "TrainJob", "TrainResult", "backend_names", "describe", "get_backend", "plan",
    "register_backend", "train",
]
