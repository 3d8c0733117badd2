"""The GPU trainer: TRL 1.16's `ServerDistillationTrainer` with one teacher server per domain.

TRL's server distillation fetches the teacher's per-token log-probs of the student's own completions from an
OpenAI-compatible vLLM server (`VLLMClient.get_sequence_logprobs`: `/v1/completions` with `prompt_logprobs`,
`max_tokens: 1`), and the student generates with vLLM (`use_vllm`, colocated). Here every sample carries the
index of its record's domain, and each domain's rows are sent to that domain's server only; the loss is TRL's
(for reverse KL: top-1 support on the sampled token plus the tail bucket, the signal of the paper's slime
recipe, which uses the teacher's log-prob of each sampled token).

`RoutedServerDistillationConfig` adds `teacher_server_urls` (JSON: domain -> base URL) to TRL's config; its
parser is TRL's (`TrlParser`, an `HfArgumentParser`), which `parse_trainer_args` runs on an argument list.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from trl.experimental.server_distillation import ServerDistillationConfig, ServerDistillationTrainer

from m2rl.distill.trainer import TEACHER_INDEX, RoutingError, rows_by_teacher, take_rows, teacher_indices


@dataclass
class RoutedServerDistillationConfig(ServerDistillationConfig):
    """TRL's ServerDistillationConfig with one teacher server per domain."""

    _VALID_DICT_FIELDS = [*ServerDistillationConfig._VALID_DICT_FIELDS, "teacher_server_urls"]

    teacher_server_urls: dict[str, str] | str | None = field(
        default=None, metadata={"help": "JSON mapping of domain -> base URL of that domain's teacher vLLM server."})

    def __post_init__(self):
        if isinstance(self.teacher_server_urls, str):
            self.teacher_server_urls = json.loads(self.teacher_server_urls)
        if not self.teacher_server_urls:
            raise ValueError("teacher_server_urls must map every domain to its teacher's vLLM server")
        if self.teacher_model_server_url is None:  # TRL requires one; it is the first domain's server
            self.teacher_model_server_url = next(iter(self.teacher_server_urls.values()))
        super().__post_init__()


@dataclass
class EntryArguments:
    """What the GPU entry reads besides TRL's config."""

    records: str = field(metadata={"help": "Parquet of the prompt records (every domain)."})
    student: str = field(metadata={"help": "Student checkpoint (the base)."})
    out: str = field(metadata={"help": "Folder of the final Hugging Face checkpoint."})
    spec_json: str = field(metadata={"help": "The study spec as JSON (its `distill` section is used)."})


def trainer_parser() -> Any:
    from trl import TrlParser

    return TrlParser((EntryArguments, RoutedServerDistillationConfig))


def parse_trainer_args(argv: list[str], *, device_checks: bool = True) -> tuple[EntryArguments, RoutedServerDistillationConfig]:
    """The GPU trainer's argument list through TRL's parser: an unknown flag or a bad value fails (argparse),
    then TRL's and transformers' own post-init checks run. `device_checks=False` (a machine without a GPU)
    builds the config with bf16 off, the one check that needs the device."""
    parser = trainer_parser()
    ns = argparse.ArgumentParser.parse_args(parser, argv)
    values = vars(ns)
    entry_fields = {f for f in EntryArguments.__dataclass_fields__}
    entry = EntryArguments(**{k: v for k, v in values.items() if k in entry_fields})
    cfg_fields = {k for k, f in RoutedServerDistillationConfig.__dataclass_fields__.items() if f.init}
    kwargs = {k: v for k, v in values.items() if k in cfg_fields}
    if not device_checks:
        kwargs["bf16"], kwargs["use_cpu"] = False, True
    return entry, RoutedServerDistillationConfig(**kwargs)


class RoutedServerDistillationTrainer(ServerDistillationTrainer):
    """ServerDistillationTrainer whose teacher log-probs come from the server of each sample's domain."""

    _tag_names = ["trl", "server-distillation", "m2rl-multi-teacher"]

    def __init__(self, model: Any, args: RoutedServerDistillationConfig, **kwargs: Any):
        super().__init__(model=model, args=args, **kwargs)
        from trl.generation.vllm_client import VLLMClient

        self.domains = list(args.teacher_server_urls)
        self.domain_index = {d: i for i, d in enumerate(self.domains)}
        self.clients = {d: self.teacher_client if url == args.teacher_model_server_url
                        else VLLMClient(base_url=url, connection_timeout=60.0)
                        for d, url in args.teacher_server_urls.items()}
        self.teacher_calls: Counter[str] = Counter()

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        index = teacher_indices(inputs, self.domain_index)
        output = super()._generate_and_score_completions(inputs)
        output[TEACHER_INDEX] = index.to(output["completion_ids"].device)
        return output

    def _get_teacher_token_logprobs_from_server(self, inputs: dict[str, Any], aligned_prompt_length: int):
        if TEACHER_INDEX not in inputs:
            raise RoutingError(f"a batch without `{TEACHER_INDEX}`: the trainer routes by the records' `domain`")
        n = inputs["input_ids"].shape[0]
        parts = []
        for domain, rows in rows_by_teacher(inputs[TEACHER_INDEX], self.domains):
            self.teacher_client = self.clients[domain]
            parts.append((rows, super()._get_teacher_token_logprobs_from_server(take_rows(inputs, rows, n),
                                                                                 aligned_prompt_length)))
            self.teacher_calls[domain] += 1
        return merge_teacher_results(parts, n)


def merge_teacher_results(parts: list[tuple[torch.Tensor, dict[str, torch.Tensor]]], n: int) -> dict[str, torch.Tensor]:
    """Per-domain teacher results (rows, {actual_logprobs (b, T), topk_logprobs (b, T, K), topk_token_ids}) back
    into one batch of `n` rows, padded to the longest completion (-inf log-probs, token 0) as TRL pads them."""
    length = max(r["actual_logprobs"].shape[1] for _, r in parts)
    first = parts[0][1]
    k = first["topk_logprobs"].shape[-1]
    dev = first["actual_logprobs"].device
    out = {"actual_logprobs": torch.full((n, length), float("-inf"), device=dev),
           "topk_logprobs": torch.full((n, length, k), float("-inf"), device=dev),
           "topk_token_ids": torch.zeros((n, length, k), dtype=torch.long, device=dev)}
    for rows, r in parts:
        t = r["actual_logprobs"].shape[1]
        for key in out:
            out[key][rows.to(dev), :t] = r[key].to(out[key].dtype)
    return out
