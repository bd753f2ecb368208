"""Does the default loop beat naive retraining? Four arms on two shipped tasks, over seeds.

    python benchmarks/loop_efficacy.py                       # both tasks, seeds 0 1 2
    python benchmarks/loop_efficacy.py --tasks mixed6 --seeds 0 --json out.json

Tasks (``benchmarks/tasks/``, written by ``make_tasks.py``):

- ``mixed6``: six topics, some learnable from a few dozen examples, some not; the seed set
  covers two of them, the pool all six;
- ``corpus``: three eval topics; a pool of hundreds of items, mostly from topics the eval
  never asks about.

Arms, each a real evaltune run on Gemma 3 270M (nothing simulated):

- ``default``: the task's ``config.yaml`` as shipped: data, pool, a target and a budget;
  everything else evaltune's defaults;
- ``lr_decay``: the original loop: no pool, the heuristic learning rate (no probe), a fixed 8
  steps a round, learning rate × 0.7 per round, no plateau stop or rollback;
- ``random``: the default loop with ``selection.strategy: random`` (same budget);
- ``all_pool``: no loop: the seed set and the whole pool as training data, as many optimizer
  steps as the default arm took in all (same batch size), spread over the same rounds.

Per arm and seed it prints the score per round, the best score, the training tokens (the
learning-rate probe included) spent until the target was first met, the best round's per-tag
accuracy, the stalled tags the loop found, and the tags that fell back from their peak by more
than the noise band (a two-proportion test at 95 %, z < −1.96). Then, per task, whether the default arm
had the highest best score and the fewest tokens to target against every other arm in at least
2 of 3 seeds. On 2 CPU cores a run takes 1–4 minutes after the model is cached.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaltune.config import load_config
from evaltune.loop import run_loop
from evaltune.loop.allocate import two_proportion_z

TASKS = Path(__file__).resolve().parent / "tasks"
ARMS = ("default", "lr_decay", "random", "all_pool")
NOISE_Z = 1.96  # a tag "fell back" when its drop from its peak passes a 95 % two-proportion test


def overrides(arm: str, task: str, seed: int, steps: tuple[int, int] | None) -> list[str]:
    base = [f"training.seed={seed}", "loop.stop_on_target=false"]
    if arm == "default":
        return base
    if arm == "lr_decay":
        return [
            *base,
            "data.pool=[]",
            "training.lr_probe=false",
            "training.steps_per_round=8",
            "loop.lr_decay=0.7",
            "loop.plateau_rounds=0",
            "loop.rollback=false",
        ]
    if arm == "random":
        return [*base, "loop.selection.strategy=random"]
    assert steps is not None
    folder = TASKS / task
    return [
        *base,
        f"data.train=[{folder / 'train.jsonl'},{folder / 'pool.jsonl'}]",
        "data.pool=[]",
        f"training.steps_per_round={steps[0]}",
        f"loop.max_rounds={steps[1]}",
        "loop.plateau_rounds=0",
        "loop.rollback=false",
    ]


def run_arm(
    arm: str,
    task: str,
    seed: int,
    workspace: Path,
    steps: tuple[int, int] | None,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    cfg = load_config(
        TASKS / task / "config.yaml",
        [
            *extra,
            *overrides(arm, task, seed, steps),
            f"output.workspace={workspace}",
            f"output.run_name={task}-{arm}-{seed}",
        ],
    )
    run = run_loop(cfg)
    summary = json.loads((run.path / "summary.json").read_text())
    state = json.loads((run.path / "state.json").read_text())
    (suite,) = summary["suites"]
    name, threshold = suite["name"], suite["threshold"]
    probe = state.get("probe") or {}
    tokens = int(probe.get("tokens", 0))
    per_round, to_target = [], None
    for rd in summary["rounds"]:
        tokens += int((rd.get("train") or {}).get("tokens", 0))
        acc = rd["evals"][name]["metrics"]["accuracy"]
        per_round.append(acc)
        if to_target is None and rd["round"] > 0 and acc >= threshold - 1e-12:
            to_target = tokens
    best_round = summary["best"]["round"] if summary.get("best") else 0
    best = next(r for r in summary["rounds"] if r["round"] == best_round)
    per_tag = {t: v for t, v in best["evals"][name]["per_tag"].items()}
    fell_back = []
    for tag, v in per_tag.items():
        peak = max(
            (r["evals"][name]["per_tag"].get(tag, {}).get("accuracy", 0.0), r["round"])
            for r in summary["rounds"]
        )
        n = int(v["n"])
        if two_proportion_z(peak[0], n, v["accuracy"], n) < -NOISE_Z:
            fell_back.append(f"{tag} {peak[0]:.2f}→{v['accuracy']:.2f}")
    stalled = sorted(state.get("stalled") or {})
    return {
        "task": task,
        "arm": arm,
        "seed": seed,
        "per_round": per_round,
        "best": max(per_round[1:], default=0.0),
        "best_round": best_round,
        "tokens": tokens,
        "tokens_to_target": to_target,
        "steps": state["global_step"],
        "per_tag": {t: v["accuracy"] for t, v in per_tag.items()},
        "stalled": stalled,
        "fell_back": fell_back,
        "stop_reason": summary["stop_reason"],
        "threshold": threshold,
        "run": str(run.path),
    }


def wins(task_results: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Per other arm: in how many seeds the default arm had the (strictly or tied) highest
    best score, and the fewest tokens to target (an arm that never met it has infinitely many;
    when neither met it, neither wins)."""
    out: dict[str, Any] = {}
    by = {(r["arm"], r["seed"]): r for r in task_results}
    for arm in ARMS[1:]:
        score = tokens = 0
        for seed in seeds:
            d, o = by.get(("default", seed)), by.get((arm, seed))
            if not d or not o:
                continue
            score += d["best"] >= o["best"] - 1e-12
            dt = d["tokens_to_target"] or math.inf
            ot = o["tokens_to_target"] or math.inf
            tokens += dt < ot
        out[arm] = {"best_score": score, "tokens_to_target": tokens, "seeds": len(seeds)}
    return out


