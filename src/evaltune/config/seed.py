"""The seed format: tinker-eval-loop's flat ``eval_loop_config.json``, mapped onto ``RunConfig``.

A config is in the seed format when its top level has ``train_file`` or ``eval_tasks``. Mapping
is pure data → data; keys the seed format does not set keep ``RunConfig``'s defaults (so
``backend`` is ``local``: pass ``backend=tinker`` as an override to train on Tinker). The mapping
records where each produced value came from (``provenance``), so a validation error names the
seed key and its line, not a key the user never wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from evaltune.config.schema import did_you_mean

__all__ = ["SEED_KEYS", "SeedMapping", "is_seed_format", "map_renderer", "map_seed"]

Loc = tuple[str | int, ...]

# seed key -> where it lands in RunConfig (the docs' mapping table is generated from this)
SEED_KEYS: dict[str, str] = {
    "base_model": "base_model",
    "train_file": "data.train",
    "eval_tasks": "evals",
    "renderer_name": "data.renderer",
    "learning_rate": "training.learning_rate",
    "steps_per_round": "training.steps_per_round",
    "batch_size": "training.batch_size",
    "eval_threshold": "evals.N.threshold",
    "max_rounds": "loop.max_rounds",
    "lr_decay": "loop.lr_decay",
    "max_seq_length": "data.max_seq_len",
    "lora_rank": "lora.rank",
    "evalops_enabled": "tracking.http.enabled",
    "evalops_url": "tracking.http.url",
    "evalops_api_key_env": "tracking.http.api_key_env",
    "evalops_test_suite_id": "tracking.http.suite_id",
    "evalops_*": "extras",
}

_SIMPLE: dict[str, Loc] = {
    "base_model": ("base_model",),
    "train_file": ("data", "train"),
    "learning_rate": ("training", "learning_rate"),
    "steps_per_round": ("training", "steps_per_round"),
    "batch_size": ("training", "batch_size"),
    "max_rounds": ("loop", "max_rounds"),
    "lr_decay": ("loop", "lr_decay"),
    "max_seq_length": ("data", "max_seq_len"),
    "lora_rank": ("lora", "rank"),
    # the EvalOps submission keys drive the HTTP sink; other evalops_* keys stay in extras
    "evalops_enabled": ("tracking", "http", "enabled"),
    "evalops_url": ("tracking", "http", "url"),
    "evalops_api_key_env": ("tracking", "http", "api_key_env"),
    "evalops_test_suite_id": ("tracking", "http", "suite_id"),
}

# tinker-cookbook renderer names that are chat formats (matched as prefixes)
_CHAT_RENDERERS = ("llama", "qwen", "gemma", "deepseek", "gpt_oss", "kimi", "mistral", "phi")


@dataclass
class SeedMapping:
    data: dict[str, Any]
    provenance: dict[Loc, Loc] = field(default_factory=dict)  # RunConfig loc -> seed loc
    errors: list[tuple[Loc, str]] = field(default_factory=list)  # (seed loc, message)


def is_seed_format(data: object) -> bool:
    return isinstance(data, dict) and ("train_file" in data or "eval_tasks" in data)


def map_renderer(name: str) -> str | None:
    """A tinker-cookbook renderer name → an evaltune renderer; None when unknown."""
    lowered = name.lower()
    if lowered in ("auto", "default"):
        return "auto"
    if lowered in ("chat_template", "role_colon", "plain"):
        return lowered
    if lowered.startswith(_CHAT_RENDERERS) or "chat" in lowered:
        return "chat_template"
    return None


def map_seed(seed: dict[str, Any]) -> SeedMapping:
    out = SeedMapping(data={})
    for key, value in seed.items():
        if key in _SIMPLE:
            _put(out.data, _SIMPLE[key], value)
            out.provenance[_SIMPLE[key]] = (key,)
        elif isinstance(key, str) and key.startswith("evalops_"):
            out.data.setdefault("extras", {})[key] = value
            out.provenance[("extras", key)] = (key,)
        elif key == "renderer_name":
            _map_renderer_key(value, out)
        elif key not in ("eval_tasks", "eval_threshold"):
            close = did_you_mean(key, [k for k in SEED_KEYS if k != "evalops_*"])
            hint = (
                f"did you mean {close!r}?" if close else "expected one of: " + ", ".join(SEED_KEYS)
            )
            if "api_key" in str(key):
                hint = "never put a key in a config; set the TINKER_API_KEY environment variable"
            out.errors.append(((key,), f"unknown field of the seed format; {hint}"))
    for key, target in (("train_file", ("data",)), ("eval_tasks", ("evals",))):
        if key not in seed:
            out.errors.append(((key,), f"required field missing; it maps to {SEED_KEYS[key]}"))
            out.provenance[target] = (key,)
    if "eval_tasks" in seed:
        _map_tasks(seed["eval_tasks"], seed.get("eval_threshold"), "eval_threshold" in seed, out)
    return out


def _map_renderer_key(value: Any, out: SeedMapping) -> None:
    mapped = map_renderer(value) if isinstance(value, str) else None
    if mapped is None:
        found = f"{value!r}" if isinstance(value, str) else f"a {type(value).__name__}"
        out.errors.append(
            (
                ("renderer_name",),
                "expected role_colon, plain, auto, or a chat renderer name such as llama3, "
                f"qwen3, gemma3; found {found}",
            )
        )
        return
    _put(out.data, ("data", "renderer"), mapped)
    out.provenance[("data", "renderer")] = ("renderer_name",)


def _map_tasks(tasks: Any, threshold: Any, has_threshold: bool, out: SeedMapping) -> None:
    if not isinstance(tasks, list):
        out.errors.append(
            (
                ("eval_tasks",),
                "expected a list of task names or {name, file, threshold, grader} objects; "
                f"found a {type(tasks).__name__}",
            )
        )
        return
    suites: list[Any] = []
    out.provenance[("evals",)] = ("eval_tasks",)
    for i, task in enumerate(tasks):
        src: Loc = ("eval_tasks", i)
        dst: Loc = ("evals", len(suites))  # differs from i after a skipped bad item
        if isinstance(task, str):
            # "inspect_evals/ifeval" -> suite "ifeval", file "inspect_evals/ifeval.jsonl"
            name = re.sub(r"[^A-Za-z0-9_-]", "_", task.rstrip("/").rsplit("/", 1)[-1]) or "task"
            suite: dict[str, Any] = {"name": name, "file": f"{task}.jsonl"}
            out.provenance[(*dst, "name")] = out.provenance[(*dst, "file")] = src
        elif isinstance(task, dict):
            suite = dict(task)
            if "path" in suite:
                if "file" in suite:
                    out.errors.append(((*src, "path"), "give `file` or `path`, not both"))
                suite["file"] = suite.pop("path")
                out.provenance[(*dst, "file")] = (*src, "path")
        else:
            out.errors.append(
                (src, f"expected a task name or a {{name, file}} object; found {task!r}")
            )
            continue
        out.provenance[dst] = src
        if has_threshold and suite.get("role", "target") == "target" and "threshold" not in suite:
            suite["threshold"] = threshold
            out.provenance[(*dst, "threshold")] = ("eval_threshold",)
        suites.append(suite)
    out.data["evals"] = suites


def _put(data: dict[str, Any], loc: Loc, value: Any) -> None:
    for part in loc[:-1]:
        data = data.setdefault(part, {})
    data[loc[-1]] = value
