"""Train with tinker-cookbook's unmodified supervised loop against `evaltune serve`.

`tinker_cookbook.supervised.train` talks to Tinker through the official SDK; pointed at
`evaltune serve` it trains a LoRA adapter on this machine instead of in the cloud. Nothing in
the cookbook is patched: the only inputs are `TINKER_BASE_URL` and `TINKER_API_KEY`.

tinker-cookbook pins an older transformers than evaltune needs, so it lives in its own virtual
environment (evaltune itself is not installed there):

    python -m venv ~/.cache/evaltune/cookbook-venv
    ~/.cache/evaltune/cookbook-venv/bin/pip install torch==2.13.0 tinker==0.38.0 tinker-cookbook

1. Start the server (in evaltune's environment); it prints the API key:

    evaltune serve --base-model gemma-3-270m

2. Run this script with the cookbook environment's Python. `--model` must be a name the
   cookbook can load a tokenizer for: for evaltune's built-in alias, pass the converted folder
   (`evaltune models` shows the cache; the server accepts its folder as the model's name):

    TINKER_BASE_URL=http://127.0.0.1:8000 TINKER_API_KEY=tml-... \\
        ~/.cache/evaltune/cookbook-venv/bin/python examples/cookbook/sft_against_serve.py \\
        --model ~/.cache/evaltune/models/gemma-3-270m --log-path /tmp/cookbook-sft --max-steps 8

It trains on the cookbook's example conversations (or `--data FILE.jsonl` in the same
`{"messages": [...]}` format) with the `role_colon` renderer, and prints the final checkpoint's
`tinker://` paths, which the server's OpenAI routes also answer as `<model_id>/final`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from importlib import resources
from pathlib import Path

from tinker_cookbook.renderers import TrainOnWhat
from tinker_cookbook.supervised import train
from tinker_cookbook.supervised.data import FromConversationFileBuilder
from tinker_cookbook.supervised.types import ChatDatasetBuilderCommonConfig


def parse_args() -> argparse.Namespace:
    default_data = resources.files("tinker_cookbook") / "example_data" / "conversations.jsonl"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="base model name the server serves")
    p.add_argument("--log-path", required=True, help="cookbook run folder (must not exist)")
    p.add_argument("--data", default=str(default_data), help="JSONL of {'messages': [...]}")
    p.add_argument("--base-url", default=os.environ.get("TINKER_BASE_URL"))
    p.add_argument("--max-steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=512, help="tokens per example")
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--rank", type=int, default=8)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if not os.environ.get("TINKER_API_KEY"):
        raise SystemExit("set TINKER_API_KEY to the key evaltune serve printed at start-up")
    common = ChatDatasetBuilderCommonConfig(
        model_name_for_tokenizer=args.model,
        renderer_name="role_colon",
        max_length=args.max_length,
        batch_size=args.batch_size,
        train_on_what=TrainOnWhat.ALL_ASSISTANT_MESSAGES,
    )
    config = train.Config(
        log_path=args.log_path,
        model_name=args.model,
        recipe_name="evaltune_serve_sft",
        renderer_name="role_colon",
        dataset_builder=FromConversationFileBuilder(common_config=common, file_path=args.data),
        learning_rate=args.learning_rate,
        lora_rank=args.rank,
        base_url=args.base_url,
        max_steps=args.max_steps,
        eval_every=0,
        infrequent_eval_every=0,
    )
    asyncio.run(train.main(config))
    metrics = [json.loads(line) for line in (Path(args.log_path) / "metrics.jsonl").open()]
    losses = [m["train_mean_nll"] for m in metrics if "train_mean_nll" in m]
    print(f"train_mean_nll by step: {', '.join(f'{x:.3f}' for x in losses)}")
    last = (Path(args.log_path) / "checkpoints.jsonl").read_text().splitlines()[-1]
    print(f"final checkpoint: {json.loads(last)}")


if __name__ == "__main__":
    main()
