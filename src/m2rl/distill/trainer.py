"""TRL 1.16's on-policy `DistillationTrainer` with one teacher per domain, routed by each sample's record.

The student generates on-policy as in TRL; every generated sample carries the index of its record's domain
(`teacher_index`), and the loss of a micro batch is the sum, over the domains present in it, of TRL's own
chunked divergence (`DistillationTrainer._compute_loss`) between the student and that domain's teacher on
that domain's rows only, each normalised by the batch's token count, so the result equals TRL's loss with a
per-sample teacher. Only the routed teacher runs on a sample; the student runs once per micro batch (each
domain's loss reads its rows of that forward).

`TeacherPool` holds the teachers: each is loaded the first time a batch routes to it, and only then (a
domain no batch holds is never loaded), once for the whole run; with `offload` on an accelerator, teachers
wait in host memory and only those a batch routes to sit on the device during its forward, so device memory
is bounded by the teachers that batch needs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import torch
from trl import DistillationTrainer

DOMAIN_COLUMN = "domain"
# The multimodal entries TRL's `_compute_loss` passes to `_get_last_hidden_state` (distillation_trainer.py).
MULTIMODAL_KEYS = ("pixel_values", "image_grid_thw", "pixel_attention_mask", "spatial_shapes", "image_sizes",
                   "token_type_ids", "mm_token_type_ids", "image_position_ids")
TEACHER_INDEX = "teacher_index"


class RoutingError(ValueError):
    """A sample whose domain has no teacher, or teachers that cannot be used with the student."""


class TeacherPool:
    """Teachers by domain: checkpoint paths (loaded lazily, once) or ready models."""

    def __init__(self, teachers: Mapping[str, Any], *, loader: Callable[[str], Any] | None = None,
                 offload: bool = True) -> None:
        if not teachers:
            raise RoutingError("teachers: at least one domain needs a teacher")
        self.domains = list(teachers)
        self.index = {d: i for i, d in enumerate(self.domains)}
        self._given = dict(teachers)
        self._models: dict[str, Any] = {}
        self._loader = loader or load_teacher
        self.offload = offload
        self.loads: Counter[str] = Counter()  # domain -> times its checkpoint was loaded (1 at most)
        self.forwards: Counter[str] = Counter()  # domain -> teacher forwards run
        self.rows: Counter[str] = Counter()  # domain -> samples scored by that teacher
        self._prepare: Callable[[Any], Any] | None = None
        self._device: torch.device | None = None

    def bind(self, prepare: Callable[[Any], Any], device: torch.device, vocab_size: int) -> None:
        """Called by the trainer: how to prepare a teacher (accelerate / DeepSpeed), the device, the vocabulary."""
        self._prepare, self._device, self._vocab = prepare, device, vocab_size
        for domain, model in list(self._given.items()):
            if not isinstance(model, str):  # a ready model is prepared now; paths wait for their first batch
                self._models[domain] = self._ready(domain, model)

    def _ready(self, domain: str, model: Any) -> Any:
        vocab = model.config.get_text_config().vocab_size
        if vocab != self._vocab:
            raise RoutingError(f"teachers.{domain}: vocab_size {vocab} differs from the student's {self._vocab}; "
                               "on-policy distillation compares full next-token distributions")
        model.eval()
        model.requires_grad_(False)
        model = self._prepare(model) if self._prepare else model
        if self.offload and self._device is not None and self._device.type != "cpu":
            model.to("cpu")
        return model

    def loaded(self) -> list[str]:
        return [d for d in self.domains if d in self._models]

    def get(self, domain: str) -> Any:
        """The teacher of `domain`, loaded on first use (and never again)."""
        if domain not in self.index:
            raise RoutingError(f"domain {domain!r} has no teacher (teachers: {', '.join(self.domains)})")
        if domain not in self._models:
            self.loads[domain] += 1
            self._models[domain] = self._ready(domain, self._loader(self._given[domain]))
        return self._models[domain]

    def on_device(self, model: Any) -> Any:
        if self.offload and self._device is not None and self._device.type != "cpu":
            model.to(self._device)
        return model

    def off_device(self, model: Any) -> None:
        if self.offload and self._device is not None and self._device.type != "cpu":
            model.to("cpu")


def load_teacher(path: str) -> Any:
    """A teacher checkpoint in float32 (as TRL loads a teacher given by path on the CPU)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def teacher_indices(inputs: list[dict[str, Any]], index: Mapping[str, int]) -> torch.Tensor:
    """The teacher index of every sample of a generation batch, from its record's `domain`."""
    out = []
    for x in inputs:
        domain = x.get(DOMAIN_COLUMN)
        if domain not in index:
            rid = x.get("id", "?")
            raise RoutingError(f"record {rid!r}: domain {domain!r} has no teacher (teachers: {', '.join(index)})")
        out.append(index[domain])
    return torch.tensor(out, dtype=torch.long)


