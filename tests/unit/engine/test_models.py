"""Model resolution and tokenizer checks, on tiny in-process models; nothing is downloaded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from evaltune.engine import models as engine_models
from evaltune.engine.models import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    MARKER,
    ResolvedModel,
    check_tokenizer,
    default_cache_dir,
    load_tokenizer,
    resolve_model,
)
from evaltune.errors import EngineError, ModelNotFoundError

CORPUS = [
    "The capital of France is Paris, and the weather today is lovely.",
    "The quick brown fox jumps over the lazy dog.",
    "Two plus two is four, and three plus three is six.",
] * 20
SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach the network, and the HF cache is an empty folder of our own."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def bpe_tokenizer(*, add_bos: bool = False) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS, show_progress=False)
    backend.train_from_iterator(CORPUS, trainer)
    if add_bos:
        bos_id = backend.token_to_id("<bos>")
        backend.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos_id)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>"
    )


def word_tokenizer() -> PreTrainedTokenizerFast:
    words = sorted({w for line in CORPUS for w in line.replace(",", " ").replace(".", " ").split()})
    vocab = {token: i for i, token in enumerate(["<pad>", "<unk>", ",", ".", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")


def char_tokenizer() -> PreTrainedTokenizerFast:
    """What transformers 5.5.x makes of Gemma's GGUF tokenizer: one token per character."""
    chars = sorted({c for line in CORPUS for c in line})
    vocab = {token: i for i, token in enumerate(["<unk>", *chars])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-llama"
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    bpe_tokenizer().save_pretrained(folder)
    return folder


def test_builtin_alias_is_the_default() -> None:
    assert DEFAULT_MODEL in BUILTIN_MODELS


def test_local_folder_resolves_and_loads(
    tiny_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_folder.parent)
    resolved = resolve_model(tiny_folder.name)
    assert resolved == ResolvedModel(name="tiny-llama", path=str(tiny_folder), source="local")
    assert Path(resolved.path).is_absolute()
    assert AutoModelForCausalLM.from_pretrained(resolved.path).config.model_type == "llama"
    assert load_tokenizer(resolved.path).encode("The capital of France")


def test_unknown_name_lists_what_is_accepted() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("gema-3-270m")
    message = str(caught.value)
    assert message.startswith("unknown model 'gema-3-270m'")
    assert "did you mean 'gemma-3-270m'" in message
    for accepted in ("gemma-3-270m", "a local folder with config.json", "google/gemma-3-270m"):
        assert accepted in message


def test_unreachable_hub_id_says_why() -> None:
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set"):
        resolve_model("nobody/no-such-model")


def test_hub_id_in_local_hf_cache_resolves_offline(tmp_path: Path) -> None:
    repo = tmp_path / "hf-cache" / "models--someorg--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    assert resolve_model("someorg/tiny") == ResolvedModel("someorg/tiny", "someorg/tiny", "hub")


def test_folder_without_config_gets_its_own_message(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"empty has no config\.json"):
        resolve_model(str(tmp_path / "empty"))


def test_default_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVALTUNE_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("EVALTUNE_CACHE")
    assert default_cache_dir().name == "evaltune"


def test_character_level_tokenizer_is_refused() -> None:
    import transformers

    with pytest.raises(EngineError, match="character-level") as caught:
        check_tokenizer(char_tokenizer(), "broken-gemma")
    assert transformers.__version__ in str(caught.value)
    assert "transformers>=5.23" in str(caught.value)


@pytest.mark.parametrize("make", [word_tokenizer, bpe_tokenizer], ids=["word", "bpe"])
def test_subword_tokenizers_pass(make: Callable[[], PreTrainedTokenizerFast]) -> None:
    check_tokenizer(make(), "tiny")


def test_gemma_without_bos_is_refused() -> None:
    check_tokenizer(bpe_tokenizer(add_bos=True), "tiny-gemma")
    check_tokenizer(bpe_tokenizer(), "tiny-llama")  # not Gemma: bos is optional
    with pytest.raises(EngineError, match="does not add its bos token"):
        check_tokenizer(bpe_tokenizer(), "tiny-gemma")


def test_model_type_in_folder_triggers_bos_rule(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    Gemma3TextConfig(vocab_size=300, hidden_size=16, num_hidden_layers=1).save_pretrained(
        tmp_path / "m"
    )
    bpe_tokenizer().save_pretrained(tmp_path / "m")
    with pytest.raises(EngineError, match="does not add its bos token"):
        load_tokenizer(str(tmp_path / "m"))


def test_load_tokenizer_from_folder_without_one(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="cannot load a tokenizer"):
        load_tokenizer(str(tmp_path))


def fake_converter(out: Path, progress: Callable[[str], None]) -> None:
    progress("converting (fake)")
    (out / "config.json").write_text("{}")
    (out / MARKER).write_text(json.dumps({"format": engine_models.CACHE_FORMAT}))


def failing_converter(out: Path, progress: Callable[[str], None]) -> None:
    (out / "config.json").write_text("{}")  # half-written, then killed
    raise RuntimeError("converter must not run")


def test_converted_cache_is_reused_without_converting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "models" / DEFAULT_MODEL
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / MARKER).write_text(json.dumps({"format": engine_models.CACHE_FORMAT}))
    monkeypatch.setitem(engine_models._CONVERTERS, DEFAULT_MODEL, failing_converter)
    resolved = resolve_model(DEFAULT_MODEL, cache_dir=tmp_path)
    assert resolved == ResolvedModel(DEFAULT_MODEL, str(target), "alias")


def test_conversion_is_atomic_and_replaces_stale_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models_dir = tmp_path / "models"
    (models_dir / DEFAULT_MODEL).mkdir(parents=True)  # no marker: an interrupted older layout
    (models_dir / f".{DEFAULT_MODEL}.tmp-dead").mkdir()  # left by a killed conversion
    monkeypatch.setitem(engine_models._CONVERTERS, DEFAULT_MODEL, failing_converter)
    with pytest.raises(RuntimeError, match="must not run"):
        resolve_model(DEFAULT_MODEL, cache_dir=tmp_path)
    assert not (models_dir / DEFAULT_MODEL / "config.json").exists()
    assert not list(models_dir.glob(".*.tmp-*"))

    messages: list[str] = []
    monkeypatch.setitem(engine_models._CONVERTERS, DEFAULT_MODEL, fake_converter)
    resolved = resolve_model(DEFAULT_MODEL, cache_dir=tmp_path, progress=messages.append)
    assert messages == ["converting (fake)"]
    assert (Path(resolved.path) / MARKER).is_file()
    assert not list(models_dir.glob(".*.tmp-*"))


def test_alias_uses_default_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALTUNE_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setitem(engine_models._CONVERTERS, DEFAULT_MODEL, fake_converter)
    resolved = resolve_model(DEFAULT_MODEL)
    assert resolved.path == str(tmp_path / "env-cache" / "models" / DEFAULT_MODEL)


def test_two_processes_convert_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """flock locks belong to an open file, so two threads stand in for two processes."""
    calls: list[str] = []

    def slow_converter(out: Path, progress: Callable[[str], None]) -> None:
        calls.append("convert")
        time.sleep(0.3)
        fake_converter(out, progress)

    monkeypatch.setitem(engine_models._CONVERTERS, DEFAULT_MODEL, slow_converter)
    messages: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(resolve_model, DEFAULT_MODEL, cache_dir=tmp_path, progress=messages.append)
            for _ in range(2)
        ]
        paths = {future.result().path for future in futures}
    assert calls == ["convert"]
    assert len(paths) == 1
    assert any(message.startswith("waiting for another process") for message in messages)


def test_shared_tiny_model_passes_the_checks(tiny_model_dir: Path) -> None:
    resolved = resolve_model(str(tiny_model_dir))
    assert resolved.source == "local"
    tokenizer = load_tokenizer(resolved.path)  # Gemma-shaped: the bos rule applies
    assert tokenizer.encode("hello")[0] == tokenizer.bos_token_id
