"""Generation backends behind one interface: `hf` (transformers, CPU) and `vllm` (GPU pods).

A backend module `m2rl/evaluate/backends/<name>.py` defines a class registered with
`@register_backend(name)` (the `eval_backend` registry of `m2rl.registry`); a module imports its engine
only when a model is loaded, so vLLM is never imported unless `backend="vllm"`. Both render prompts the same way: the model's own chat template
with the generation prompt appended and the record's tool schemas as `tools=` (`render_prompt`, which is
`m2rl.records.render_chat`, the rendering training uses), then sample `n` completions per prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from m2rl.evaluate.registry import Sampling
from m2rl.registry import EVAL_BACKENDS, StrictModel


@dataclass(frozen=True)
class BackendOptions:
    """Settings a backend is built with (from the spec's `evaluate` section)."""

    batch_size: int = 16
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    seed: int = 0
    extra: Any = None  # the backend's own Params, validated from `evaluate.backend_options`


class Generator(Protocol):
    """A loaded model that samples completions."""

    name: str
    generated_tokens: int

    def render(self, messages: Sequence[dict[str, str]], tools: Any = None) -> str:
        """The prompt text the model sees for chat messages and the record's tool schemas (chat template +
        generation prompt)."""

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, seed: int) -> list[list[str]]:
        """`n` sampled completions for each rendered prompt, in order."""

    def close(self) -> None:
        """Free the model."""


def register_backend(name: str, *, params: type[StrictModel] | None = None) -> Callable[[Any], Any]:
    """Class decorator: register a generator class under `name`; `params` (default the class's `Params`)
    types the spec's `evaluate.backend_options`."""
    return EVAL_BACKENDS.register(name, params=params)


def get_backend(name: str) -> Callable[..., Generator]:
    """The backend class `name` (a backend module imports its engine only when a model is loaded)."""
    return EVAL_BACKENDS.get(name, "evaluate.backend")


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]], tools: Any = None) -> str:
    """Chat template with the generation prompt and `tools=`, as text; a plain join when the tokenizer has
    no template."""
    from m2rl.records import render_chat

    return render_chat(tokenizer, messages, tools)


def load_tokenizer(folder: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok
