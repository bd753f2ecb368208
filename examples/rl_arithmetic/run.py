"""After SFT has plateaued, does RL raise held-out accuracy above the SFT checkpoint, and above
continuing SFT for the same compute? Two-digit sums on the embedded Gemma 3 270M, per seed:

1. ``config.yaml``: evaltune's loop trains SFT rounds on 64 sums until the plateau stop;
2. from its best round (weights and optimizer state), two arms:
   - **RL**: ``rl_chunks × rl_steps`` steps of RL with verifiable rewards (8 prompts × 8
     completions a step, reward 1 when the numeric grader accepts the sum, group-relative
     advantages, Tinker's ``importance_sampling`` loss) at ``--rl-lr-factor`` (0.1) × the SFT
     round's learning rate, evaluated after every chunk;
   - **SFT**: more SFT steps on the same 64 examples, as many as make its compute at least the
     RL arm's at every evaluation.

Compute is counted in forward-token equivalents: a trained token costs 3 (forward and backward),
a sampled or prefilled token 1. The held-out set (50 sums) is never trained on. Prints, per
seed, the SFT checkpoint's accuracy and each arm's accuracy after every chunk, with its compute.

    python examples/rl_arithmetic/run.py                    # seeds 0 1, about 30 min on 2 cores
    python examples/rl_arithmetic/run.py --seeds 0 --rl-chunks 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from evaltune.backends.local import ServiceClient
from evaltune.config import load_config
from evaltune.data import get_renderer, load_examples, to_datum
from evaltune.evals.generation import evaluate_examples, sampling_stop
from evaltune.evals.registry import make_grader
from evaltune.loop import run_loop
from evaltune.train import run_rl_round, run_sft_round

HERE = Path(__file__).resolve().parent


def accuracy(client: Any, examples: list[Any], renderer: Any, grader: Any) -> float:
    sampler = client.save_weights_and_get_sampling_client().result()
    result = evaluate_examples(sampler, examples, renderer, grader, suite="sums", max_tokens=8)
    return float(result.metrics["accuracy"])


def finished_sft(workspace: Path, seed: int) -> Path | None:
    """The SFT phase of an earlier invocation on the same workspace, if it finished (its
    rounds are not rerun: phase 2 starts from its best round)."""
    for state in sorted((workspace / "runs").glob(f"*-sft-{seed}/state.json")):
        if json.loads(state.read_text()).get("status") == "finished":
            print(f"seed {seed}: SFT phase already finished in {state.parent}", flush=True)
            return state.parent
    return None


def one_seed(seed: int, args: argparse.Namespace, workspace: Path) -> dict[str, Any]:
    cfg = load_config(
        HERE / "config.yaml",
        [f"training.seed={seed}", f"output.workspace={workspace}", f"output.run_name=sft-{seed}"],
    )
    run_path = finished_sft(workspace, seed) or run_loop(cfg).path
    summary = json.loads((run_path / "summary.json").read_text())
    best = summary["best"]
    best_round = next(r for r in summary["rounds"] if r["round"] == best["round"])
    lr = float(best_round["lr"])
    sft_curve = [r["evals"]["sums"]["metrics"]["accuracy"] for r in summary["rounds"]]

    # the run's checkpoint folder: the arms start from its best round's saved state
    service = ServiceClient(checkpoint_dir=run_path / "checkpoints")
    tokenizer = service.create_sampling_client(base_model=cfg.base_model).result().get_tokenizer()
    renderer = get_renderer("role_colon", tokenizer)
    grader = make_grader("numeric")
    train = load_examples(HERE / "train.jsonl")
    held_out = load_examples(HERE / "eval.jsonl")
    prompts = [renderer.render_prompt(ex.prompt_messages) for ex in train]
    datums = [to_datum(renderer.render_example(ex)) for ex in train]

    def reward(indices: Any, completions: Any) -> list[float]:
        return [
            grader(renderer.parse_response(c), train[j].completion, train[j]).score
            for j, c in zip(indices, completions, strict=True)
        ]

    state = best["checkpoint"]["state"]
    rl = service.create_training_client_from_state_with_optimizer(state).result()
    sft = service.create_training_client_from_state_with_optimizer(state).result()
    start = accuracy(rl, held_out, renderer, grader)
    rows = []
    rl_compute = sft_compute = 0
    for chunk in range(args.rl_chunks):
        result = run_rl_round(
            rl,
            prompts,
            reward,
            steps=args.rl_steps,
            prompts_per_step=8,
            group_size=8,
            learning_rate=lr * args.rl_lr_factor,
            seed=seed * 100 + chunk,
            max_tokens=6,
            stop=sampling_stop(renderer.stop_sequences) or None,
        )
        prompt_tokens = sum(len(prompts[0]) for _ in range(8)) * args.rl_steps
        rl_compute += 3 * result.tokens + sum(s.sampled_tokens for s in result.steps)
        rl_compute += prompt_tokens
        steps = 0
        while sft_compute < rl_compute:  # at least the RL arm's compute, a step at a time
            more = run_sft_round(
                sft, datums, steps=1, batch_size=8, learning_rate=lr, seed=seed * 1000 + steps
            )
            sft_compute += 3 * more.tokens
            steps += 1
        rows.append(
            {
                "chunk": chunk + 1,
                "rl_reward": result.summary()["mean_reward"],
                "rl": accuracy(rl, held_out, renderer, grader),
                "rl_compute": rl_compute,
                "sft": accuracy(sft, held_out, renderer, grader),
                "sft_compute": sft_compute,
                "sft_steps": steps,
            }
        )
        r = rows[-1]
        print(
            f"seed {seed} chunk {r['chunk']}: RL {r['rl']:.2f} (train reward "
            f"{r['rl_reward']:.2f}, compute {rl_compute:,}) · SFT {r['sft']:.2f} "
            f"(+{steps} steps, compute {sft_compute:,})",
            flush=True,
        )
    return {
        "seed": seed,
        "sft_rounds": sft_curve,
        "sft_checkpoint": start,
        "sft_best_round": best["round"],
        "lr": lr,
        "rl_lr": lr * args.rl_lr_factor,
        "chunks": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rl-chunks", type=int, default=4)
    parser.add_argument("--rl-steps", type=int, default=5, help="RL steps per chunk")
    parser.add_argument(
        "--rl-lr-factor",
        type=float,
        default=0.1,
        help="RL's learning rate: the best SFT round's × this (rl.lr_factor's default; at 1.0 "
        "the training reward falls, docs/training-methods.md)",
    )
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="evaltune-rl-"))
    results = [one_seed(seed, args, workspace) for seed in args.seeds]
    print()
    print("| seed | SFT rounds (baseline → …) | SFT checkpoint | RL best | SFT continued best |")
    print("|---|---|---|---|---|")
    for r in results:
        rounds = " → ".join(f"{a:.2f}" for a in r["sft_rounds"])
        rl_best = max(c["rl"] for c in r["chunks"])
        sft_best = max(c["sft"] for c in r["chunks"])
        print(
            f"| {r['seed']} | {rounds} | {r['sft_checkpoint']:.2f} | {rl_best:.2f} | {sft_best:.2f} |"
        )
    wins = sum(
        max(c["rl"] for c in r["chunks"])
        > max(r["sft_checkpoint"], *(c["sft"] for c in r["chunks"]))
        for r in results
    )
    print(f"RL above both the SFT checkpoint and continued SFT in {wins}/{len(results)} seeds")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
