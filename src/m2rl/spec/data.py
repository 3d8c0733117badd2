"""The `data` section: domains, their sources, the blend and the split."""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from m2rl.names import DOMAINS
from m2rl.registry import suggestion, validation_lines
from m2rl.spec.base import StrictModel

__all__ = ["DOMAINS", "PROMPT_TEMPLATES", "DataSpec", "DomainSpec", "PromptTemplate", "SourceSpec"]


class PromptTemplate(StrictModel):
    """How a source's prompts are rewritten: the last user message becomes `prefix + content + suffix`, after
    its leading `reword_from` (when set) is replaced by `reword_to`."""

    model_config = ConfigDict(frozen=True)  # the named templates are shared

    prefix: str = Field(default="", description="Text put before the last user message's content.")
    suffix: str = Field(default="", description="Text put after the last user message's content.")
    reword_from: str | None = Field(
        default=None, description="The start of the content to replace (a prompt that does not start so is counted)."
    )
    reword_to: str = Field(default="", description="What replaces `reword_from`.")

    @model_validator(mode="after")
    def _something_to_do(self) -> PromptTemplate:
        if not self.prefix and not self.suffix and not self.reword_from:
            raise ValueError("set prefix, suffix or reword_from (an empty template changes nothing)")
        return self

    def apply(self, content: str) -> str | None:
        """The rewritten content, or None when `reword_from` is set and the content does not start with it."""
        if self.reword_from:
            if not content.startswith(self.reword_from):
                return None
            content = self.reword_to + content[len(self.reword_from):]
        return f"{self.prefix}{content}{self.suffix}"


# The M2RL paper's own prompt rewrites (Mosi-AI/M2RL, M2RL/data/process_rl_data.py): math prompts get the
# DAPO-style instruction in front; science prompts have their leading instruction reworded to "step by step".
PAPER_MATH_PREFIX = ("Solve the following math problem step by step. The last line of your response should be of "
                     "the form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n")
PROMPT_TEMPLATES: dict[str, PromptTemplate] = {
    "paper_math": PromptTemplate(prefix=PAPER_MATH_PREFIX),
    "paper_science": PromptTemplate(reword_from="Answer the following multiple choice question.",
                                    reword_to="Answer the following multiple choice question step by step."),
}


def format_template(text: str) -> PromptTemplate:
    """A `{prompt}` format string as a template; ValueError unless `{prompt}` is its one placeholder (other
    braces doubled: `{{` `}}`)."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"not a valid format string ({exc}); write literal braces as {{{{ and }}}}") from None
    fields = [(name, spec, conv) for _, name, spec, conv in parts if name is not None]
    for name, spec, conv in fields:
        if name != "prompt":
            raise ValueError(f"unknown placeholder {{{name}}}: the only placeholder is {{prompt}} "
                             "(write literal braces as {{ and }})")
        if spec or conv:
            raise ValueError("{prompt} takes no conversion or format spec")
    if len(fields) != 1:
        hint = suggestion(text, PROMPT_TEMPLATES) if not fields else ""
        raise ValueError(
            f"must be a template name ({', '.join(PROMPT_TEMPLATES)}) or a format string with {{prompt}} exactly "
            f"once, got {len(fields)} placeholders{hint}")
    prefix, suffix, seen = "", "", False
    for lit, name, _, _ in parts:
        if seen:
            suffix += lit
        else:
            prefix += lit
        seen = seen or name is not None
    if not prefix and not suffix:
        raise ValueError("'{prompt}' alone changes nothing; leave prompt_template unset")
    return PromptTemplate(prefix=prefix, suffix=suffix)


def resolve_template(value: PromptTemplate | str | None) -> PromptTemplate | None:
    """The template a source's `prompt_template` names: a named one, a `{prompt}` format string, or as given."""
    if value is None or isinstance(value, PromptTemplate):
        return value
    if value in PROMPT_TEMPLATES:
        return PROMPT_TEMPLATES[value]
    return format_template(value)


