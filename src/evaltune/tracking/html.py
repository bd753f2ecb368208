"""``report.html``: the run's report as one self-contained page, plots embedded.

The page needs nothing from the network: no script, stylesheet, font or image is linked; every
plot (``tracking.plots``) is a PNG inside the page as a ``data:`` URI, so the file can be
mailed, attached to an MLflow run or opened offline. It shows target and guard scores per round
with their intervals, a per-tag heat map per suite, training loss, the learning rate per round,
what data each round added, every decision with its reason, and the best checkpoint with how
to use it. Its input is ``summary.json`` and each trained round's ``train.json`` steps.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from evaltune.tracking import plots
from evaltune.tracking.run_dir import RunDir

__all__ = ["read_steps", "render_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } code { background: #f5f5f5; padding: 0 3px; }
figure.plot { margin: 1em 0; } figure.plot img { max-width: 100%; display: block; }
figcaption { font-size: 0.85em; color: #555; }
.ok { color: #17702b; } .bad { color: #b00020; }
"""


def read_steps(run: RunDir, rounds: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every optimizer step of the trained rounds (``rounds/<k>/train.json``), with its round."""
    out: list[dict[str, Any]] = []
    for rd in rounds:
        path = run.path / "rounds" / str(rd["round"]) / "train.json"
        if rd["round"] > 0 and path.is_file():
            steps = json.loads(path.read_text(encoding="utf-8")).get("steps", [])
            out += [{**s, "round": rd["round"]} for s in steps]
    return out


def _figure(key: str, png: bytes | None, caption: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure class="plot" id="plot-{escape(key)}"><img class="plot" alt="{escape(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = "".join(f"<th>{escape(str(h))}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def _num(x: Any) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _best(summary: dict[str, Any]) -> str:
    best = summary.get("best")
    if not best:
        return "<p>No trained round was evaluated, so there is no best checkpoint.</p>"
    ckpt = best["checkpoint"]
    folder = ckpt.get("sampler_folder")
    ok = best.get("targets_met")
    lines = [
        f"<p>Round {best['round']}: targets met "
        f'<span class="{"ok" if ok else "bad"}">{"yes" if ok else "no"}</span>, guards held '
        f"{'yes' if best.get('guards_hold', True) else 'no'}, target score "
        f"{_num(best.get('target_score'))}.</p><ul>",
        f"<li>sampler weights: <code>{escape(str(ckpt['sampler']))}</code></li>",
        f"<li>resumable state (weights and optimizer): <code>{escape(str(ckpt['state']))}</code></li>",
    ]
    if folder:
        f = escape(folder)
        lines += [
            f"<li>PEFT adapter folder: <code>{f}</code></li>",
            f"<li>evaluate it: <code>evaltune eval --model {f} --suite FILE</code></li>",
            f'<li>load it: <code>peft.PeftModel.from_pretrained(base, "{f}")</code></li>',
        ]
    run_id = escape(summary["run_id"])
    lines += [
        f"<li>deploy it: <code>evaltune export runs/{run_id} --format peft|merged|gguf</code></li>",
        "<li>promote it: <code>evaltune registry list</code>, then <code>evaltune registry "
        "promote ID --to production --why TEXT</code></li></ul>",
    ]
    return "".join(lines)


def _rounds_table(summary: dict[str, Any], rules: Sequence[dict[str, Any]]) -> str:
    head = ["round", "lr", "steps", "final loss"] + [f"{r['name']} {r['metric']}" for r in rules]
    rows = []
    for rd in summary["rounds"]:
        row = [
            "baseline" if rd["round"] == 0 else rd["round"],
            _num(rd.get("lr")),
            _num(rd.get("steps")),
            _num((rd.get("train") or {}).get("final_loss")),
        ]
        for r in rules:
            m = ((rd.get("evals") or {}).get(r["name"]) or {}).get("metrics") or {}
            value, lo, hi = (
                m.get(r["metric"]),
                m.get(f"{r['metric']}_ci_low"),
                m.get(f"{r['metric']}_ci_high"),
            )
            ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            row.append(_num(value) + ci)
        rows.append(row)
    return _table(head, rows)


def _data_table(summary: dict[str, Any]) -> str:
    rows = []
    for rd in summary["rounds"]:
        sel = rd.get("selection")
        if not sel:
            continue
        added = sel.get("added") or []
        ids = ", ".join(a["id"] + (" (generated)" if a.get("generated") else "") for a in added)
        quotas = ", ".join(f"{t} +{q}" for t, q in sorted((sel.get("quotas") or {}).items()))
        rows.append([rd["round"] + 1, len(added), sel.get("replay", "–"), quotas or "–", ids])
    if not rows:
        return "<p>No examples were added after round 1's data.</p>"
    return _table(["for round", "added", "replayed", "by tag", "examples"], rows)


def render_html(summary: dict[str, Any], steps: Sequence[dict[str, Any]]) -> str:
    """The page for ``summary`` (``summary.json``) and the runs' training ``steps``."""
    rules = summary.get("suites") or []
    rounds = summary["rounds"]
    figures: list[tuple[str, Callable[[], bytes | None], str]] = [
        (
            "scores",
            lambda: plots.score_plot(rounds, rules),
            "Target and guard scores per round with 95 % intervals (dashed: target thresholds)",
        ),
    ]
    for r in rules:
        figures.append(
            (
                f"tags-{r['name']}",
                lambda name=r["name"]: plots.tag_heatmap(rounds, name),
                f"Per-tag accuracy over rounds: {r['name']}",
            )
        )
    figures += [
        ("loss", lambda: plots.loss_plot(steps), "Training loss per optimizer step"),
        ("lr", lambda: plots.lr_plot(rounds), "Learning rate per round"),
        ("data", lambda: plots.data_plot(rounds), "Examples added per round"),
    ]
    decisions = "".join(
        f"<li>{'baseline' if rd['round'] == 0 else 'round ' + str(rd['round'])}: "
        f"<b>{escape(rd['decision'].get('reason', ''))}</b> — "
        f"{escape(rd['decision'].get('note', ''))}</li>"
        for rd in rounds
        if rd.get("decision")
    )
    stalled = ", ".join(summary.get("stalled") or []) or "none"
    notes = "".join(f"<li>{escape(n)}</li>" for n in summary.get("notes") or [])
    title = f"evaltune run {summary['run_id']}"
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>",
        f"<p>Base model <code>{escape(str(summary['base_model']))}</code> on "
        f"{escape(str(summary['backend']))} · stop reason <b>{escape(str(summary['stop_reason']))}"
        f"</b> after {summary['rounds_trained']} training round(s) · {summary.get('seconds', 0)} s"
        f" · stalled tags: {escape(stalled)}</p>",
        "<h2>Best checkpoint</h2>",
        _best(summary),
        "<h2>Scores</h2>",
        _rounds_table(summary, rules),
        *(_figure(key, make(), caption) for key, make, caption in figures),
        "<h2>Data added per round</h2>",
        _data_table(summary),
        f"<ul>{notes}</ul>" if notes else "",
        "<h2>Decisions</h2>",
        f"<ol>{decisions}</ol>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
