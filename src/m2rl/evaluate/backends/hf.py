"""The `hf` backend: transformers `generate` on the CPU (or one GPU), batched with left padding.

Each call samples `n` completions per prompt with `num_return_sequences=n` in one padded batch;
the torch RNG is seeded per call, so the same prompts, sampling and seed give the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from m2rl.evaluate.backends import BackendOptions, load_tokenizer, register_backend, render_prompt
from m2rl.evaluate.registry import Sampling


@register_backend("hf")
class HFGenerator:
    """transformers AutoModelForCausalLM + the checkpoint's tokenizer."""

    name = "hf"

    def __init__(self, folder: str | Path, options: BackendOptions | None = None, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.options = options or BackendOptions()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_tokenizer(str(folder))
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).to(self.device).eval()
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)
        self.eos_ids = self._eos_ids()
        self.generated_tokens = 0

    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        for src in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(src, int):
                ids.add(src)
            elif src:
                ids.update(int(i) for i in src)
        return sorted(ids)

    def render(self, messages: Sequence[dict[str, str]], tools: Any = None) -> str:
        return render_prompt(self.tokenizer, messages, tools)

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, seed: int) -> list[list[str]]:
        import torch

        if not prompts:
            return []
        enc = self.tokenizer(list(prompts), padding=True, add_special_tokens=False, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        width = enc["input_ids"].shape[1]
        max_new = sampling.max_new_tokens
        if self.max_positions:
            max_new = max(1, min(max_new, self.max_positions - width))
        greedy = sampling.temperature <= 0
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new, do_sample=not greedy, num_return_sequences=1 if greedy else n,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos_ids or None,
        )
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        texts = self._decode(out[:, width:])
        per = 1 if greedy else n
        rows = [texts[i * per : (i + 1) * per] for i in range(len(prompts))]
        return [r * n if greedy else r for r in rows]

    def _decode(self, gen: Any) -> list[str]:
        import torch

        if self.eos_ids:
            is_eos = torch.isin(gen, torch.tensor(self.eos_ids, device=gen.device))
            first = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, gen.shape[1])
        else:
            first = torch.full((gen.shape[0],), gen.shape[1], device=gen.device)
        lengths = first.tolist()
        self.generated_tokens += int(sum(lengths))
        return self.tokenizer.batch_decode(
            [row[:length] for row, length in zip(gen, lengths, strict=True)], skip_special_tokens=True
        )

    def close(self) -> None:
        self.model = None
