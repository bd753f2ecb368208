"""OpenAI fine-tuning jobs on ``evaltune serve``: the ``JobRunner`` that runs one as a loop run.

A job becomes a run config (``job_config``):

- ``training_file`` is ``data.train``; ``validation_file`` is ``data.validation`` (validation
  loss) and the target suite, graded ``normalized`` to a threshold of 1.0. Without a validation
  file, ``HOLD_OUT`` of the training examples (at least one, at most ``MAX_HELD_OUT``, picked
  with the job's seed) are held out as that suite: the loop needs items it did not train on to
  decide, and an event says how many;
- ``n_epochs`` is the most rounds (``auto``: ``EPOCHS``), each one pass over the data
  (``steps_per_round``: examples / batch size, rounded up); ``batch_size`` (``auto``: 8, at
  most the examples); ``learning_rate_multiplier`` × ``BASE_LR`` (``auto``: evaltune's
  ``learning_rate: auto``, its probe); ``seed`` → ``training.seed``;
- ``method: dpo``: the files hold OpenAI's preference examples; each becomes a pair
  (``dpo.pairs``: the user message, the preferred and the non-preferred answer) and a chat
  example of its preferred answer (``data.train``, what the learning-rate probe reads); the
  held-out and validation items are the preferred answers; every round is a DPO round
  (``training.method: dpo``, one pass over the pairs) with ``beta`` (``auto``: 0.1);
- the request's ``evaltune`` field is merged on top: any run config key but ``base_model``,
  ``backend``, ``tinker``, ``output`` and the job's own data files, so eval suites (``evals``,
  OpenAI graders among them), targets, loop rules and LoRA settings come from the job.

The run lives in the job's folder (``work/runs/<run-id>``); after a restart the server calls
``run`` again and the run resumes (``loop.resume_run``: no optimizer step repeated). While it
runs, the loop's messages become job events, each training step a ``metrics`` event, each
evaluated round a checkpoint (its adapter, with train loss, validation loss and eval metrics);
what was already reported is remembered in ``work/reported.json``. The job's model is the run's
best round, found as ``serve --runs`` finds it (``export.run_adapters``).
"""

from __future__ import annotations

import json
import math
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from evaltune.backends.local import checkpoint_folder
from evaltune.config import RunConfig, load_config
from evaltune.data import load_many
from evaltune.errors import ConfigError, DataError, EvaltuneError
from evaltune.evals import make_grader
from evaltune.export import run_adapters
from evaltune.files import write_bytes_atomic
from evaltune.loop import resume_run, run_loop
from evaltune.server.jobs import JobOutcome, JobReport, JobSpec
from evaltune.server.uploads import file_kind, preference_parts

__all__ = ["BASE_LR", "EPOCHS", "LoopJobRunner", "job_config"]

BASE_LR = 2e-4  # what learning_rate_multiplier multiplies: a common LoRA learning rate
BETA = 0.1  # DPO's beta when a dpo job leaves it auto
EPOCHS = 3
HOLD_OUT = 0.1
MAX_HELD_OUT = 50
FIXED = ("base_model", "backend", "tinker", "output")
# eval metrics a checkpoint leaves out (the run's report has them): intervals and counts
_NOT_REPORTED = ("_ci_low", "_ci_high", "_n", "truncated_fraction", "mean_response_tokens")


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _merge(base: dict[str, Any], extra: dict[str, Any], where: str = "evaltune") -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def _check_extension(extension: dict[str, Any]) -> None:
    fixed = [k for k in FIXED if k in extension]
    data = extension.get("data") or {}
    fixed += [f"data.{k}" for k in ("train", "validation") if isinstance(data, dict) and k in data]
    if fixed:
        raise ConfigError(
            f"evaltune.{fixed[0]}: set by the job itself (model, training_file, "
            "validation_file; the run lives in the job's folder); leave it out"
        )


def _chat_line(line: str) -> str:
    """A preference example's preferred answer as a chat example."""
    prompt, chosen, _ = preference_parts(json.loads(line))
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}]
    return json.dumps({"messages": messages})


def _write_lines(path: Path, lines: list[str]) -> Path:
    write_bytes_atomic(path, ("\n".join(lines) + "\n").encode())
    return path


def _dpo_files(
    spec: JobSpec, work: Path, lines: list[str], suite: Path | None, config: dict[str, Any]
) -> None:
    """``config`` for a dpo job: its kept preference examples (``lines``) as pairs and as chat
    examples of the preferred answers, the eval and validation files as chat examples."""
    parts = [preference_parts(json.loads(x)) for x in lines]
    pairs = [json.dumps({"prompt": p, "chosen": c, "rejected": r}) for p, c, r in parts]
    chosen = [_chat_line(x) for x in lines]
    config["data"]["train"] = str(_write_lines(work / "chosen.jsonl", chosen))
    beta = spec.hyperparameters.get("beta", "auto")
    config["training"]["method"] = "dpo"
    config["dpo"] = {
        "pairs": [str(_write_lines(work / "pairs.jsonl", pairs))],
        "beta": BETA if beta == "auto" else beta,
        "steps_per_round": config["training"]["steps_per_round"],  # one pass, as SFT's
    }
    if spec.validation_file is not None:
        chat = [_chat_line(x) for x in _lines(spec.validation_file)]
        config["data"]["validation"] = [str(_write_lines(work / "validation.jsonl", chat))]
    if suite is not None and "evals" in config:
        chat = [_chat_line(x) for x in _lines(suite)]
        config["evals"][0]["file"] = str(_write_lines(work / "eval_items.jsonl", chat))


