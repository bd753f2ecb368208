"""What a run leaves for people: ``summary.json`` and ``report.md``.

The summary gathers rounds, decisions, data selections, failure analyses, the stop reason and
the best checkpoint with its evidence; the report renders the same as Markdown a person can
read: a per-round table, per-tag accuracy across rounds, which tags were weak and which pool
examples were added for them, and how the model failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaltune.config import RunConfig
from evaltune.loop.analysis import tag_accuracy
from evaltune.loop.decide import SuiteRule, target_score
from evaltune.tracking import RunDir

__all__ = ["render_report", "write_summary"]

Round = dict[str, Any]


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"
    return str(x)


def _analyses(run: RunDir, rounds: Sequence[Round]) -> dict[str, Any]:
    out = {}
    for rd in rounds:
        path = run.path / "rounds" / str(rd["round"]) / "analysis.json"
        if path.is_file():
            out[str(rd["round"])] = run.read_json(f"rounds/{rd['round']}/analysis.json")
    return out


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
        ckpt = best["checkpoint"]
        lines.append(
            f"- best checkpoint: round {best['round']} — `{ckpt['sampler']}` "
            f"(resumable state: `{ckpt['state']}`)"
        )
        if ckpt.get("sampler_folder"):
            lines.append(
                f"- best adapter (a PEFT folder): `{ckpt['sampler_folder']}`; evaluate "
                f"it with `evaltune eval --model {ckpt['sampler_folder']} --suite FILE`"
            )
        metric_of = {r.name: r.metric for r in rules}  # nll for an NLL suite, not accuracy
        evidence = ", ".join(
            f"{name} {v['metrics'].get(metric_of.get(name, 'accuracy'), 0):.3f}"
            for name, v in best.get("evals", {}).items()
        )
        lines.append(
            f"- why: targets met: {best.get('targets_met')}; guards held: "
            f"{best.get('guards_hold', True)}; {evidence}"
        )
    for note in summary.get("notes", []):
        lines.append(f"- data: {note}")
    lines += ["", "## Rounds", ""]
    head = ["round", "lr", "steps", "train loss"]
    for r in rules:
        sign = "≥" if r.higher_is_better else "≤"
        goal = f" ({sign} {r.threshold})" if r.role == "target" and r.threshold is not None else ""
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
        tags = sorted({t for rd in summary["rounds"] for t in tag_accuracy(rd, r.name)})
        if not tags:
            continue
        lines += ["", f"## Per-tag accuracy: {r.name}", ""]
        cols = [
            "baseline" if rd["round"] == 0 else f"round {rd['round']}" for rd in summary["rounds"]
        ]
        lines += ["| tag | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for tag in tags:
            vals = [_fmt(tag_accuracy(rd, r.name).get(tag)) for rd in summary["rounds"]]
            lines.append(f"| {tag} | " + " | ".join(vals) + " |")
    lines += _selection_section(summary) + _failure_section(summary)
    lines += ["", "## Decisions", ""]
    for rd in summary["rounds"]:
        if rd.get("decision"):
            lines.append(
                f"- round {rd['round']}: {rd['decision']['reason']} — "
                f"{rd['decision'].get('note', '')}"
            )
    return "\n".join(lines) + "\n"


def _selection_section(summary: dict[str, Any]) -> list[str]:
    picks = [rd for rd in summary["rounds"] if rd.get("selection")]
    if not picks:
        return []
    lines = ["", "## Data selection", ""]
    for rd in picks:
        sel = rd["selection"]
        weak = ", ".join(f"{t} ({1 - sel['weakness'][t]:.2f})" for t in sel["weak_tags"])
        lines.append(
            f"After round {rd['round']} ({sel['strategy']}"
            + (f", {sel['method']} similarity" if sel.get("method") else "")
            + f"): weakest tags {weak or '–'}; added {len(sel['added'])} pool examples:"
        )
        lines.append("")
        lines += ["| id | tags | prompt | score |", "|---|---|---|---|"]
        for item in sel["added"]:
            prompt = item["prompt"].replace("|", "\\|")[:80]
            lines.append(
                f"| {item['id']} | {', '.join(item['tags'])} | {prompt} | {item['score']:.3f} |"
            )
        lines.append("")
    return lines


def _failure_section(summary: dict[str, Any]) -> list[str]:
    analyses = summary.get("analyses") or {}
    rows = []
    for k, analysis in sorted(analyses.items(), key=lambda kv: int(kv[0])):
        for suite, a in analysis.get("suites", {}).items():
            if "error_types" in a:
                kinds = ", ".join(f"{n} {t}" for t, n in a["error_types"].items() if n)
                top = a.get("clusters") or []
                cluster = (
                    f"largest cluster: {top[0]['size']} × e.g. “{top[0]['examples'][0]}”"
                    if top
                    else ""
                )
                label = "baseline" if int(k) == 0 else f"round {k}"
                rows.append(
                    f"- {label} · {suite}: {a['failures']} failures ({kinds or 'none'})"
                    + (f"; {cluster}" if cluster else "")
                )
    return ["", "## Failure analysis", "", *rows] if rows else []


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
            "guards_hold": best.get("guards_hold", True),
        },
        "notes": ctx.notes,
        "analyses": _analyses(run, rounds),
        "data": ctx.stats,
        "seconds": round((state.get("finished_at") or 0) - state["started_at"], 1),
    }
    run.write_json("summary.json", summary)
    run.write_text("report.md", render_report(summary))
    return summary
