"""lm-evaluation-harness tasks as suites: ``load_lm_eval_suite(name, task, include_path=...)``.

A harness task (registered, or defined by the YAML files in ``include_path``, such as a task on
local files: ``dataset_path: json`` with ``data_files``) runs through the harness's own
evaluator against a SamplingClient, via an lm-eval ``LM`` on evaltune's client contract:

- ``loglikelihood``: the continuation's token logprobs from ``compute_logprobs`` on context +
  continuation (Tinker's prompt-logprob path; every request is submitted before any result is
  awaited, so the local engine batches them). ``is_greedy``, which only ``output_type:
  loglikelihood`` tasks read, comes from a greedy sample of the continuation's length;
- ``loglikelihood_rolling``: the logprobs of the whole text after a BOS (perplexity tasks);
- ``generate_until``: one sample with ``until`` as stop strings, ``max_gen_toks`` and
  ``temperature`` (default 0: greedy), the stop string cut off as the harness expects.

Text is split into tokens with the sampler's tokenizer as the harness splits a pair: spaces
that end the context move to the continuation, then the continuation is what encoding the
whole adds after the context's tokens.

Each document becomes a ``SampleRecord``: its id, the context, the answer (the generated text,
or the choice with the highest loglikelihood), the target, the task's first metric as the score
(clamped to [0, 1]) and every numeric metric as a per-sample metric, so the harness's metrics
become the suite's (their means) in an ``EvalResult`` like any other. The documents are not
evaltune examples (``examples`` is empty), so training data is not checked against them, as
for Inspect tasks. Needs ``pip install 'evaltune[lm-eval]'``: without it, loading is an
``EvalError`` that says so.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinker import types

from evaltune.backends.contract import SamplingClient
from evaltune.data import Example
from evaltune.errors import EvalError
from evaltune.evals.result import EvalResult, SampleRecord, is_correct

__all__ = ["INSTALL_HINT", "LmEvalSuite", "import_lm_eval", "load_lm_eval_suite"]

INSTALL_HINT = "install lm-evaluation-harness: pip install 'evaltune[lm-eval]'"
DEFAULT_MAX_GEN = 256


def import_lm_eval() -> Any:
    """The ``lm_eval`` module, or an ``EvalError`` naming the extra to install."""
    try:
        import lm_eval
        import lm_eval.api.model
    except ImportError:
        raise EvalError(f"lm_eval suites need lm-evaluation-harness; {INSTALL_HINT}") from None
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its notes are not a run's to print
    return lm_eval


def _pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    prefix = tokenizer.encode(context, add_special_tokens=False) if context else []
    if not prefix and tokenizer.bos_token_id is not None:
        prefix = [tokenizer.bos_token_id]  # nothing to condition on: start from BOS
        whole = prefix + whole
    return whole[: len(prefix)], whole[len(prefix) :]


def _lm_class() -> type:
    """``SamplerLM``, made once lm_eval is importable (the extra is optional)."""
    lm_eval = import_lm_eval()

    class SamplerLM(lm_eval.api.model.LM):  # type: ignore[misc, name-defined]
        def __init__(self, sampler: SamplingClient, greedy_tasks: set[str]) -> None:
            super().__init__()
            self.sampler = sampler
            self.tokenizer = sampler.get_tokenizer()
            self.greedy_tasks = greedy_tasks

        def _ints(self, tokens: list[int]) -> types.ModelInput:
            return types.ModelInput.from_ints(tokens)

        def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list:
            pairs = [_pair(self.tokenizer, *r.args) for r in requests]
            scored = [self.sampler.compute_logprobs(self._ints(c + x)) for c, x in pairs]
            greedy_params = types.SamplingParams(max_tokens=1, temperature=0.0, stop=[])
            greedy = [
                self.sampler.sample(
                    self._ints(c), 1, greedy_params.model_copy(update={"max_tokens": len(x)})
                )
                if r.task_name in self.greedy_tasks
                else None
                for r, (c, x) in zip(requests, pairs, strict=True)
            ]
            out = []
            for (c, x), future, sample in zip(pairs, scored, greedy, strict=True):
                lps = list(future.result())[len(c) :]
                is_greedy = sample is not None and sample.result().sequences[0].tokens == x
                out.append((float(sum(lp or 0.0 for lp in lps)), bool(is_greedy)))
            return out

        def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False):
            bos = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
            futures = [
                self.sampler.compute_logprobs(
                    self._ints(bos + self.tokenizer.encode(r.args[0], add_special_tokens=False))
                )
                for r in requests
            ]
            return [float(sum(lp or 0.0 for lp in f.result())) for f in futures]

        def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list:
            futures = []
            for r in requests:
                context, kwargs = r.args[0], dict(r.args[1] or {})
                until = kwargs.get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                params = types.SamplingParams(
                    max_tokens=int(kwargs.get("max_gen_toks", DEFAULT_MAX_GEN)),
                    temperature=float(kwargs.get("temperature", 0.0)),
                    stop=until or None,
                )
                prompt = self.tokenizer.encode(context, add_special_tokens=True)
                futures.append((self.sampler.sample(self._ints(prompt), 1, params), until))
            out = []
            for future, until in futures:
                tokens = future.result().sequences[0].tokens
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                cuts = [i for i in (text.find(s) for s in until) if i >= 0]
                out.append(text[: min(cuts)] if cuts else text)
            return out

    return SamplerLM


@functools.cache
def _manager(include_path: str | None, defaults: bool) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=defaults)


def _load_task(task: str, include_path: str | None) -> Any:
    """``task`` from ``include_path`` alone when it is there (indexing the harness's thousands
    of built-in tasks takes seconds), else from the built-in ones too."""
    if include_path is not None and task in _manager(include_path, False).all_tasks:
        return _manager(include_path, False).load([task])
    return _manager(include_path, True).load([task])


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) else None


def _record(sample: dict[str, Any]) -> SampleRecord:
    """One harness sample (its in-process form: ``arguments`` as a list of request args)."""
    args = [tuple(a) for a in sample.get("arguments") or []]
    responses = sample.get("filtered_resps") or []
    target = str(sample.get("target", ""))
    if target.isdigit() and int(target) < len(args) and len(args) == len(responses):
        target = str(args[int(target)][1]).strip()  # a choice's index: the choice itself
    if responses and isinstance(responses[0], str):
        response = responses[0]
    elif responses and all(isinstance(r, list | tuple) and r for r in responses):
        best = max(range(len(responses)), key=lambda i: float(responses[i][0]))
        response = str(args[best][1]).strip() if best < len(args) else str(best)
    else:
        response = str(responses[0]) if responses else ""
    metrics = {m: v for m in sample.get("metrics", []) if (v := _number(sample.get(m))) is not None}
    names = [m for m in sample.get("metrics", []) if m in metrics]
    score = min(1.0, max(0.0, metrics[names[0]])) if names else 0.0
    return SampleRecord(
        id=str(sample.get("doc_id")),
        prompt=str(args[0][0]) if args else "",
        response=response,
        target=target,
        score=score,
        correct=is_correct(score),
        detail=", ".join(f"{m} {v:g}" for m, v in metrics.items()),
        metrics=metrics,
    )


@dataclass(frozen=True)
class LmEvalSuite:
    """An lm-evaluation-harness task as an evaltune ``Suite`` (module docstring)."""

    name: str
    task: str
    include_path: str | None = None
    limit: int | None = None
    examples: list[Example] = field(default_factory=list)
    kind: str = field(default="lm_eval", init=False)

    def _task(self) -> tuple[Any, Any]:
        """The harness and the task, loaded (its ``TaskDict``)."""
        lm_eval = import_lm_eval()
        try:
            tasks = _load_task(self.task, self.include_path)
        except (KeyError, ValueError, FileNotFoundError) as exc:
            where = f" (include_path {self.include_path})" if self.include_path else ""
            raise EvalError(f"lm_eval task {self.task!r}{where}: {exc}") from None
        return lm_eval, tasks

    @property
    def suite_hash(self) -> str:
        """The task's configuration, as the harness loaded it."""
        _, tasks = self._task()
        configs = {k: v.dump_config() for k, v in tasks["tasks"].items()}
        text = json.dumps(configs, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def evaluate(
        self,
        sampler: SamplingClient,
        *,
        model_path: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        log_dir: Path | None = None,
    ) -> EvalResult:
        lm_eval, tasks = self._task()
        from lm_eval import evaluator

        greedy = {n for n, t in tasks["tasks"].items() if t.OUTPUT_TYPE == "loglikelihood"}
        lm = _lm_class()(sampler, greedy)
        results = evaluator.evaluate(
            lm, tasks, limit=self.limit, log_samples=True, verbosity="WARNING"
        )
        if not results or not results.get("samples"):
            raise EvalError(f"lm_eval task {self.task!r} produced no samples")
        samples = [s for task_samples in results["samples"].values() for s in task_samples]
        records = [_record(s) for s in samples]
        if progress is not None:
            progress(len(records), len(records))
        return EvalResult.from_records(
            self.name,
            records,
            model_path=model_path,
            sampling={"temperature": 0.0, "harness": f"lm_eval {lm_eval.__version__}"},
            suite_hash=self.suite_hash,
            provenance={"kind": "lm_eval", "task": self.task, "include_path": self.include_path},
        )


def load_lm_eval_suite(
    name: str, task: str, *, include_path: str | None = None, limit: int | None = None
) -> LmEvalSuite:
    """The suite for harness task ``task``; the task is loaded now, so a wrong name or a
    missing extra is an ``EvalError`` here rather than in a round."""
    suite = LmEvalSuite(name, task, include_path, limit)
    suite._task()
    return suite