def job_config(spec: JobSpec, work: Path) -> tuple[dict[str, Any], list[str]]:
    """The run config for ``spec`` (files it needs written under ``work``) and notes for the
    job's events."""
    _check_extension(spec.extension)
    hyper, notes = spec.hyperparameters, []
    train_path, lines = spec.training_file, _lines(spec.training_file)
    suite_file = spec.validation_file
    if suite_file is None and "evals" not in spec.extension:
        if len(lines) < 2:
            raise DataError("a job without a validation_file needs at least 2 training examples "
                            "(some are held out to evaluate each round)")  # fmt: skip
        held = min(MAX_HELD_OUT, max(1, round(len(lines) * HOLD_OUT)))
        picked = set(random.Random(spec.seed).sample(range(len(lines)), held))
        train_path, suite_file = work / "train.jsonl", work / "held_out.jsonl"
        kept = [line for i, line in enumerate(lines) if i not in picked]
        _write_lines(train_path, kept)
        _write_lines(suite_file, [lines[i] for i in sorted(picked)])
        notes.append(f"no validation_file: {held} of {len(lines)} training examples are held out "
                     "to evaluate each round")  # fmt: skip
        lines = kept
    batch = min(8, len(lines)) if hyper["batch_size"] == "auto" else hyper["batch_size"]
    multiplier = hyper["learning_rate_multiplier"]
    config: dict[str, Any] = {
        "base_model": spec.base_model,
        "data": {"train": str(train_path), "renderer": "auto"},
        "training": {
            "batch_size": batch,
            "steps_per_round": max(1, math.ceil(len(lines) / batch)),
            "learning_rate": "auto" if multiplier == "auto" else multiplier * BASE_LR,
            "seed": spec.seed,
        },
        "loop": {
            "max_rounds": EPOCHS if hyper["n_epochs"] == "auto" else hyper["n_epochs"],
            "selection": {"strategy": "none"},
        },
        "output": {"workspace": str(work), "run_name": spec.id},
    }
    if spec.validation_file is not None:
        config["data"]["validation"] = [str(spec.validation_file)]
    if suite_file is not None:
        name = "validation" if spec.validation_file else "held_out"
        config["evals"] = [{"name": name, "file": str(suite_file), "threshold": 1.0}]
    if spec.method == "dpo":
        _dpo_files(spec, work, lines, suite_file, config)
    return _merge(config, spec.extension), notes


def _load(config: dict[str, Any], work: Path) -> RunConfig:
    """``config`` validated; errors name the job's keys, not a file of ours."""
    path = work / "config.yaml"
    write_bytes_atomic(path, yaml.safe_dump(config, sort_keys=False).encode())
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        text = re.sub(rf"{re.escape(str(path))}(:\d+)?:\s*", "", str(exc))
        raise ConfigError(
            f"the job's run config (the evaltune field on top of the job): {text}"
        ) from None
    for i, suite in enumerate(cfg.evals):
        if getattr(suite, "grader", None) == "openai":  # parse the grader JSON now, not mid-run
            try:
                make_grader("openai", **suite.grader_options, openai_grader=suite.openai_grader)
            except EvaltuneError as exc:
                raise ConfigError(f"evaltune.evals[{i}] ({suite.name}): {exc}") from None
    return cfg


class LoopJobRunner:
    """``server.jobs.JobRunner`` on the evaltune loop (see the module docstring)."""

    def check_file(self, path: Path, filename: str) -> None:
        if file_kind(path) == "preference":
            return  # checked by line and field at upload; a dpo job turns it into pairs
        try:
            load_many([str(path)])
        except DataError as exc:
            raise DataError(str(exc).replace(str(path), filename)) from None

    def check_job(self, spec: JobSpec) -> None:
        with tempfile.TemporaryDirectory(prefix="evaltune-job-") as tmp:
            config, _ = job_config(spec, Path(tmp))
            _load(config, Path(tmp))

    def run(self, spec: JobSpec, folder: Path, report: JobReport) -> JobOutcome:
        folder.mkdir(parents=True, exist_ok=True)
        progress = _Progress(report, folder)
        existing = progress.find_run()
        if existing is not None:  # a restart: the run is there, resume it
            run_path = resume_run(existing, progress).path
        else:
            config, notes = job_config(spec, folder)
            for note in notes:
                report.event(note)
            run_path = run_loop(_load(config, folder), progress).path
        progress.sync()
        state = json.loads((run_path / "state.json").read_text())
        if state["status"] != "finished":
            raise EvaltuneError(f"the run stopped before it finished: {state.get('error')}")
        adapter = run_adapters(folder).get(run_path.name)
        if adapter is None:
            raise EvaltuneError(f"run {run_path.name} finished without a trained round to serve")
        cfg = load_config(run_path / "config.yaml")
        lr = cfg.training.learning_rate
        hyper: dict[str, Any] = {
            "n_epochs": cfg.loop.max_rounds,
            "batch_size": cfg.training.batch_size,
            "learning_rate_multiplier": (lr / BASE_LR) if isinstance(lr, float) else lr,
        }
        if spec.method == "dpo":
            hyper["beta"] = cfg.dpo.beta
        return JobOutcome(adapter, int(state.get("tokens") or 0), hyper)