def rows_by_teacher(teacher_index: torch.Tensor, domains: list[str]) -> list[tuple[str, torch.Tensor]]:
    """(domain, row indices) of every domain present in a micro batch, in teacher order."""
    return [(domains[int(i)], (teacher_index == i).nonzero(as_tuple=True)[0]) for i in teacher_index.unique(sorted=True)]


def take_rows(inputs: dict[str, Any], rows: torch.Tensor, n: int) -> dict[str, Any]:
    """The rows `rows` of every per-sample entry of a micro batch (scalars kept)."""
    out = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == n:
            out[k] = v[rows.to(v.device)]
        elif isinstance(v, list) and len(v) == n:
            out[k] = [v[int(i)] for i in rows]
        else:
            out[k] = v
    return out


class RoutedDistillationTrainer(DistillationTrainer):
    """`DistillationTrainer` with `teachers` (domain -> checkpoint or model) routed by each row's `domain`."""

    _tag_names = ["trl", "distillation", "m2rl-multi-teacher"]

    def __init__(self, model: Any, teachers: Mapping[str, Any] | TeacherPool, args: Any = None, **kwargs: Any):
        self.pool = teachers if isinstance(teachers, TeacherPool) else TeacherPool(teachers)
        self._student_hidden = self._student_rows = self._student_module = None
        super().__init__(model=model, teacher_model=None, args=args, **kwargs)

        def prepare(m: Any) -> Any:
            if self.is_deepspeed_enabled:
                from trl.models import prepare_deepspeed

                return prepare_deepspeed(m, self.accelerator)
            return self.accelerator.prepare_model(m, evaluation_mode=True)

        if self.is_deepspeed_enabled:
            self.pool.offload = False  # DeepSpeed owns the placement of its engines
        self.pool.bind(prepare, self.accelerator.device, self.model.config.get_text_config().vocab_size)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        index = teacher_indices(inputs, self.pool.index)  # before generating: a bad record fails at once
        output = super()._generate_and_score_completions(inputs)
        output[TEACHER_INDEX] = index.to(output["completion_ids"].device)
        return output

    def _compute_loss(self, unwrapped_student: Any, inputs: dict[str, Any], num_items_in_batch: Any):
        if TEACHER_INDEX not in inputs:
            raise RoutingError(f"a batch without `{TEACHER_INDEX}`: the trainer routes by the records' `domain`")
        n = inputs["completion_ids"].shape[0]
        if num_items_in_batch is None:  # one mean over the whole micro batch, as TRL reduces it
            mask = inputs["completion_mask"] if "tool_mask" not in inputs else inputs["completion_mask"] * inputs["tool_mask"]
            num_items_in_batch = mask.sum().clamp(min=1)
        groups = rows_by_teacher(inputs[TEACHER_INDEX], self.pool.domains)
        self._student_module = unwrapped_student
        if len(groups) > 1:  # one student forward for the whole micro batch; each group reads its rows of it
            self._student_hidden = self._get_last_hidden_state(
                unwrapped_student, torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1),
                torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1), inputs["completion_ids"].size(1),
                **{k: inputs[k] for k in MULTIMODAL_KEYS if k in inputs})
        loss = entropy = valid = None
        for domain, rows in groups:
            teacher = self.pool.on_device(self.pool.get(domain))
            self.teacher_model = teacher
            self._student_rows = rows if len(groups) > 1 else None
            try:
                part, ent, nv = super()._compute_loss(unwrapped_student, take_rows(inputs, rows, n), num_items_in_batch)
            finally:
                self.teacher_model = self._student_rows = None
                self.pool.off_device(teacher)
            self.pool.forwards[domain] += 1
            self.pool.rows[domain] += int(rows.numel())
            if int(nv) > 0:  # the domain's mean per-token divergence in this micro batch, logged by TRL's `log`
                mode = "train" if self.model.training else "eval"
                self._metrics[mode][f"divergence/{domain}"].append(float(part.detach() * num_items_in_batch / nv))
            loss = part if loss is None else loss + part
            entropy = ent if entropy is None else entropy + ent
            valid = nv if valid is None else valid + nv
        self._student_hidden = None
        return loss, entropy, valid

    def _get_last_hidden_state(self, unwrapped_model: Any, *args: Any, **kwargs: Any):
        """TRL's, except that the student's hidden states of a group are its rows of the batch's one forward."""
        if self._student_rows is not None and unwrapped_model is self._student_module:
            return self._student_hidden[self._student_rows.to(self._student_hidden.device)]
        return super()._get_last_hidden_state(unwrapped_model, *args, **kwargs)
