"""Writes this example's data: two-digit addition, 64 training and 50 held-out questions.

    python examples/rl_arithmetic/make_data.py

The task was chosen before any run: sums of two two-digit numbers are learnable by Gemma 3
270M, but slowly (in benchmarks/tasks/mixed6 SFT brought them from 0 to 0.1–0.5 over many
rounds), and a program grades them exactly, so RL has a verifiable reward.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    rng = random.Random(2026)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < 114:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if (a, b) not in pairs and (b, a) not in pairs:
            pairs.append((a, b))
    for name, chunk in (("train", pairs[:64]), ("eval", pairs[64:])):
        rows = [
            {"id": f"{name}-{i}", "question": f"What is {a} plus {b}?", "answer": str(a + b)}
            for i, (a, b) in enumerate(chunk)
        ]
        (HERE / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
