"""The registry as a Markdown document a person reads or commits (``evaltune registry export``).

One section per registered name: which model is in production, then each model with its
status, lineage, evidence (every eval with its interval and suite hash), hyperparameters, data
(files with their sha256) and checkpoint paths, and every status change with who, when and why.
Also one line per model for ``evaltune registry list`` (``model_line``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaltune.registry.store import StatusChange

__all__ = ["eval_line", "render_registry"]


def _num(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def eval_line(ev: dict[str, Any]) -> str:
    """``qa accuracy 0.750 [0.41, 0.93] (n=8, target ≥ 0.7)``."""
    ci = ""
    if ev.get("ci_low") is not None and ev.get("ci_high") is not None:
        ci = f" [{ev['ci_low']:.2f}, {ev['ci_high']:.2f}]"
    goal = f", {ev['role']} ≥ {ev['threshold']}" if ev.get("threshold") is not None else ""
    goal = goal or f", {ev['role']}"
    n = ev.get("n")
    return f"{ev['suite']} {ev['metric']} {_num(ev.get('value'))}{ci} (n={_num(n, 0)}{goal})"


def _model_section(model: dict[str, Any], changes: Sequence[StatusChange]) -> list[str]:
    rec = model["record"]
    lin, ckpt, data = rec["lineage"], rec["checkpoint"], rec["data"]
    lines = [
        "",
        f"### {model['id']} — {model['status']}",
        "",
        f"- registered {model['created_at']}; base model `{rec['base_model']}` on "
        f"{rec['backend']}; parent `{lin['parent_model']}`",
        f"- lineage: run `{lin['run_id']}`, round {lin['round']} (`{lin['run_path']}`)",
        f"- guards held: {'yes' if model['guards_hold'] else '**no**'}; targets met: "
        f"{'yes' if model['targets_met'] else 'no'}; target score "
        f"{_num(model.get('target_score'))}",
        "- LoRA: " + ", ".join(f"{k} {v}" for k, v in rec["lora"].items()),
        f"- checkpoint: sampler `{ckpt['sampler']}`; state `{ckpt['state']}`"
        + (f"; PEFT folder `{ckpt['peft_folder']}`" if ckpt.get("peft_folder") else ""),
        "",
        "| suite | role | metric | value | 95 % interval | n | sampling | suite hash |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ev in rec["evals"]:
        ci = (
            f"[{ev['ci_low']:.3f}, {ev['ci_high']:.3f}]"
            if ev.get("ci_low") is not None and ev.get("ci_high") is not None
            else "–"
        )
        sampling = ", ".join(f"{k}={v}" for k, v in (ev.get("sampling") or {}).items()) or "–"
        lines.append(
            f"| {ev['suite']} | {ev['role']} | {ev['metric']} | {_num(ev.get('value'))} | {ci} "
            f"| {_num(ev.get('n'), 0)} | {sampling} | `{(ev.get('suite_hash') or '–')[:12]}` |"
        )
    lines += ["", "| round | lr | steps | rank | batch | examples | final loss |"]
    lines.append("|---|---|---|---|---|---|---|")
    for hp in rec["hyperparameters"]:
        lr = "–" if hp.get("lr") is None else f"{hp['lr']:.3g}"
        lines.append(
            f"| {hp['round']} | {lr} | {_num(hp.get('steps'))} | {_num(hp.get('rank'))} "
            f"| {_num(hp.get('batch_size'))} | {_num(hp.get('train_examples'))} "
            f"| {_num(hp.get('final_loss'))} |"
        )
    lines += ["", "Data:"]
    for f in data["files"]:
        digest = (
            f"sha256 `{f['sha256'][:16]}…`, {f['lines']} lines" if f.get("sha256") else "missing"
        )
        lines.append(f"- {f['role']}: `{f['path']}` ({digest})")
    lines.append(
        f"- added from the pool: {len(data['selected'])}; generated: {len(data['generated'])}"
    )
    lines += ["", "Status history:", ""]
    for c in changes:
        lines.append(f"- {c.at} · {c.from_status or '(new)'} → {c.to_status} by {c.who}: {c.why}")
    return lines


def render_registry(
    models: Sequence[dict[str, Any]], history: Sequence[StatusChange], where: str
) -> str:
    """The whole registry (``Registry.list()`` and ``Registry.history()``) as Markdown."""
    lines = [
        "# Model registry",
        "",
        f"Exported from `{where}` by `evaltune registry export`. Statuses: candidate → staging "
        "→ production → retired; one production model per name.",
    ]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for m in models:
        by_name.setdefault(m["name"], []).append(m)
    if not by_name:
        lines += ["", "The registry is empty."]
    for name, group in sorted(by_name.items()):
        group = sorted(group, key=lambda m: -m["version"])
        prod = [m["id"] for m in group if m["status"] == "production"]
        lines += [
            "",
            f"## {name}",
            "",
            f"Production: {prod[0] if prod else 'none'} · {len(group)} version(s)",
            "",
            "| id | status | run | round | target score | guards held | evidence |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in group:
            lin = m["record"]["lineage"]
            evidence = "; ".join(eval_line(ev) for ev in m["record"]["evals"])
            lines.append(
                f"| {m['id']} | {m['status']} | {lin['run_id']} | {lin['round']} | "
                f"{_num(m.get('target_score'))} | {'yes' if m['guards_hold'] else 'no'} | "
                f"{evidence} |"
            )
        for m in group:
            lines += _model_section(m, [c for c in history if c.model_id == m["id"]])
    return "\n".join(lines) + "\n"
