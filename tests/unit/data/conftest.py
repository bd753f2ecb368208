"""Fixtures for the data tests: the tiny tokenizer, with and without a Gemma-style chat template."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from tiny import build_tokenizer

FIXTURES = Path(__file__).parents[2] / "fixtures" / "data"

# Gemma 3's template, reduced: BOS, then <start_of_turn>ROLE\n...<end_of_turn>\n per turn, the
# assistant called "model", and the generation prompt "<start_of_turn>model\n".
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with <bos>/<eos>/<pad>; adds BOS when encoding; no chat template."""
    return build_tokenizer()


@pytest.fixture
def chat_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny tokenizer with the Gemma-style template (turn markers are plain text here)."""
    tok = build_tokenizer()
    tok.chat_template = GEMMA_TEMPLATE
    return tok
