"""A finished run folder built by hand (no model): what the loop writes, in miniature.

``make_run`` writes ``config.yaml``, ``state.json``, ``events.jsonl``, ``rounds/<k>/`` (plan,
train steps, eval results as real ``EvalResult`` files, a PEFT-shaped checkpoint folder) and
``summary.json`` with the same keys ``loop.summary.write_summary`` writes, for tests of the
registry, the reports and the CLI that need a run but not a model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from evaltune.evals import EvalResult, SampleRecord
from evaltune.tracking import RunDir

TAGS = ("capitals", "math", "colours")


def _result(suite: str, k: int, n: int, correct: int, model: str | None) -> EvalResult:
    records = [
        SampleRecord(
            id=f"{suite}-{i}",
            prompt=f"question {i}",
            response="yes" if i < correct else "no",
            target="yes",
            score=1.0 if i < correct else 0.0,
            correct=i < correct,
            tags=(TAGS[i % len(TAGS)],),
        )
        for i in range(n)
    ]
    sampling = {"max_tokens": 16, "temperature": 0.0, "seed": 0}
    return EvalResult.from_records(
        suite, records, model_path=model, sampling=sampling, suite_hash=f"hash-{suite}"
    )


def make_run(
    workspace: Path,
    name: str = "demo",
    *,
    correct: tuple[int, ...] = (2, 5, 7),
    guard_correct: tuple[int, ...] = (6, 6, 6),
    n: int = 8,
    threshold: float = 0.8,
) -> RunDir:
    """A finished run with a baseline and ``len(correct) - 1`` trained rounds; ``correct[k]``
    of ``n`` target answers right in round ``k``, ``guard_correct[k]`` on the guard."""
    data = workspace / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.jsonl").write_text('{"question": "q1", "answer": "a"}\n' * 3)
    (data / "pool.jsonl").write_text('{"question": "p1", "answer": "b"}\n' * 2)
    config = {
        "base_model": "gemma-3-270m",
        "backend": "local",
        "lora": {"rank": 8, "train_mlp": True, "train_attn": True, "train_unembed": True},
        "data": {"train": [str(data / "train.jsonl")], "pool": [str(data / "pool.jsonl")]},
        "training": {"batch_size": 4, "learning_rate": 1e-3},
        "evals": [{"name": "qa", "file": "qa.jsonl", "threshold": threshold}],
        "output": {"workspace": str(workspace), "run_name": name},
    }
    run = RunDir.create(
        workspace, name, lambda run_id: {"config.yaml": yaml.safe_dump(config), "state.json": "{}"}
    )
    rules = [
        {"name": "qa", "metric": "accuracy", "role": "target", "threshold": threshold,
         "tolerance": 0.0, "higher_is_better": True},
        {"name": "guard", "metric": "accuracy", "role": "guard", "threshold": None,
         "tolerance": 0.1, "higher_is_better": True},
    ]  # fmt: skip
    rounds: list[dict[str, Any]] = []
    step = 0
    for k, (c, g) in enumerate(zip(correct, guard_correct, strict=True)):
        ckpt = None
        model = None
        record: dict[str, Any] = {"round": k, "phase": "decided", "lr": None, "steps": None,
                                  "rank": None, "train": None, "checkpoint": None,
                                  "val_nll": None}  # fmt: skip
        if k > 0:
            folder = run.checkpoints / "sampler" / f"round-{k}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "adapter_config.json").write_text("{}")
            (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
            model = f"tinker://run/sampler_weights/round-{k}"
            ckpt = {"state": f"tinker://run/weights/round-{k}", "sampler": model,
                    "sampler_folder": str(folder)}  # fmt: skip
            lr = 1e-3 * 0.5 ** (k - 1)
            steps = []
            for _ in range(6):
                step += 1
                loss = 2.5 * math.exp(-0.15 * step)
                steps.append({"step": step, "loss": loss, "lr": lr, "tokens": 100,
                              "weighted_tokens": 20.0, "seconds": 0.1, "tokens_per_s": 1000.0,
                              "grad_norm": 1.0})  # fmt: skip
                run.event("step", round=k, **{f"train/{key}": v for key, v in steps[-1].items()})
            train = {"steps": 6, "first_loss": steps[0]["loss"], "final_loss": steps[-1]["loss"],
                     "mean_loss": sum(s["loss"] for s in steps) / 6, "tokens": 600,
                     "seconds": 0.6, "tokens_per_s": 1000.0}  # fmt: skip
            run.write_json(f"rounds/{k}/train.json", {**train, "steps": steps})
            run.write_json(f"rounds/{k}/plan.json", {"round": k, "lr": lr, "steps": 6, "rank": 8,
                           "batch_size": 4, "grad_accum": 1, "seed": k, "train_examples": 3 + k})  # fmt: skip
            record.update(lr=lr, steps=6, rank=8, train=train, checkpoint=ckpt)
        evals = {}
        for suite, right in (("qa", c), ("guard", g)):
            result = _result(suite, k, n, right, model)
            result.write_jsonl(run.round_dir(k) / "eval" / f"{suite}.jsonl")
            evals[suite] = result.summary()
            run.event("eval", round=k, suite=suite, **result.to_metrics(f"eval/{suite}"))
        record["evals"] = evals
        record["targets_met"] = c / n >= threshold
        record["guards_hold"] = g / n >= guard_correct[0] / n - 0.1
        stop = k == len(correct) - 1
        record["decision"] = {"stop": stop, "reason": "max_rounds" if stop else "continue",
                              "next_lr": None, "note": "round budget spent" if stop
                              else f"train round {k + 1}; data: +2 new"}  # fmt: skip
        record["selection"] = None if stop else {
            "strategy": "adaptive", "quotas": {"math": 2}, "weak_tags": ["math"],
            "weakness": {"math": 0.5}, "method": "", "replay": 1,
            "added": [{"id": f"pool-{k}-a", "tags": ["math"], "prompt": "p", "score": 0.5,
                       "generated": False},
                      {"id": f"gen-{k}-b", "tags": ["math"], "prompt": "g", "score": 0.4,
                       "generated": True}],
            "states": {t: {"status": "stalled" if t == "colours" and k > 0 else "trying",
                           "accuracy": 0.5, "ci_low": 0.2, "ci_high": 0.8, "trained": k,
                           "gain": None, "z": 0.0, "note": ""} for t in TAGS},
        }  # fmt: skip
        rounds.append(record)
    best = max(
        (r for r in rounds if r["round"] > 0), key=lambda r: r["evals"]["qa"]["metrics"]["accuracy"]
    )
    state = {"run_id": run.run_id, "status": "finished", "rounds": rounds, "global_step": step,
             "tokens": 600 * (len(rounds) - 1), "stop_reason": "max_rounds", "best_round": best["round"],
             "started_at": 1_700_000_000.0, "finished_at": 1_700_000_090.0, "version": 2,
             "stalled": {"colours": 8}, "generated": []}  # fmt: skip
    run.write_json("state.json", state)
    summary = {
        "run_id": run.run_id, "base_model": "gemma-3-270m", "backend": "local",
        "status": "finished", "stop_reason": "max_rounds", "rounds_trained": len(rounds) - 1,
        "suites": rules, "rounds": rounds,
        "best": {"round": best["round"], "checkpoint": best["checkpoint"], "evals": best["evals"],
                 "target_score": best["evals"]["qa"]["metrics"]["accuracy"],
                 "targets_met": best["targets_met"], "val_nll": None,
                 "guards_hold": best["guards_hold"]},
        "notes": ["removed 1 duplicate training examples"], "probe": None,
        "stalled": ["colours"], "generated": [], "analyses": {},
        "data": {"train_examples": 3, "validation_examples": 0, "pool_examples": 2},
        "seconds": 90.0,
    }  # fmt: skip
    run.write_json("summary.json", summary)
    run.event("run_finished", stop_reason="max_rounds", best_round=best["round"])
    return run


def summary_of(run: RunDir) -> dict[str, Any]:
    return json.loads((run.path / "summary.json").read_text())