class _Progress:
    """The loop's ``Reporter`` for a job: messages → events, steps → metrics events, evaluated
    rounds → checkpoints; ``check_stop`` at every call, so a cancel lands within a step."""

    def __init__(self, report: JobReport, work: Path) -> None:
        self.report = report
        self.work = work
        self.run: Path | None = None
        self._seen_path = work / "reported.json"
        seen = json.loads(self._seen_path.read_text()) if self._seen_path.is_file() else {}
        self.offset: int = seen.get("offset", 0)  # bytes of events.jsonl already read
        self.rounds: list[int] = seen.get("rounds", [])  # rounds already reported
        self.unsaved = False  # read further than reported.json says

    def message(self, text: str) -> None:
        self.report.check_stop()
        self.report.event(text)
        self.sync()

    def start(self, task: str, description: str, total: int) -> None:
        self.report.check_stop()

    def advance(self, task: str, completed: int, info: str = "") -> None:
        self.report.check_stop()
        if task.startswith("train-"):
            self.sync(every_step=True)

    def finish(self, task: str) -> None:
        self.sync()

    def find_run(self) -> Path | None:
        """The job's run folder, once the loop has made it (one run per job)."""
        if self.run is None:
            runs = sorted((self.work / "runs").glob("*/state.json"))
            self.run = runs[0].parent if runs else None
        return self.run

    def sync(self, every_step: bool = False) -> None:
        """Report the run's new step events and newly evaluated rounds; remember how far it
        got (not at ``every_step``: a restart may repeat a few step events, never a round)."""
        if self.find_run() is None:
            return
        self.unsaved |= self._steps()
        state = json.loads((self.run / "state.json").read_text())
        done = 0
        for record in state["rounds"]:
            done += record.get("steps") or 0
            if record["round"] == 0 or record["phase"] == "trained":
                continue
            if record["round"] not in self.rounds:
                self._checkpoint(record, done)
                self.rounds.append(record["round"])
                self.unsaved = True
        if self.unsaved and not every_step:
            seen = {"offset": self.offset, "rounds": self.rounds}
            write_bytes_atomic(self._seen_path, json.dumps(seen).encode())
            self.unsaved = False

    def _steps(self) -> bool:
        """The step events appended to the run's ``events.jsonl`` since the last call."""
        assert self.run is not None
        path = self.run / "events.jsonl"
        if not path.is_file():
            return False
        with open(path, "rb") as f:
            f.seek(self.offset)
            new = f.read()
        whole = new[: new.rfind(b"\n") + 1]  # a line still being written waits
        self.offset += len(whole)
        for line in whole.decode("utf-8").splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            if e.get("event") == "step":
                # train/… for SFT rounds, dpo/…, rl/…, distill/… for the other methods
                prefix = next((k[:-5] for k in e if k.endswith("/step")), "train")
                step, loss = e.get(f"{prefix}/step"), e.get(f"{prefix}/loss")
                shown = f"{loss:.4f}" if isinstance(loss, int | float) else "n/a"
                self.report.event(
                    f"Step {step}: training loss={shown}",
                    data={"step": step, "train_loss": loss, "learning_rate": e.get(f"{prefix}/lr")},
                    kind="metrics",
                )
        return bool(whole)

    def _checkpoint(self, record: dict[str, Any], step: int) -> None:
        assert self.run is not None
        ckpt = record["checkpoint"]
        folder = ckpt.get("sampler_folder") or checkpoint_folder(
            ckpt["sampler"], self.run / "checkpoints"
        )
        metrics: dict[str, float] = {}
        if (record.get("train") or {}).get("final_loss") is not None:
            metrics["train_loss"] = record["train"]["final_loss"]
        if record.get("val_nll") is not None:
            metrics["valid_loss"] = metrics["full_valid_loss"] = record["val_nll"]
        for suite, summary in (record.get("evals") or {}).items():
            for name, value in (summary.get("metrics") or {}).items():
                reported = name != "n" and not name.endswith(_NOT_REPORTED)
                if isinstance(value, int | float) and reported:
                    metrics[f"eval/{suite}/{name}"] = float(value)
        self.report.checkpoint(step, metrics, Path(folder))
