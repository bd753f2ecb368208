"""What a run leaves for people: ``summary.json``, ``report.md``, ``report.html`` and
``EXPERIMENT.md``.

The summary gathers rounds, decisions, data selections, failure analyses, the stop reason and
the best checkpoint with its evidence; the report renders the same as Markdown a person can
read: a per-round table, per-tag accuracy across rounds, which tags were weak and which pool
examples were added for them, and how the model failed. ``write_reports`` writes the report
pages from a summary (``evaltune report`` regenerates them with it): ``report.html`` with its
plots (``tracking.html``) and the experiment write-up (``tracking.experiment``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaltune.config import RunConfig
from evaltune.loop.analysis import tag_accuracy
from evaltune.loop.decide import SuiteRule, target_score
from evaltune.tracking import RunDir
from evaltune.tracking.experiment import render_experiment
from evaltune.tracking.html import read_steps, render_html

__all__ = ["render_report", "write_reports", "write_summary"]

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
    head = ["round", "method", "lr", "steps", "train loss"]
    for r in rules:
        sign = "≥" if r.higher_is_better else "≤"
        goal = f" ({sign} {r.threshold})" if r.role == "target" and r.threshold is not None else ""
        head.append(f"{r.name} {r.metric}{goal}")
    head += ["val NLL", "vs best so far (paired)", "decision"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rd in summary["rounds"]:
        train = rd.get("train") or {}
        row = [
            "baseline" if rd["round"] == 0 else str(rd["round"]),
            "–" if rd["round"] == 0 else rd.get("method", "sft"),
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
        row += [_fmt(rd.get("val_nll")), _vs_best(rd.get("vs_best")), decision.get("reason", "–")]
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
    lines += _probe_section(summary) + _methods_section(summary) + _tag_section(summary)
    lines += _selection_section(summary) + _failure_section(summary)
    lines += ["", "## Decisions", ""]
    for rd in summary["rounds"]:
        if rd.get("decision"):
            lines.append(
                f"- round {rd['round']}: {rd['decision']['reason']} — "
                f"{rd['decision'].get('note', '')}"
            )
    return "\n".join(lines) + "\n"


def _vs_best(cmp: dict[str, Any] | None) -> str:
    if not cmp:
        return "–"
    label = {"better": "real gain", "worse": "real drop", "same": "noise"}[cmp["verdict"]]
    return (
        f"{cmp['delta']:+.2f} vs round {cmp['against']} (+{cmp['wrong_to_right']}/"
        f"−{cmp['right_to_wrong']}, p={cmp['p_value']:.2g}): {label}"
    )


def _probe_section(summary: dict[str, Any]) -> list[str]:
    probe = summary.get("probe") or {}
    if not probe.get("candidates"):
        return []
    lines = [
        "",
        "## Learning-rate probe",
        "",
        f"`learning_rate: auto` gave {probe['base']:.3g} from the model's width; "
        f"{probe['steps']} steps at each candidate on 80 % of the training data, judged by "
        f"NLL on the other {probe['held_out']} examples:",
        "",
        "| lr | × heuristic | train loss | held-out NLL |",
        "|---|---|---|---|",
    ]
    for c in probe["candidates"]:
        mark = " **(chosen)**" if c["lr"] == probe["chosen"] else ""
        lines.append(
            f"| {c['lr']:.3g}{mark} | {c['factor']:g} | {_fmt(c.get('train_loss'))} | "
            f"{_fmt(c['val_nll'])} |"
        )
    return lines


def _methods_section(summary: dict[str, Any]) -> list[str]:
    """What each RL, DPO or distillation round optimised, first step → last."""
    rows = []
    for rd in summary["rounds"]:
        t = rd.get("train") or {}
        method = rd.get("method", "sft")
        if method == "rl":
            what = (
                f"mean reward {_fmt(t.get('first_reward'))} → {_fmt(t.get('final_reward'))} "
                f"(groups with signal {_fmt(t.get('mean_signal'))}; rewards from "
                f"{t.get('reward_suite')})"
            )
        elif method == "dpo":
            what = (
                f"{t.get('pairs')} pairs: loss {_fmt(t.get('first_loss'))} → "
                f"{_fmt(t.get('final_loss'))}, reward margin {_fmt(t.get('final_margin'))}, "
                f"accuracy {_fmt(t.get('final_accuracy'))}"
            )
        elif method == "distill" and t.get("mode") == "off_policy":
            what = f"{t.get('written')} completions written by {t.get('teacher')}, trained as SFT"
        elif method == "distill":
            what = (
                f"reverse KL to {t.get('teacher')} {_fmt(t.get('first_reverse_kl'))} → "
                f"{_fmt(t.get('final_reverse_kl'))}"
            )
        else:
            continue
        rows.append(f"- round {rd['round']} ({method}): {what}")
    return ["", "## Training methods", "", *rows] if rows else []


def _rates(st: dict[str, Any]) -> str:
    """A tag's sure–optimistic gap closed per example; the prior for a tag without evidence
    (state files written before the rates existed have neither)."""
    if "rate" not in st:
        return "–"
    if st.get("gain") is None:
        return f"{st['rate']:.1%} (prior)"
    return f"{st.get('rate_low', 0.0):.1%}–{st['rate']:.1%}"


def _tag_section(summary: dict[str, Any]) -> list[str]:
    """The adaptive strategy's view of each tag after each evaluation (``loop/allocate.py``)."""
    picks = [rd for rd in summary["rounds"] if (rd.get("selection") or {}).get("states")]
    if not picks:
        return []
    lines = [
        "",
        "## Tags: what the loop learned about them",
        "",
        "Status after each evaluation: `responsive` rose significantly since its first "
        "examples, `stalled` took examples for several rounds without moving, `ceiling` is "
        "learned (replayed only), `trying` is too early to tell, `untried` has no examples "
        "yet. Accuracy with its 95 % Wilson interval; `regressed` fell below its best by more "
        "than the noise band; `underfit`: the mean training loss on its own examples (train "
        "loss) is still above `fitted_loss` (a responsive one has all of them replayed). "
        "`gap closed per example`: the share of the distance to accuracy 1 each example of "
        "the tag closed, read from its learning curve at the two ends (one standard error) of "
        "its best accuracy: the sure and the optimistic rate. A tag whose optimistic rate is "
        "worth less than the best tag's sure one gets no new examples (successive elimination; "
        "see docs/how-the-loop-decides.md).",
    ]
    for rd in picks:
        sel = rd["selection"]
        label = "the baseline" if rd["round"] == 0 else f"round {rd['round']}"
        lines += [
            "",
            f"After {label} (next round: {sum(sel['quotas'].values())} new examples, "
            f"{sel.get('replay', 0)} replayed):",
            "",
            "| tag | accuracy | status | trained | train loss | gain since its data "
            "| gap closed per example | next round | note |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for tag, st in sorted(sel["states"].items()):
            gain = "–" if st["gain"] is None else f"{st['gain']:+.2f} ({st['z']:.1f} se)"
            flags = [f for f in ("regressed", "underfit") if st.get(f)]
            status = ", ".join([st["status"], *flags])
            loss = "–" if st.get("train_loss") is None else f"{st['train_loss']:.3f}"
            lines.append(
                f"| {tag} | {st['accuracy']:.2f} [{st['ci_low']:.2f}, {st['ci_high']:.2f}] | "
                f"{status} | {st['trained']} | {loss} | {gain} | {_rates(st)} | "
                f"+{sel['quotas'].get(tag, 0)} | {st['note']} |"
            )
        syn = sel.get("synthesis")
        if syn:
            rejected = ", ".join(f"{n} {why}" for why, n in syn["rejected"].items() if n)
            made = f"Synthesis: {syn['made']} examples written"
            lines += ["", made + (f"; rejected: {rejected}" if rejected else "")]
            lines += [f"- teacher failed for {e}" for e in syn["errors"]]
    stalled = sorted(
        {
            t
            for rd in picks
            for t, st in rd["selection"]["states"].items()
            if st["status"] == "stalled"
        }
    )
    if stalled:
        lines += [
            "",
            f"**Stalled tags: {', '.join(stalled)}.** More examples of the same kind did not "
            "move them; they need a different intervention: a larger model, another answer "
            "format, more LoRA capacity, or another training method.",
        ]
    return lines


def _selection_section(summary: dict[str, Any]) -> list[str]:
    picks = [rd for rd in summary["rounds"] if rd.get("selection")]
    if not picks:
        return []
    lines = ["", "## Data selection", ""]
    for rd in picks:
        sel = rd["selection"]
        weak = ", ".join(
            f"{t} ({1 - sel['weakness'][t]:.2f})" for t in sel["weak_tags"] if t in sel["weakness"]
        )
        if sel.get("quotas") is not None:  # adaptive: the bandit's split, not a weakness rank
            split = ", ".join(f"{t} +{q}" for t, q in sorted(sel["quotas"].items()))
            why, what = f"budget to {split or 'no tag'}", "examples (pool or generated)"
        else:
            why, what = f"weakest tags {weak or '–'}", "pool examples"
        label = "the baseline" if rd["round"] == 0 else f"round {rd['round']}"
        lines.append(
            f"After {label} ({sel['strategy']}"
            + (f", {sel['method']} similarity" if sel.get("method") else "")
            + f"): {why}; added {len(sel['added'])} {what}:"
        )
        lines.append("")
        lines += ["| id | tags | prompt | score |", "|---|---|---|---|"]
        for item in sel["added"]:
            prompt = item["prompt"].replace("|", "\\|")[:80]
            if item.get("generated"):
                prompt += " *(generated)*"
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
        "probe": state.get("probe"),
        "stalled": sorted(state.get("stalled") or {}),
        "generated": state.get("generated") or [],
        "analyses": _analyses(run, rounds),
        "data": ctx.stats,
        "seconds": round((state.get("finished_at") or 0) - state["started_at"], 1),
    }
    run.write_json("summary.json", summary)
    write_reports(run, summary, cfg.model_dump(mode="json"), state.get("finished_at"))
    return summary


def write_reports(
    run: RunDir, summary: dict[str, Any], config: dict[str, Any], finished_at: float | None
) -> list[str]:
    """``report.md``, ``EXPERIMENT.md`` and ``report.html`` from ``summary``; the names of
    those that could not be rendered (a plotting failure is recorded as an event, never fails
    a finished run; a refused write is an ``OSError`` as for every file of the run)."""
    run.write_text("report.md", render_report(summary))
    rules = [SuiteRule(**r) for r in summary["suites"]]

    def score(rd: Round) -> float | None:
        return target_score(rd, rules) if rd.get("evals") else None

    pages = {
        "EXPERIMENT.md": lambda: render_experiment(summary, config, score, finished_at),
        "report.html": lambda: render_html(summary, read_steps(run, summary["rounds"])),
    }
    failed = []
    for name, render in pages.items():
        try:
            text = render()
        except Exception as exc:  # a report page must not turn a finished run into a failed one
            run.event("report_failed", page=name, error=f"{type(exc).__name__}: {exc}")
            failed.append(name)
            continue
        run.write_text(name, text)
    return failed
