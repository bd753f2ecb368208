"""Shared fixtures: a tiny in-process model on disk; nothing is downloaded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Gemma-3-shaped model with random weights and a small BPE tokenizer, as a HF folder."""
    from tiny import write_tiny_model  # imports torch: only for the tests that need a model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-gemma"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
