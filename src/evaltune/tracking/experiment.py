"""``EXPERIMENT.md``: the run written up as an experiment README.

Where ``report.md`` is the loop's full record, this is the page a person files with the result:
date, base model, data, method, hyperparameters, results (baseline against the best round,
with intervals), and findings: which tags stalled, which rounds regressed or broke a guard, and
what each intervention (the decision after a round: new data, a lower learning rate, a
rollback) did to the target score in the round that followed it. Input: ``summary.json`` and
the run's resolved config, as plain data, and the loop's target score of a round.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

Score = Callable[[dict[str, Any]], float | None]

__all__ = ["render_experiment"]


def _num(x: Any) -> str:
    return "–" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _cell(rd: dict[str, Any] | None, rule: dict[str, Any]) -> str:
    m = (((rd or {}).get("evals") or {}).get(rule["name"]) or {}).get("metrics") or {}
    v, lo, hi = (
        m.get(rule["metric"]),
        m.get(f"{rule['metric']}_ci_low"),
        m.get(f"{rule['metric']}_ci_high"),
    )
    return _num(v) + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "")


def _interventions(rounds: Sequence[dict[str, Any]], score: Score) -> list[str]:
    out = []
    for before, after in itertools.pairwise(rounds):
        decision = before.get("decision") or {}
        if decision.get("stop"):
            continue
        a, b = score(before), score(after)
        change = (
            "not measured"
            if a is None or b is None
            else f"target score {a:.3f} → {b:.3f} ({b - a:+.3f})"
        )
        label = "after the baseline" if before["round"] == 0 else f"after round {before['round']}"
        verdict = (after.get("vs_best") or {}).get("verdict")
        noise = {
            "better": "; a real gain (paired test)",
            "worse": "; a real drop (paired test)",
            "same": "; within noise (paired test)",
        }.get(verdict or "", "")
        out.append(
            f"- {label}: {decision.get('note') or 'train the next round'} → round "
            f"{after['round']}: {change}{noise}"
        )
    return out


def _findings(summary: dict[str, Any]) -> list[str]:
    rounds = summary["rounds"]
    stalled = summary.get("stalled") or []
    lines = [
        f"- Stalled tags: {', '.join(stalled)} (more examples of the same kind did not move them)."
        if stalled
        else "- No tag stalled."
    ]
    broken = [rd["round"] for rd in rounds if rd["round"] > 0 and rd.get("guards_hold") is False]
    worse = [rd["round"] for rd in rounds if (rd.get("vs_best") or {}).get("verdict") == "worse"]
    lines.append(
        f"- Guards broken in round(s): {', '.join(map(str, broken))}."
        if broken
        else "- No round broke a guard."
    )
    lines.append(
        f"- Significant regressions against the best earlier round in round(s): "
        f"{', '.join(map(str, worse))}."
        if worse
        else "- No round regressed significantly against the best earlier round."
    )
    best = summary.get("best")
    if best:
        met = "were met" if best.get("targets_met") else "were not met"
        lines.append(f"- The targets {met}; the best round is {best['round']}.")
    return lines


def render_experiment(
    summary: dict[str, Any], config: dict[str, Any], score: Score, finished_at: float | None
) -> str:
    """The experiment write-up of a finished run: ``summary.json``, the resolved config,
    ``score`` (a round's target score, as the loop ranks rounds) and when it finished."""
    rules = summary.get("suites") or []
    rounds = summary["rounds"]
    date = datetime.fromtimestamp(finished_at, UTC) if finished_at else datetime.now(UTC)
    data = config.get("data") or {}
    training, loop, lora = (
        config.get("training") or {},
        config.get("loop") or {},
        config.get("lora") or {},
    )
    baseline = next((rd for rd in rounds if rd["round"] == 0), None)
    best_k = (summary.get("best") or {}).get("round")
    best = next((rd for rd in rounds if rd["round"] == best_k), None)
    lines = [
        f"# Experiment: {summary['run_id']}",
        "",
        f"- **Date:** {date:%Y-%m-%d}",
        f"- **Base model:** `{summary['base_model']}` ({summary['backend']} backend)",
        f"- **Outcome:** {summary['stop_reason']} after {summary['rounds_trained']} round(s), "
        f"{summary.get('seconds', 0)} s",
        "",
        "## Data",
        "",
        *[
            f"- {role}: "
            + ", ".join(
                f"`{p}`" for p in ([data[role]] if isinstance(data[role], str) else data[role])
            )
            for role in ("train", "validation", "pool")
            if data.get(role)
        ],
        *[f"- {k.replace('_', ' ')}: {v}" for k, v in (summary.get("data") or {}).items()],
        *[f"- {n}" for n in summary.get("notes") or []],
        f"- examples generated by a teacher: {len(summary.get('generated') or [])}",
        "",
        "## Method",
        "",
        f"LoRA (rank {lora.get('rank')}, attention {lora.get('train_attn')}, MLP "
        f"{lora.get('train_mlp')}, unembedding {lora.get('train_unembed')}) fine-tuned in rounds "
        f"by the evaltune loop: evaluate, analyse failures by tag, choose data "
        f"(`{(loop.get('selection') or {}).get('strategy', 'auto')}` selection) and "
        f"hyperparameters (policies: {', '.join(loop.get('policies') or []) or 'none'}), train, "
        f"until a stop rule (at most {loop.get('max_rounds')} rounds).",
        "",
        "## Hyperparameters",
        "",
        "| round | lr | steps | rank | final loss |",
        "|---|---|---|---|---|",
        *[
            f"| {rd['round']} | {'–' if rd.get('lr') is None else format(rd['lr'], '.3g')} | "
            f"{_num(rd.get('steps'))} | {_num(rd.get('rank'))} | "
            f"{_num((rd.get('train') or {}).get('final_loss'))} |"
            for rd in rounds
            if rd["round"] > 0
        ],
        "",
        f"Batch size {training.get('batch_size')}, schedule {training.get('schedule')}, seed "
        f"{training.get('seed')}, learning rate setting `{training.get('learning_rate')}`.",
        "",
        "## Results",
        "",
        "| suite | role | metric | baseline | best round | threshold |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['name']} | {r['role']} | {r['metric']} | {_cell(baseline, r)} | "
            f"{_cell(best, r)} | {_num(r.get('threshold'))} |"
            for r in rules
        ],
        "",
        "## Findings",
        "",
        *_findings(summary),
        "",
        "## What each intervention did",
        "",
        *(_interventions(rounds, score) or ["- No round followed an intervention."]),
    ]
    return "\n".join(lines) + "\n"
