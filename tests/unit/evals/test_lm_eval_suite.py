"""lm-evaluation-harness tasks on local files as evaltune suites, on the tiny model through the
local backend: loglikelihoods equal a plain transformers computation, greedy checks and
generations match the sampler's, records and metrics land in an ``EvalResult``, and a missing
extra or an unknown task is an ``EvalError`` that says what to do."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tinker import types

from evaltune.backends.local import ServiceClient
from evaltune.errors import EvalError
from evaltune.evals.lm_eval_suite import _lm_class, load_lm_eval_suite
from lm_eval_tasks import ITEMS, reference_loglikelihood, write_tasks

pytest.importorskip("lm_eval")


@pytest.fixture(scope="module")
def sampler(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    service = ServiceClient(checkpoint_dir=tmp_path_factory.mktemp("ckpt"))
    return service.create_sampling_client(base_model=str(tiny_model_dir)).result()


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_tasks(tmp_path_factory.mktemp("lm-eval-tasks")))


def test_loglikelihood_equals_a_plain_transformers_computation(
    sampler: Any, tiny_model_dir: Path
) -> None:
    lm = _lm_class()(sampler, {"greedy"})
    requests = [
        SimpleNamespace(args=("Question: What is two plus two?\nAnswer:", " four"), task_name="t"),
        SimpleNamespace(args=("The quick brown fox ", "jumps"), task_name="greedy"),
    ]
    (four, greedy_four), (jumps, greedy_jumps) = lm.loglikelihood(requests)
    assert four == pytest.approx(
        reference_loglikelihood(tiny_model_dir, *requests[0].args), abs=1e-4
    )
    # a trailing space of the context belongs to the continuation, as the harness splits pairs
    assert jumps == pytest.approx(
        reference_loglikelihood(tiny_model_dir, "The quick brown fox", " jumps"), abs=1e-4
    )
    assert greedy_four is False  # not asked for: only loglikelihood tasks read is_greedy
    tok = sampler.get_tokenizer()
    target = tok.encode(" jumps", add_special_tokens=False)
    drawn = sampler.sample(
        types.ModelInput.from_ints(tok.encode("The quick brown fox", add_special_tokens=False)),
        1, types.SamplingParams(max_tokens=len(target), temperature=0.0, stop=[]),
    ).result().sequences[0].tokens  # fmt: skip
    assert greedy_jumps == (drawn == target)


def test_tasks_on_local_files_run_as_suites(sampler: Any, tasks: str) -> None:
    mc = load_lm_eval_suite("mc", "tiny_mc", include_path=tasks).evaluate(sampler, model_path="b")
    assert mc.metrics["n"] == len(ITEMS) and {"acc", "acc_norm"} <= set(mc.metrics)
    assert mc.metrics["accuracy"] == mc.metrics["acc"]  # the first metric is the score
    for record, item in zip(mc.records, ITEMS, strict=True):
        assert record.target == item["choices"][item["answer"]]
        assert record.response in item["choices"] and record.prompt.startswith("Question: ")
    assert mc.provenance == {"kind": "lm_eval", "task": "tiny_mc", "include_path": tasks}

    gen = load_lm_eval_suite("gen", "tiny_gen", include_path=tasks).evaluate(sampler)
    tok = sampler.get_tokenizer()
    prompt = tok.encode(f"Question: {ITEMS[0]['question']}\nAnswer:", add_special_tokens=True)
    drawn = sampler.sample(
        types.ModelInput.from_ints(prompt), 1,
        types.SamplingParams(max_tokens=8, temperature=0.0, stop=["\n"]),
    ).result().sequences[0].tokens  # fmt: skip
    assert gen.records[0].response == tok.decode(drawn, skip_special_tokens=True).split("\n")[0]
    assert set(gen.metrics) >= {"exact_match", "accuracy"}

    ll = load_lm_eval_suite("ll", "tiny_ll", include_path=tasks, limit=2).evaluate(sampler)
    assert ll.metrics["n"] == 2 and "acc" in ll.metrics


def test_a_missing_extra_or_task_says_what_to_do(
    tasks: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EvalError, match=r"'nope'.*not a registered task"):
        load_lm_eval_suite("x", "nope", include_path=tasks)
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if the extra were not installed
    with pytest.raises(EvalError, match=r"pip install 'evaltune\[lm-eval\]'"):
        load_lm_eval_suite("x", "tiny_mc", include_path=tasks)
