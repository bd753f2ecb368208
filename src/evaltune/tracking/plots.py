"""The plots of ``report.html``, drawn with matplotlib and returned as PNG bytes.

Each function takes plain data from ``summary.json`` (or the rounds' ``train.json`` steps) and
returns one PNG, or ``None`` when the run has nothing to draw (no trained round, no tags).
Figures are built with ``matplotlib.figure.Figure`` directly (the Agg canvas, no pyplot), so
nothing global is touched and no display is needed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

__all__ = ["data_plot", "loss_plot", "lr_plot", "score_plot", "tag_heatmap"]

Round = dict[str, Any]
DPI = 100


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _label(k: int) -> str:
    return "base" if k == 0 else str(k)


def score_plot(rounds: Sequence[Round], rules: Sequence[dict[str, Any]]) -> bytes | None:
    """Each suite's metric per round with its 95 % interval; targets solid with their
    threshold dashed, guards dotted."""
    evaluated = [rd for rd in rounds if rd.get("evals")]
    if not evaluated or not rules:
        return None
    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.add_subplot()
    xs = [rd["round"] for rd in evaluated]
    for i, rule in enumerate(rules):
        color = f"C{i % 10}"
        points = [
            (rd["round"], (rd["evals"].get(rule["name"]) or {}).get("metrics") or {})
            for rd in evaluated
        ]
        points = [(k, m) for k, m in points if m.get(rule["metric"]) is not None]
        if not points:
            continue
        x = [k for k, _ in points]
        y = [m[rule["metric"]] for _, m in points]
        low = [
            y_ - m.get(f"{rule['metric']}_ci_low", y_) for y_, (_, m) in zip(y, points, strict=True)
        ]
        high = [
            m.get(f"{rule['metric']}_ci_high", y_) - y_
            for y_, (_, m) in zip(y, points, strict=True)
        ]
        style = "-o" if rule["role"] == "target" else ":s"
        label = f"{rule['name']} {rule['metric']} ({rule['role']})"
        ax.errorbar(x, y, yerr=[low, high], fmt=style, color=color, capsize=3, label=label)
        if rule["role"] == "target" and rule.get("threshold") is not None:
            ax.axhline(rule["threshold"], color=color, linestyle="--", linewidth=1, alpha=0.7)
    ax.set_xticks(xs, [_label(k) for k in xs])
    ax.set_xlabel("round")
    ax.set_ylabel("score (95 % interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def tag_heatmap(rounds: Sequence[Round], suite: str) -> bytes | None:
    """Accuracy of each tag of ``suite`` (rows) over the rounds (columns)."""
    evaluated = [rd for rd in rounds if (rd.get("evals") or {}).get(suite)]
    tags = sorted({t for rd in evaluated for t in rd["evals"][suite].get("per_tag") or {}})
    if not tags:
        return None
    grid = [
        [
            ((rd["evals"][suite].get("per_tag") or {}).get(tag) or {}).get("accuracy", float("nan"))
            for rd in evaluated
        ]
        for tag in tags
    ]
    fig = Figure(figsize=(max(4.0, 1.0 + 0.8 * len(evaluated)), 1.2 + 0.4 * len(tags)))
    ax = fig.add_subplot()
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(evaluated)), [_label(rd["round"]) for rd in evaluated])
    ax.set_yticks(range(len(tags)), tags)
    ax.set_xlabel("round")
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            if value == value:  # not NaN
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label=f"{suite} accuracy")
    return _png(fig)


def loss_plot(steps: Sequence[dict[str, Any]]) -> bytes | None:
    """Training loss per optimizer step (global step), one colour per round."""
    if not steps:
        return None
    fig = Figure(figsize=(7.5, 3.2))
    ax = fig.add_subplot()
    by_round: dict[int, list[dict[str, Any]]] = {}
    for s in steps:
        by_round.setdefault(int(s["round"]), []).append(s)
    for k, rows in sorted(by_round.items()):
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], "-", label=f"round {k}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def lr_plot(rounds: Sequence[Round]) -> bytes | None:
    """The peak learning rate of each trained round (log scale)."""
    trained = [rd for rd in rounds if rd["round"] > 0 and rd.get("lr")]
    if not trained:
        return None
    fig = Figure(figsize=(5.0, 2.8))
    ax = fig.add_subplot()
    ks = [rd["round"] for rd in trained]
    ax.bar([str(k) for k in ks], [rd["lr"] for rd in trained], color="C4")
    ax.set_yscale("log")
    ax.set_xlabel("round")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def data_plot(rounds: Sequence[Round]) -> bytes | None:
    """Examples added for each round, from the pool and generated, stacked."""
    picks = [(rd["round"] + 1, rd["selection"]) for rd in rounds if rd.get("selection")]
    if not picks:
        return None
    fig = Figure(figsize=(5.0, 2.8))
    ax = fig.add_subplot()
    labels = [str(k) for k, _ in picks]
    pool = [sum(not a.get("generated") for a in sel.get("added") or []) for _, sel in picks]
    made = [sum(bool(a.get("generated")) for a in sel.get("added") or []) for _, sel in picks]
    ax.bar(labels, pool, label="from the pool", color="C0")
    ax.bar(labels, made, bottom=pool, label="generated", color="C1")
    ax.set_xlabel("round trained on them")
    ax.set_ylabel("examples added")
    ax.legend(fontsize=8)
    return _png(fig)