class SourceSpec(StrictModel):
    """One data source, adapted into unified records by the source registered under `type`."""

    type: str = Field(description="Registered source name: builtin, nemotron_rl_blend, hf, records.")
    path: str | None = Field(default=None, description="Local path, glob, s3:// URI or HF hub id of the input.")
    split: str = Field(default="train", description="Dataset split to read (hf / builtin sources).")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Record field -> source column mapping (hf source)."
    )
    verifier: dict[str, Any] = Field(
        default_factory=dict, description="Verifier block for sources whose rows do not carry one (hf source)."
    )
    limit: int | None = Field(default=None, ge=1, description="Read at most this many rows from the source.")
    options: dict[str, Any] = Field(default_factory=dict, description="Source-specific options.")
    prompt_template: PromptTemplate | str | None = Field(
        default=None,
        description="Rewrite of the last user message: paper_math, paper_science, a {prompt} format string, "
                    "or {prefix, suffix}; off by default.",
    )

    @field_validator("prompt_template", mode="before")
    @classmethod
    def _template(cls, v: Any) -> PromptTemplate | str | None:
        if isinstance(v, dict):
            try:
                v = PromptTemplate.model_validate(v)
            except ValidationError as exc:
                lines = validation_lines(exc, "", PromptTemplate, noun="key")
                raise ValueError("; ".join(line.removeprefix("(top level): ") for line in lines)) from None
        elif v is not None and not isinstance(v, (str, PromptTemplate)):
            raise ValueError(f"must be a template name ({', '.join(PROMPT_TEMPLATES)}), a {{prompt}} format string "
                             f"or {{prefix, suffix}}, got {type(v).__name__}")
        resolve_template(v)
        return v

    def template(self) -> PromptTemplate | None:
        """The resolved prompt template (None when off)."""
        return resolve_template(self.prompt_template)


class DomainSpec(StrictModel):
    """One training domain: its sources and its weight in the mixed run."""

    sources: list[SourceSpec] = Field(
        default_factory=lambda: [SourceSpec(type="builtin")], description="Sources of this domain's records."
    )
    weight: float = Field(default=1.0, gt=0, description="Blend weight when data.balance is 'weights'.")
    max_train: int | None = Field(default=None, ge=1, description="Cap on this domain's train records.")
    max_eval: int | None = Field(default=None, ge=1, description="Cap on this domain's eval records.")


class DataSpec(StrictModel):
    """How records are gathered, deduplicated, split and blended."""

    domains: dict[str, DomainSpec] = Field(
        default_factory=lambda: {d: DomainSpec() for d in DOMAINS},
        description="Domain name -> its sources; names from math, code, science, if, agent.",
    )
    balance: Literal["equal", "proportional", "weights", "natural"] = Field(
        default="equal",
        description="Mix blend: equal shares, by size, by weight (all drawn with replacement), or natural "
                    "(every train record once, shuffled).",
    )
    eval_fraction: float = Field(
        default=0.2, ge=0, lt=1, description="Fraction of each domain's records held out for evaluation."
    )
    seed: int = Field(default=0, description="Seed of the deterministic split and blend.")
    dedup: bool = Field(default=True, description="Drop exact duplicates by normalised prompt hash.")
    max_reject_fraction: float = Field(
        default=0.01, ge=0, le=1, description="Fail the stage when rejected rows exceed this fraction."
    )
    batch_rows: int = Field(default=8192, ge=1, description="Rows per streamed batch (bounds memory).")

    @field_validator("domains")
    @classmethod
    def _known_domains(cls, v: dict[str, DomainSpec]) -> dict[str, DomainSpec]:
        bad = sorted(set(v) - set(DOMAINS))
        if bad:
            raise ValueError(f"unknown domain {bad[0]!r}; expected one of {', '.join(DOMAINS)}")
        if not v:
            raise ValueError("at least one domain is required")
        return v

