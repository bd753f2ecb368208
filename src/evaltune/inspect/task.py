"""Run an Inspect task against a SamplingClient and read its log back as an ``EvalResult``.

This is what a config suite ``inspect: TASK`` does each round: the task (``file.py``,
``file.py@name`` or a registered name such as ``inspect_evals/gsm8k``) runs through
``inspect_ai.eval`` on the ``evaltune`` provider wrapped around the run's own SamplingClient and
renderer, so the base model, every checkpoint, and local or Tinker backends are measured the
same way. Inspect's log is written to ``log_dir`` (the round's ``eval/`` folder in a run), then
read back with its samples and converted by ``logs.result_from_log``. ``InspectSuite`` is that
suite as the loop holds it (``evals.Suite``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaltune.backends.contract import SamplingClient
from evaltune.data import Example, Renderer
from evaltune.errors import EvalError
from evaltune.evals import EvalResult
from evaltune.inspect.logs import result_from_log

__all__ = ["INSTALL_HINT", "InspectSuite", "evaluate_task", "import_inspect", "resolve_task"]

INSTALL_HINT = "install Inspect AI: pip install 'evaltune[inspect]' (or pip install inspect-ai)"


def import_inspect() -> Any:
    """The ``inspect_ai`` module, or an ``EvalError`` naming the extra to install."""
    try:
        import inspect_ai
    except ImportError:
        raise EvalError(f"Inspect AI is not installed; {INSTALL_HINT}") from None
    return inspect_ai


def resolve_task(task: str) -> str:
    """``task`` as ``inspect_ai.eval`` takes it: a task file without ``@name`` becomes
    ``/abs/file.py@name`` (Inspect cannot glob an absolute path), checked to hold one task."""
    path = Path(task)
    if "@" in task or path.suffix != ".py":
        return task
    if not path.is_file():
        raise EvalError(f"Inspect task file {task} not found")
    from inspect_ai import list_tasks

    found = list_tasks(path.name, absolute=True, root_dir=path.parent.absolute())
    if len(found) != 1:
        names = ", ".join(t.name for t in found) or "none"
        raise EvalError(
            f"{task} defines {len(found)} Inspect tasks ({names}); name one as {task}@<task>"
        )
    return f"{path.absolute()}@{found[0].name}"


def evaluate_task(
    task: str,
    sampler: SamplingClient,
    renderer: Renderer,
    *,
    suite: str,
    model_name: str,
    model_path: str | None = None,
    task_args: Mapping[str, Any] | None = None,
    limit: int | None = None,
    max_tokens: int | None = None,
    temperature: float = 0.0,
    seed: int | None = None,
    max_connections: int = 64,
    log_dir: str | Path | None = None,
) -> EvalResult:
    """Run ``task`` on ``sampler`` (as ``evaltune/<model_name>``) and return its result.

    Samples in flight at once are capped by ``max_connections``; the local engine decodes the
    requests in flight together. Without ``log_dir`` the log goes to a temporary folder.
    """
    inspect_ai = import_inspect()
    spec = resolve_task(task)
    from inspect_ai.log import read_eval_log
    from inspect_ai.model import get_model

    model = get_model(f"evaltune/{model_name}", sampler=sampler, renderer=renderer, memoize=False)
    with tempfile.TemporaryDirectory(prefix="evaltune-inspect-") as tmp:
        folder = Path(log_dir) if log_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            logs = inspect_ai.eval(
                spec,
                model=model,
                task_args=dict(task_args or {}),
                limit=limit,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
                max_connections=max_connections,
                max_samples=max_connections,
                log_dir=str(folder),
                display="none",
                log_level="warning",
                score=True,
            )
        except EvalError:
            raise
        except Exception as exc:  # a task that cannot be found or built
            raise EvalError(f"suite {suite!r}: Inspect task {task!r} failed to run: {exc}") from exc
        if len(logs) != 1:
            raise EvalError(f"suite {suite!r}: {task!r} names {len(logs)} tasks; name one")
        log = logs[0]
        if log.location:
            log = read_eval_log(log.location)
        return result_from_log(log, suite=suite, model_path=model_path, renderer=renderer.name)


@dataclass(frozen=True)
class InspectSuite:
    """An Inspect task as an ``evals.Suite``: ``evaluate`` runs it on the sampler it is given,
    named ``evaltune/<model_path>`` (``base_model`` for the base). Its items are the task's own,
    so ``examples`` is empty; the log's own hash is stamped on each result."""

    name: str
    task: str
    renderer: Renderer
    base_model: str
    task_args: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    max_tokens: int | None = None  # None: the task's own
    temperature: float = 0.0
    seed: int | None = None
    examples: list[Example] = field(default_factory=list, init=False)
    kind: str = field(default="inspect", init=False)

    def evaluate(
        self,
        sampler: SamplingClient,
        *,
        model_path: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        log_dir: Path | None = None,
    ) -> EvalResult:
        return evaluate_task(
            self.task,
            sampler,
            self.renderer,
            suite=self.name,
            model_name=model_path or self.base_model,
            model_path=model_path,
            task_args=self.task_args,
            limit=self.limit,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            seed=self.seed,
            log_dir=log_dir,
        )