def print_run(r: dict[str, Any]) -> None:
    rounds = " → ".join(f"{a:.2f}" for a in r["per_round"])
    tags = ", ".join(f"{t} {a:.2f}" for t, a in sorted(r["per_tag"].items()))
    target = "–" if r["tokens_to_target"] is None else f"{r['tokens_to_target']:,}"
    print(
        f"{r['task']:7s} {r['arm']:9s} seed {r['seed']}: best {r['best']:.3f} (round "
        f"{r['best_round']}); tokens {r['tokens']:,}, to target {target}; rounds {rounds}\n"
        f"        per tag (best round): {tags}\n"
        f"        stalled: {', '.join(r['stalled']) or '–'}; fell back: "
        f"{', '.join(r['fell_back']) or '–'}; stop: {r['stop_reason']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["mixed6", "corpus"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every arm (before the arm's own), to compare a variant",
    )
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="evaltune-efficacy-"))
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; runs in {workspace}")
    if args.extra:
        print(f"every arm also gets: {' '.join(args.extra)}")
    results: list[dict[str, Any]] = []
    for task in args.tasks:
        for seed in args.seeds:
            default = None
            for arm in args.arms:
                steps = None
                if arm == "all_pool":
                    if default is None:
                        default = run_arm("default", task, seed, workspace, None, args.extra)
                    rounds = max(1, len(default["per_round"]) - 1)
                    steps = (max(1, math.ceil(default["steps"] / rounds)), rounds)
                r = run_arm(arm, task, seed, workspace, steps, args.extra)
                if arm == "default":
                    default = r
                results.append(r)
                print_run(r)
    print()
    verdicts = {}
    for task in args.tasks:
        task_results = [r for r in results if r["task"] == task]
        verdicts[task] = wins(task_results, args.seeds)
        for arm, w in verdicts[task].items():
            print(
                f"{task}: default vs {arm}: highest best score in {w['best_score']}/{w['seeds']} "
                f"seeds, fewest tokens to target in {w['tokens_to_target']}/{w['seeds']}"
            )
        for arm in args.arms:
            rs = [r for r in task_results if r["arm"] == arm]
            if rs:
                mean = sum(r["best"] for r in rs) / len(rs)
                print(f"{task}: {arm:9s} mean best score {mean:.3f} over {len(rs)} seeds")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "verdicts": verdicts}, indent=2))


if __name__ == "__main__":
    main()
