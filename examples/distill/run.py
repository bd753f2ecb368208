"""On-policy distillation end to end on the embedded Gemma 3 270M.

    python examples/distill/run.py [--workspace DIR]

1. The teacher: the embedded demo's loop (``examples/demo/config.yaml``), whose best round is an
   adapter that answers the demo's questions;
2. the student: ``examples/distill/config.yaml``, a fresh adapter trained by on-policy
   distillation from that teacher (``distill.teacher`` = the teacher's adapter folder).

Prints the teacher's and the student's held-out accuracy (the base model's too) and the
student's reverse KL to the teacher per token, first step → last, per round: the metric
distillation optimises, which should fall.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from evaltune.config import load_config
from evaltune.loop import run_loop

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="evaltune-distill-"))
    teacher_run = run_loop(
        load_config(
            HERE.parent / "demo" / "config.yaml",
            [f"output.workspace={workspace}", "output.run_name=teacher"],
        )
    )
    teacher = json.loads((teacher_run.path / "summary.json").read_text())
    folder = teacher["best"]["checkpoint"]["sampler_folder"]
    student_run = run_loop(
        load_config(
            HERE / "config.yaml",
            [f"output.workspace={workspace}", f"distill.teacher={folder}"],
        )
    )
    student = json.loads((student_run.path / "summary.json").read_text())

    def acc(rd: dict) -> float:
        return rd["evals"]["demo"]["metrics"]["accuracy"]

    print(f"teacher: {folder}")
    print(f"base model accuracy: {acc(student['rounds'][0]):.3f}")
    print(f"teacher accuracy: {max(acc(r) for r in teacher['rounds'][1:]):.3f}")
    for rd in student["rounds"][1:]:
        t = rd["train"]
        print(
            f"student round {rd['round']}: reverse KL {t['first_reverse_kl']:.3f} → "
            f"{t['final_reverse_kl']:.3f} per token; accuracy {acc(rd):.3f}"
        )


if __name__ == "__main__":
    main()
