"""What ``evaltune export`` exports: a run folder (its best round, or ``round``), a
``tinker://`` checkpoint path of a run, or a PEFT adapter folder, resolved to one adapter folder
with what the run knows about it: base model, round, eval scores, the renderer it trained with,
and its eval prompts (the self-check runs on them). Every bad input is one ``ConfigError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from evaltune.data import Message, load_examples
from evaltune.errors import ConfigError, DataError
from evaltune.tracking import RunDir

__all__ = ["FIXED_PROMPTS", "ExportSource", "describe", "resolve_source"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
CHECKPOINT_META = "evaltune_checkpoint.json"  # the engine's; read here only for base_model
# Prompts for the self-check when the source is a bare adapter folder with no run around it.
FIXED_PROMPTS = (
    "What is the capital of France?",
    "What is two plus two?",
    "Name a colour of the sky.",
    "Say hello.",
    "What is the opposite of hot?",
    "Write one word about the weather.",
)


@dataclass(frozen=True)
class ExportSource:
    """One adapter folder and what is known about it."""

    adapter: Path
    base_model: str
    kind: str  # "run", "checkpoint" or "adapter": what SOURCE was
    renderer: str = "auto"
    run_id: str | None = None
    run_dir: Path | None = None
    round: int | None = None
    checkpoint: str | None = None  # the tinker:// sampler path, when known
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: tuple[tuple[Message, ...], ...] = ()
    prompt_source: str = "fixed"  # where the prompts came from, for the manifest


def resolve_source(
    source: str, base_model: str | None = None, round_: int | None = None
) -> ExportSource:
    """``source`` (run folder, ``tinker://`` path or adapter folder) as an `ExportSource`."""
    if source.startswith("tinker://"):
        return _from_checkpoint(source, base_model)
    path = Path(source).expanduser()
    if not path.exists():
        raise ConfigError(
            f"export source {source} does not exist; give a run folder (runs/<id>), a "
            "tinker:// checkpoint path, or a PEFT adapter folder"
        )
    if (path / "summary.json").is_file() or (path / "state.json").is_file():
        return _from_run(path, base_model, round_)
    if all((path / name).is_file() for name in ADAPTER_FILES):
        if round_ is not None:
            raise ConfigError("--round needs a run folder as SOURCE, not an adapter folder")
        return _from_adapter(path, base_model)
    raise ConfigError(
        f"{path} is neither a run folder (summary.json) nor a PEFT adapter folder "
        f"({' + '.join(ADAPTER_FILES)}); give runs/<id>, a tinker:// path, or an adapter folder"
    )


def _from_run(path: Path, base_model: str | None, round_: int | None) -> ExportSource:
    run = RunDir(path)
    if not (path / "summary.json").is_file():
        raise ConfigError(
            f"run {path} has no summary.json yet (still running, or stopped early); finish it "
            "with `evaltune resume` first, or export one checkpoint folder under "
            f"{run.checkpoints}"
        )
    summary = run.read_json("summary.json")
    rounds = {r["round"]: r for r in summary.get("rounds", [])}
    if round_ is None:
        best = summary.get("best") or {}
        if not best.get("checkpoint"):
            raise ConfigError(
                f"run {run.run_id} has no trained best round (the baseline won or nothing "
                f"was trained); pick one with --round (trained: {_trained(rounds)})"
            )
        round_, checkpoint, evals = best["round"], best["checkpoint"], best.get("evals", {})
    else:
        record = rounds.get(round_) or {}
        if not record.get("checkpoint"):
            raise ConfigError(
                f"run {run.run_id} has no checkpoint for round {round_}; trained rounds: "
                f"{_trained(rounds)}"
            )
        checkpoint, evals = record["checkpoint"], record.get("evals", {})
    adapter = _checkpoint_folder(checkpoint, run)
    config = _run_config(path)
    prompts, where = _run_prompts(config, path, round_)
    return ExportSource(
        adapter=adapter,
        base_model=base_model or _base_of(adapter) or summary.get("base_model") or "",
        kind="run",
        renderer=str((config.get("data") or {}).get("renderer") or "auto"),
        run_id=run.run_id,
        run_dir=path.resolve(),
        round=round_,
        checkpoint=checkpoint.get("sampler"),
        scores={name: dict(v.get("metrics", {})) for name, v in evals.items()},
        prompts=prompts,
        prompt_source=where,
    )


def _trained(rounds: dict[int, Any]) -> str:
    done = [str(k) for k, r in sorted(rounds.items()) if r.get("checkpoint")]
    return ", ".join(done) or "none"


def _checkpoint_folder(checkpoint: dict[str, Any], run: RunDir) -> Path:
    from evaltune.bridge import CheckpointError, CheckpointStore

    folder = checkpoint.get("sampler_folder")
    if folder and Path(folder).is_dir():
        return Path(folder)
    try:
        return CheckpointStore(run.checkpoints).folder(str(checkpoint.get("sampler")))
    except CheckpointError as exc:
        raise ConfigError(
            f"run {run.run_id}'s checkpoint is not on this machine ({exc}); a run on the "
            "Tinker service keeps its weights there: download them, then export the folder"
        ) from exc


def _from_checkpoint(uri: str, base_model: str | None) -> ExportSource:
    from evaltune.backends.local import checkpoint_folder, run_checkpoint_dir
    from evaltune.bridge import CheckpointError

    try:
        folder = checkpoint_folder(uri, run_checkpoint_dir(uri))
    except CheckpointError as exc:
        raise ConfigError(f"{exc}; run export from the workspace that holds runs/") from exc
    found = _from_adapter(folder, base_model)
    run = _enclosing_run(folder)
    if run is None:
        return replace(found, kind="checkpoint", checkpoint=uri)
    return _with_run(found, run, uri)


def _from_adapter(folder: Path, base_model: str | None) -> ExportSource:
    base = base_model or _base_of(folder)
    if not base:
        raise ConfigError(
            f"adapter {folder} does not name its base model (no {CHECKPOINT_META} and no "
            "base_model_name_or_path in adapter_config.json); pass --base-model"
        )
    found = ExportSource(
        adapter=folder,
        base_model=base,
        kind="adapter",
        prompts=tuple((Message("user", p),) for p in FIXED_PROMPTS),
    )
    run = _enclosing_run(folder)
    return found if run is None else _with_run(found, run, None)


def _with_run(found: ExportSource, run_dir: Path, uri: str | None) -> ExportSource:
    """An adapter inside a run's checkpoints/: take the run's renderer, round and prompts."""
    config = _run_config(run_dir)
    name = found.adapter.name
    round_ = int(name.removeprefix("round-")) if name.removeprefix("round-").isdigit() else None
    prompts, where = _run_prompts(config, run_dir, round_)
    scores: dict[str, dict[str, Any]] = {}
    if (run_dir / "summary.json").is_file() and round_ is not None:
        rounds = {r["round"]: r for r in RunDir(run_dir).read_json("summary.json")["rounds"]}
        evals = (rounds.get(round_) or {}).get("evals", {})
        scores = {k: dict(v.get("metrics", {})) for k, v in evals.items()}
    return ExportSource(
        adapter=found.adapter,
        base_model=found.base_model,
        kind=found.kind if uri is None else "checkpoint",
        renderer=str((config.get("data") or {}).get("renderer") or "auto"),
        run_id=run_dir.name,
        run_dir=run_dir.resolve(),
        round=round_,
        checkpoint=uri,
        scores=scores,
        prompts=prompts or found.prompts,
        prompt_source=where if prompts else found.prompt_source,
    )


def _enclosing_run(folder: Path) -> Path | None:
    for parent in folder.resolve().parents:
        if parent.name == "checkpoints" and (parent.parent / "config.yaml").is_file():
            return parent.parent
    return None


def _base_of(adapter: Path) -> str | None:
    try:
        meta = json.loads((adapter / CHECKPOINT_META).read_text())
        if meta.get("base_model"):
            return str(meta["base_model"])
    except (OSError, ValueError):
        pass
    try:
        config = json.loads((adapter / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{adapter}/adapter_config.json is not readable JSON: {exc}") from exc
    return config.get("base_model_name_or_path") or None


def _run_config(run_dir: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def _run_prompts(
    config: dict[str, Any], run_dir: Path, round_: int | None
) -> tuple[tuple[tuple[Message, ...], ...], str]:
    """The run's eval prompts: its eval files' prompt messages, else the prompts its eval
    records of ``round_`` show (single user turns); empty when neither is readable."""
    prompts: list[tuple[Message, ...]] = []
    files = [e["file"] for e in config.get("evals") or [] if isinstance(e, dict) and e.get("file")]
    for file in files:
        try:
            prompts += [ex.prompt_messages for ex in load_examples(file)]
        except (DataError, OSError):
            continue
    if prompts:
        return tuple(prompts), ", ".join(str(f) for f in files)
    records = sorted((run_dir / "rounds" / str(round_ or 0) / "eval").glob("*.jsonl"))
    for path in records:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("type") == "sample" and isinstance(record.get("prompt"), str):
                prompts.append((Message("user", record["prompt"]),))
    return tuple(prompts), ", ".join(str(p) for p in records)


def describe(source: ExportSource) -> str:
    """One line for the console: what is being exported."""
    if source.run_id:
        where = f"run {source.run_id}" + (f", round {source.round}" if source.round else "")
        return f"{where} ({source.adapter})"
    return str(source.adapter)


def run_adapters(workspace: Path) -> dict[str, Path]:
    """The adapters of the finished runs under ``workspace/runs``, by name: ``<run-id>`` is a
    run's best round, ``<run-id>/round-<k>`` each trained round (``evaltune serve --runs``).
    Runs without a summary, or whose weights are not on this machine, are left out."""
    found: dict[str, Path] = {}
    for path in sorted((workspace / "runs").glob("*/summary.json")):
        run = RunDir(path.parent)
        try:
            summary = run.read_json("summary.json")
            for record in summary.get("rounds", []):
                if record.get("checkpoint"):
                    adapter = _checkpoint_folder(record["checkpoint"], run)
                    found[f"{run.run_id}/round-{record['round']}"] = adapter
            best = (summary.get("best") or {}).get("round")
            if f"{run.run_id}/round-{best}" in found:
                found[run.run_id] = found[f"{run.run_id}/round-{best}"]
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            continue  # a run being written, or one trained elsewhere: not servable here
    return found
