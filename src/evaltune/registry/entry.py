"""What the registry records about a checkpoint, gathered from its run folder.

``describe_round`` reads a finished run's files (``config.yaml``, ``state.json``,
``summary.json``, ``rounds/<k>/plan.json``) and the data files the config names, and returns
the record ``Registry.register`` stores: base model, backend, LoRA settings, the
hyperparameters of every round up to this one, a data summary (each file with its sha256 and
record count, the run's counts, the pool and generated examples trained on), every eval result
(suite, metric, value with its interval, sampling settings, suite hash), the checkpoint paths
(resumable state, sampler weights, PEFT folder) and the lineage (run, round, parent model).

It reads plain files only (JSON and YAML), so it works on any run folder, also one copied from
another machine; the run folder's layout is the one ``tracking.RunDir`` writes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from evaltune.errors import ConfigError

__all__ = ["default_name", "describe_round", "file_facts"]


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def default_name(config: dict[str, Any]) -> str:
    """The registered name of a run's models: ``tracking.registry.name``, else
    ``output.run_name``, else the first training file's name (as the run id is made)."""
    named = ((config.get("tracking") or {}).get("registry") or {}).get("name")
    if named:
        return str(named)
    train = (config.get("data") or {}).get("train") or ["model"]
    first = train[0] if isinstance(train, list | tuple) else train
    raw = (config.get("output") or {}).get("run_name") or Path(str(first)).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(raw)).strip("-._")[:100] or "model"


def file_facts(path: str, role: str) -> dict[str, Any]:
    """A data file as the registry records it: path, role, sha256, bytes, non-empty lines."""
    p = Path(path)
    if not p.is_file():
        return {"role": role, "path": path, "sha256": None, "missing": True}
    digest, lines, size = hashlib.sha256(), 0, 0
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
            lines += sum(1 for line in chunk.split(b"\n") if line.strip())
    return {"role": role, "path": path, "sha256": digest.hexdigest(), "bytes": size, "lines": lines}


def _data(config: dict[str, Any], summary: dict[str, Any], rounds: list[dict[str, Any]]) -> Any:
    files = []
    data = config.get("data") or {}
    for role in ("train", "validation", "pool"):
        paths = data.get(role) or []
        for path in [paths] if isinstance(paths, str) else paths:
            files.append(file_facts(str(path), role))
    added = [item for rd in rounds for item in ((rd.get("selection") or {}).get("added") or [])]
    return {
        "files": files,
        "counts": summary.get("data") or {},
        "selected": [a["id"] for a in added if not a.get("generated")],
        "generated": [a["id"] for a in added if a.get("generated")],
        "notes": summary.get("notes") or [],
    }


def _evals(record: dict[str, Any], rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    by_name = {r["name"]: r for r in rules}
    for suite, ev in (record.get("evals") or {}).items():
        rule = by_name.get(suite, {"metric": "accuracy", "role": "target", "threshold": None})
        metric, metrics = rule["metric"], ev.get("metrics") or {}
        out.append(
            {
                "suite": suite,
                "role": rule["role"],
                "metric": metric,
                "value": metrics.get(metric),
                "ci_low": metrics.get(f"{metric}_ci_low"),
                "ci_high": metrics.get(f"{metric}_ci_high"),
                "n": metrics.get("n"),
                "threshold": rule.get("threshold"),
                "metrics": metrics,
                "per_tag": ev.get("per_tag") or {},
                "sampling": ev.get("sampling") or {},
                "suite_hash": ev.get("suite_hash"),
                "model_path": ev.get("model_path"),
                "created_at": ev.get("created_at"),
            }
        )
    return out


def _hyperparameters(run: Path, rounds: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    out = []
    for rd in rounds:
        if not 0 < rd["round"] <= k:
            continue
        plan_path = run / "rounds" / str(rd["round"]) / "plan.json"
        plan = _read_json(plan_path) if plan_path.is_file() else {}
        train = rd.get("train") or {}
        out.append(
            {
                "round": rd["round"],
                "lr": rd.get("lr"),
                "steps": rd.get("steps"),
                "rank": rd.get("rank"),
                **{key: plan.get(key) for key in ("batch_size", "grad_accum", "seed")},
                "train_examples": plan.get("train_examples"),
                "restart_from": plan.get("restart_from"),
                "final_loss": train.get("final_loss"),
                "tokens": train.get("tokens"),
            }
        )
    return out


def describe_round(
    run_path: Path, k: int | None = None, *, target_score: float | None = None
) -> dict[str, Any]:
    """The registry record of round ``k`` of the run at ``run_path`` (default: its best
    round). The run must have finished (``summary.json`` holds its suites' rules)."""
    run = Path(run_path)
    summary_path = run / "summary.json"
    if not (run / "state.json").is_file():
        raise ConfigError(f"{run} is not an evaltune run folder (no state.json)")
    if not summary_path.is_file():
        raise ConfigError(
            f"{run} has not finished (no summary.json); finish it with evaltune resume {run}, "
            "then register it"
        )
    summary = _read_json(summary_path)
    state = _read_json(run / "state.json")
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    best = summary.get("best") or {}
    k = best.get("round") if k is None else k
    rounds = state.get("rounds") or summary.get("rounds") or []
    record = next((r for r in rounds if r["round"] == k), None) if k is not None else None
    trained = [r["round"] for r in rounds if r["round"] > 0 and r.get("checkpoint")]
    if record is None or not record.get("checkpoint") or not record.get("evals"):
        raise ConfigError(
            f"{run}: round {k} has no evaluated checkpoint; registrable rounds: "
            + (", ".join(map(str, trained)) or "none (the run trained no round)")
        )
    ckpt = record["checkpoint"]
    lora = dict(config.get("lora") or {})
    lora["rank"] = record.get("rank") or lora.get("rank")
    return {
        "base_model": summary.get("base_model") or config.get("base_model"),
        "backend": summary.get("backend") or config.get("backend", "local"),
        "lora": lora,
        "training": config.get("training") or {},
        "hyperparameters": _hyperparameters(run, rounds, k),
        "data": _data(config, summary, [r for r in rounds if r["round"] < k]),
        "evals": _evals(record, summary.get("suites") or []),
        "checkpoint": {
            "state": ckpt.get("state"),
            "sampler": ckpt.get("sampler"),
            "peft_folder": ckpt.get("sampler_folder"),
        },
        "lineage": {
            "run_id": summary.get("run_id") or run.name,
            "run_path": str(run.resolve()),
            "round": k,
            "parent_model": summary.get("base_model") or config.get("base_model"),
        },
        "evidence": {
            "best_round": best.get("round") == k,
            "targets_met": bool(record.get("targets_met")),
            "guards_hold": bool(record.get("guards_hold", True)),
            "target_score": target_score,
            "val_nll": record.get("val_nll"),
            "run_status": summary.get("status"),
            "stop_reason": summary.get("stop_reason"),
        },
        "reports": {
            name: str(run.resolve() / name)
            for name in ("report.md", "report.html", "EXPERIMENT.md", "summary.json")
        },
    }
