"""Renderers: an ``Example`` → tokens with per-token loss weights, and prompts for sampling.

INTERFACE PINNED BY THE LEAD; the implementation is being written. Three renderers:

- ``chat_template``: the tokenizer's own chat template (``apply_chat_template``); weights on
  every assistant turn's tokens including the end-of-turn marker.
- ``role_colon``: ``"User: …\\n\\nAssistant: …"`` text, for base models without a template.
- ``plain``: the prompt text followed directly by the completion text.
- ``auto``: ``chat_template`` when the tokenizer has one, else ``role_colon``.

Completions end with the tokenizer's EOS (weighted) unless the template already closes the turn,
so a trained model learns to stop; ``stop_sequences`` says what ends a sampled answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tinker import types

from evaltune.data.example import Example, Message

__all__ = ["RENDERERS", "RenderedExample", "Renderer", "get_renderer", "to_datum"]


@dataclass(frozen=True)
class RenderedExample:
    tokens: list[int]      # the full sequence (prompt + completion), starting with BOS if any
    weights: list[float]   # one per token: 1.0 on completion/assistant tokens, else 0.0
    truncated: bool = False


class Renderer(Protocol):
    name: str

    def render_example(self, example: Example, max_seq_len: int | None = None) -> RenderedExample:
        """Tokens + weights for training; truncated to max_seq_len (``truncated`` says so)."""
        ...

    def render_prompt(self, messages: Sequence[Message]) -> list[int]:
        """Tokens to sample an assistant answer from (ends with the assistant-turn opener)."""
        ...

    @property
    def stop_sequences(self) -> list[str | int]:
        """Strings / token ids that end an assistant answer when sampling."""
        ...

    def parse_response(self, tokens: Sequence[int]) -> str:
        """Decoded answer text with the stop sequence and special tokens stripped."""
        ...


def to_datum(rendered: RenderedExample) -> types.Datum:
    """Shift by one: position i of model_input predicts token i + 1."""
    tokens, weights = rendered.tokens, rendered.weights
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": weights[1:]},
    )


RENDERERS: dict[str, type] = {}


def get_renderer(name: str, tokenizer) -> Renderer:  # noqa: ANN001 - any HF tokenizer
    raise NotImplementedError
