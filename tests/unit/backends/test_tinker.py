"""The Tinker backend's own pieces, without a server: keys, model checks, facts, tokenizers."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from tinker import types
from tinker.lib.retry_handler import RetryConfig

from evaltune.backends.tinker import (
    SDK_VERSION,
    ServiceClient,
    check_reachable,
    local_tokenizer,
    read_api_key,
)
from evaltune.errors import BackendError
from evaltune.server.launch import free_port


def test_sdk_version_is_the_pinned_one() -> None:
    from importlib.metadata import version

    assert version("tinker") == SDK_VERSION


def test_key_from_env_then_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    (tmp_path / ".env").write_text("# keys\nOTHER=1\nexport MY_KEY='tml-from-dotenv'\n")
    assert read_api_key("MY_KEY", cwd=tmp_path) == "tml-from-dotenv"
    monkeypatch.setenv("MY_KEY", "tml-from-env")
    assert read_api_key("MY_KEY", cwd=tmp_path) == "tml-from-env"


def test_missing_or_odd_keys_say_how_to_fix_without_echoing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(BackendError, match=r"set the environment variable MY_KEY.*\.env"):
        read_api_key("MY_KEY", cwd=tmp_path)
    monkeypatch.setenv("MY_KEY", "sk-secret-value")
    with pytest.raises(BackendError, match="must start with 'tml-'") as err:
        read_api_key("MY_KEY", cwd=tmp_path)
    assert "sk-secret-value" not in str(err.value)


def fake_service(models: list[str]) -> ServiceClient:
    caps = types.GetServerCapabilitiesResponse(
        supported_models=[types.SupportedModel(model_name=m) for m in models]
    )
    future = SimpleNamespace(result=lambda: caps)
    rest = SimpleNamespace(get_server_capabilities=lambda: future)
    return ServiceClient(SimpleNamespace(), lambda: rest, RetryConfig())


def test_unknown_models_are_refused_listing_the_supported_ones() -> None:
    service = fake_service(["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B"])
    assert service.list_models() == ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B"]
    with pytest.raises(BackendError, match=r"'Qwen3-8b'.*Qwen/Qwen3-8B, meta-llama/Llama-3.1-8B"):
        service.create_lora_training_client("Qwen3-8b")
    with pytest.raises(BackendError, match="unknown base model"):
        service.create_sampling_client(base_model="nope")


def test_model_facts_from_the_table_or_a_local_config(tiny_model_dir: Path) -> None:
    service = fake_service([])
    assert service.model_facts("Qwen/Qwen3-8B")["hidden_size"] == 4096
    assert service.model_facts(str(tiny_model_dir))["hidden_size"] == 64
    assert service.model_facts("some/unknown-model") == {}


def test_tokenizers_of_local_folders_load_offline(tiny_model_dir: Path) -> None:
    tok = local_tokenizer(str(tiny_model_dir))
    assert tok.decode(tok("hello there").input_ids, skip_special_tokens=True) == "hello there"
    assert local_tokenizer("Qwen/Qwen3-8B") is None  # a hub id: left to the SDK


def test_an_unreachable_server_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(BackendError, match="cannot reach the Tinker service"):
        check_reachable(f"http://127.0.0.1:{free_port()}", "tml-x", timeout=2)
    assert time.monotonic() - start < 5
