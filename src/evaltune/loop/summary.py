"""What a run leaves for people: per-round analysis, ``summary.json`` and ``report.md``.

The analysis compares each suite's per-tag accuracy with the previous round and with the
baseline; the summary gathers rounds, decisions, the stop reason and the best checkpoint with
its evidence; the report renders the same as Markdown tables a person can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaltune.config import RunConfig
from evaltune.loop.decide import SuiteRule, target_score
from evaltune.tracking import RunDir

__all__ = ["analyse_round", "render_report", "write_summary"]

Round = dict[str, Any]


def _tag_acc(round_: Round | None, suite: str) -> dict[str, float]:
    if not round_:
        return {}
    per_tag = round_.get("evals", {}).get(suite, {}).get("per_tag", {})
    return {tag: float(v["accuracy"]) for tag, v in per_tag.items()}


def analyse_round(rounds: Sequence[Round], rules: Sequence[SuiteRule]) -> dict[str, Any]:
    """Per suite and tag: accuracy now, change vs the previous round and vs the baseline,
    and the weakest tags (lowest accuracy first)."""
    last = rounds[-1]
    prev = rounds[-2] if len(rounds) > 1 else None
    base = rounds[0] if rounds[0]["round"] == 0 else None
    out: dict[str, Any] = {"round": last["round"], "suites": {}}
    for rule in rules:
        now = _tag_acc(last, rule.name)
        before, baseline = _tag_acc(prev, rule.name), _tag_acc(base, rule.name)
        tags = {
            tag: {
                "accuracy": acc,
                "vs_previous": None if tag not in before else round(acc - before[tag], 4),
                "vs_baseline": None if tag not in baseline else round(acc - baseline[tag], 4),
            }
            for tag, acc in sorted(now.items())
        }
        weakest = sorted(now, key=lambda t: (now[t], t))[:3]
        out["suites"][rule.name] = {"tags": tags, "weakest_tags": weakest}
    return out


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"
    return str(x)


def render_report(summary: dict[str, Any]) -> str:
    rules = [SuiteRule(**r) for r in summary["suites"]]
    lines = [
        f"# evaltune run {summary['run_id']}",
        "",
        f"- base model: `{summary['base_model']}` · backend: {summary['backend']}",
        f"- stop reason: **{summary['stop_reason']}** after {summary['rounds_trained']} "
        f"training round(s)",
    ]
    best = summary.get("best")
    if best:
        lines.append(
            f"- best checkpoint: round {best['round']} — `{best['checkpoint']['sampler']}`"
            f" (state: `{best['checkpoint']['state']}`)"
        )
    for note in summary.get("notes", []):
        lines.append(f"- data: {note}")
    lines += ["", "## Rounds", ""]
    head = ["round", "lr", "steps", "train loss"]
    for r in rules:
        goal = f" (≥ {r.threshold})" if r.role == "target" and r.threshold is not None else ""
        head.append(f"{r.name} {r.metric}{goal}")
    head += ["val NLL", "decision"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rd in summary["rounds"]:
        train = rd.get("train") or {}
        row = [
            "baseline" if rd["round"] == 0 else str(rd["round"]),
            "–" if rd.get("lr") is None else f"{rd['lr']:.3g}",
            _fmt(train.get("steps")),
            _fmt(train.get("final_loss")),
        ]
        for r in rules:
            metrics = rd.get("evals", {}).get(r.name, {}).get("metrics", {})
            value, lo, hi = (
                metrics.get(r.metric),
                metrics.get(f"{r.metric}_ci_low"),
                metrics.get(f"{r.metric}_ci_high"),
            )
            ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            row.append(_fmt(value) + ci)
        decision = rd.get("decision") or {}
        row += [_fmt(rd.get("val_nll")), decision.get("reason", "–")]
        lines.append("| " + " | ".join(row) + " |")
    for r in rules:
        tags = sorted({t for rd in summary["rounds"] for t in _tag_acc(rd, r.name)})
        if not tags:
            continue
        lines += ["", f"## Per-tag accuracy: {r.name}", ""]
        cols = [
            "baseline" if rd["round"] == 0 else f"round {rd['round']}" for rd in summary["rounds"]
        ]
        lines += ["| tag | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for tag in tags:
            vals = [_fmt(_tag_acc(rd, r.name).get(tag)) for rd in summary["rounds"]]
            lines.append(f"| {tag} | " + " | ".join(vals) + " |")
    lines += ["", "## Decisions", ""]
    for rd in summary["rounds"]:
        if rd.get("decision"):
            lines.append(
                f"- round {rd['round']}: {rd['decision']['reason']} — "
                f"{rd['decision'].get('note', '')}"
            )
    return "\n".join(lines) + "\n"


def write_summary(run: RunDir, cfg: RunConfig, state: dict[str, Any], ctx: Any) -> dict[str, Any]:
    rounds = state["rounds"]
    rules = ctx.rules
    best = next((r for r in rounds if r["round"] == state.get("best_round")), None)
    summary = {
        "run_id": run.run_id,
        "base_model": cfg.base_model,
        "backend": cfg.backend,
        "status": state["status"],
        "stop_reason": state["stop_reason"],
        "rounds_trained": sum(1 for r in rounds if r["round"] > 0),
        "suites": [r.__dict__ for r in rules],
        "rounds": rounds,
        "best": None
        if best is None
        else {
            "round": best["round"],
            "checkpoint": best["checkpoint"],
            "evals": best["evals"],
            "target_score": target_score(best, rules),
            "targets_met": best.get("targets_met"),
            "val_nll": best.get("val_nll"),
        },
        "notes": ctx.notes,
        "data": ctx.stats,
        "seconds": round((state.get("finished_at") or 0) - state["started_at"], 1),
    }
    run.write_json("summary.json", summary)
    run.write_text("report.md", render_report(summary))
    return summary
