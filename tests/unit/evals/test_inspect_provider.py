"""The ``evaltune`` Inspect provider, Inspect logs as EvalResults, and ``inspect:`` config suites,
in-process on the tiny model (Inspect's CLI is tested in tests/integration/test_inspect_cli.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.model import (
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    ContentImage,
    ContentText,
    GenerateConfig,
    get_model,
)
from inspect_ai.scorer import match
from inspect_ai.solver import generate
from tinker import types

from evaltune.backends.local import ServiceClient
from evaltune.config import load_config
from evaltune.config.schema import InspectSuiteConfig
from evaltune.data import Message, get_renderer
from evaltune.engine import get_engine
from evaltune.errors import ConfigError, EvalError
from evaltune.evals import EvalResult, compare_results
from evaltune.inspect import evaluate_task, result_from_log, score_value
from evaltune.inspect.provider import DEFAULT_MAX_TOKENS, sampling_params, to_messages
from evaltune.inspect.task import resolve_task
from evaltune.loop.context import build_suites

TASK_FILE = """
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def arithmetic(n: int = 4):
    return Task(
        dataset=[
            Sample(input=f"What is {i} plus {i}?", target=str(2 * i), id=f"q{i}",
                   metadata={"tags": ["even" if i % 2 == 0 else "odd"]})
            for i in range(n)
        ],
        solver=generate(),
        scorer=includes(),
    )
"""


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Path) -> str:
    return str(tiny_model_dir)


@pytest.fixture(scope="module")
def sampler(model_dir: str):
    return ServiceClient().create_sampling_client(base_model=model_dir).result()


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.py"
    path.write_text(TASK_FILE)
    return path


def _task(n: int) -> Task:
    dataset = [Sample(input=f"What is {i} plus {i}?", target=str(2 * i), id=i) for i in range(n)]
    return Task(dataset=dataset, solver=generate(), scorer=match())


def test_the_provider_is_an_inspect_entry_point() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="inspect_ai")}
    assert names.get("evaltune") == "evaltune.inspect.registry"


def test_generate_config_maps_onto_sampling_params(sampler) -> None:
    tok = sampler.get_tokenizer()
    role_colon = get_renderer("role_colon", tok)  # stops: EOS id and "\n\nUser:"
    config = GenerateConfig(
        max_tokens=12, temperature=0.0, top_p=0.9, top_k=5, seed=7, stop_seqs=["###"]
    )
    params = sampling_params(config, role_colon.stop_sequences, tok)
    assert (params.max_tokens, params.temperature, params.top_p, params.top_k, params.seed) == (
        12,
        0.0,
        0.9,
        5,
        7,
    )
    # Mixed ids and strings: the EOS id is spelled as its token text, so it still stops.
    assert params.stop == [tok.eos_token, "\n\nUser:", "###"]
    unset = sampling_params(GenerateConfig(), role_colon.stop_sequences, tok)
    assert (unset.max_tokens, unset.temperature, unset.top_p, unset.top_k, unset.seed) == (
        None,
        1.0,
        1.0,
        -1,
        None,
    )
    assert unset.stop == ["\n\nUser:"]  # no extra strings: the renderer's own stops


def test_messages_are_text_turns_only() -> None:
    assert to_messages([ChatMessageSystem(content="Be brief."), ChatMessageUser(content="Hi")]) == [
        Message("system", "Be brief."),
        Message("user", "Hi"),
    ]
    parts = [ContentText(text="a"), ContentText(text="b")]
    assert to_messages([ChatMessageUser(content=parts)])[0].role == "user"
    with pytest.raises(EvalError, match="tool calling is not supported"):
        to_messages([ChatMessageTool(content="42", tool_call_id="t1")])
    with pytest.raises(EvalError, match="text only"):
        to_messages([ChatMessageUser(content=[ContentImage(image="data:image/png;base64,AA")])])


def test_score_values_read_as_inspect_metrics_do() -> None:
    assert [score_value(v) for v in ("C", "I", "P", "N", True, False)] == [1, 0, 0.5, 0, 1, 0]
    assert score_value(0.25) == 0.25 and score_value(7) == 1.0 and score_value(-1) == 0.0
    assert score_value({"a": "C", "b": "I"}) == 0.5


def test_generate_equals_the_sampler_and_honours_the_config(
    model_dir: str, sampler, caplog: pytest.LogCaptureFixture
) -> None:
    model = get_model(f"evaltune/{model_dir}", memoize=False)
    config = GenerateConfig(max_tokens=8, temperature=0.0)
    out = asyncio.run(model.generate("What is 2 plus 2?", config=config))

    renderer = get_renderer("auto", sampler.get_tokenizer())  # no chat template: role_colon
    prompt = renderer.render_prompt([Message("user", "What is 2 plus 2?")])
    stop = ["\n\nUser:"]
    params = types.SamplingParams(max_tokens=8, temperature=0.0, stop=stop)
    direct = sampler.sample(types.ModelInput.from_ints(prompt), 1, params).result().sequences[0]
    assert out.completion == renderer.parse_response(direct.tokens)
    assert out.usage.input_tokens == len(prompt)
    assert out.usage.output_tokens == len(direct.tokens)
    assert out.choices[0].stop_reason == (
        "max_tokens" if direct.stop_reason == "length" else "stop"
    )

    two = asyncio.run(
        model.generate("Hi", config=GenerateConfig(max_tokens=6, num_choices=2, seed=3))
    )
    assert len(two.choices) == 2
    # Unset max_tokens: the provider's default (128), said once in the log.
    with caplog.at_level(logging.WARNING, logger="evaltune.inspect.provider"):
        free = asyncio.run(
            model.generate("Hi", config=GenerateConfig(temperature=0.0, logprobs=True))
        )
        asyncio.run(model.generate("Ho", config=GenerateConfig(temperature=0.0)))
    assert 0 < free.usage.output_tokens <= DEFAULT_MAX_TOKENS
    assert len(free.choices[0].logprobs.content) == free.usage.output_tokens
    said = [r.getMessage() for r in caplog.records if "sets no max_tokens" in r.getMessage()]
    assert len(said) == 1 and f"using {DEFAULT_MAX_TOKENS} new tokens" in said[0]
    words = out.completion.split()
    if len(words) > 1:  # a stop sequence cuts the text before it, as OpenAI's does
        cut = asyncio.run(
            model.generate(
                "What is 2 plus 2?", config=config.merge(GenerateConfig(stop_seqs=[words[1]]))
            )
        )
        assert words[1] not in cut.completion
        assert out.completion.startswith(cut.completion)


def test_provider_errors_are_clear(model_dir: str) -> None:
    # Inspect's CLI prints these as one message, without a traceback.
    with pytest.raises(Exception, match=r"unknown model args \['rendrer'\]; choose from renderer"):
        get_model(f"evaltune/{model_dir}", rendrer="role_colon", memoize=False)
    with pytest.raises(Exception, match="unknown renderer 'fancy'") as info:
        get_model(f"evaltune/{model_dir}", renderer="fancy", memoize=False)
    assert type(info.value).__name__ == "PrerequisiteError"


def test_concurrent_samples_decode_in_a_few_batches(model_dir: str, tmp_path: Path) -> None:
    engine = get_engine(model_dir)
    n = 24
    before = engine.batcher.batches_run
    (log,) = inspect_eval(
        _task(n),
        model=f"evaltune/{model_dir}",
        max_connections=n,
        max_tokens=6,
        temperature=0,
        log_dir=str(tmp_path),
        display="none",
    )
    batches = engine.batcher.batches_run - before
    assert log.status == "success", log.error
    assert len(log.samples) == n
    # One generate per sample would be 24 engine calls; Inspect's concurrency coalesces them.
    # (2 here, typically: the first request alone, then the 23 that arrived while it decoded.)
    assert batches <= n // 4, f"{batches} batched decodes for {n} samples"


def test_a_task_runs_on_a_sampler_and_reads_back_as_a_result(
    sampler, task_file: Path, tmp_path: Path
) -> None:
    renderer = get_renderer("auto", sampler.get_tokenizer())
    result = evaluate_task(
        str(task_file),
        sampler,
        renderer,
        suite="arith",
        model_name="tiny",
        task_args={"n": 6},
        max_tokens=6,
        log_dir=tmp_path / "logs",
    )
    assert result.suite == "arith" and result.metrics["n"] == 6
    assert [r.id for r in result.records] == [f"q{i}" for i in range(6)]
    for record in result.records:
        inspect_value = record.extra["inspect_scores"]["includes"]
        assert record.score == (1.0 if inspect_value == "C" else 0.0)
        assert record.correct == (record.target in record.response)  # includes(), as Inspect did
        assert record.num_tokens > 0 and record.prompt.startswith("What is")
    assert set(result.per_tag) == {"even", "odd"}
    assert result.sampling["max_tokens"] == 6 and result.sampling["temperature"] == 0.0
    prov = result.provenance
    assert prov["kind"] == "inspect" and prov["task"] == "arithmetic"
    assert prov["scorers"] == ["includes"] and prov["task_args"] == {"n": 6}
    assert Path(prov["log"]).is_file() and Path(prov["log"]).parent == tmp_path / "logs"
    assert len(result.suite_hash) == 64

    # It is an ordinary EvalResult: JSONL round trip, and comparable with another run.
    result.write_jsonl(tmp_path / "a.jsonl")
    again = EvalResult.read_jsonl(tmp_path / "a.jsonl")
    assert again == result
    comparison = compare_results(result, again)
    assert comparison.shared == 6 and not comparison.regressions


def test_task_names_are_resolved_or_refused(task_file: Path, tmp_path: Path) -> None:
    assert resolve_task(str(task_file)) == f"{task_file}@arithmetic"
    assert resolve_task("inspect_evals/gsm8k") == "inspect_evals/gsm8k"
    two = tmp_path / "two.py"
    two.write_text(TASK_FILE + "\n\n@task\ndef other():\n    return arithmetic(2)\n")
    with pytest.raises(EvalError, match=r"defines 2 Inspect tasks \(arithmetic, other\)"):
        resolve_task(str(two))
    with pytest.raises(EvalError, match="not found"):
        resolve_task(str(tmp_path / "missing.py"))


def test_a_failed_task_log_is_an_error() -> None:
    class Log:
        status = "error"
        error = type("E", (), {"message": "boom"})()
        eval = type("S", (), {"task": "t"})()

    with pytest.raises(EvalError, match=r"Inspect task 't' did not finish \(error\): boom"):
        result_from_log(Log())


# --- config suites: `inspect: TASK` -----------------------------------------------------------


def _config(tmp_path: Path, model: str, suite: dict) -> Path:
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"prompt": "What is 1 plus 1?", "completion": "2"}) + "\n"
    )
    cfg = {
        "base_model": model,
        "data": {"train": ["train.jsonl"], "renderer": "role_colon"},
        "evals": [{"name": "arith", "threshold": 0.5, **suite}],
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_an_inspect_suite_validates_and_rejects_mixed_sources(
    model_dir: str, task_file: Path
) -> None:
    folder = task_file.parent
    cfg = load_config(_config(folder, model_dir, {"inspect": "tasks.py@arithmetic"}))
    suite = cfg.evals[0]
    assert isinstance(suite, InspectSuiteConfig)  # no grader, no file: the task brings them
    assert suite.inspect == f"{task_file}@arithmetic"  # relative to the config file
    registered = load_config(_config(folder, model_dir, {"inspect": "inspect_evals/gsm8k"}))
    assert registered.evals[0].inspect == "inspect_evals/gsm8k"
    for extra, message in (
        ({"file": "train.jsonl"}, "no file with an `inspect` task"),
        ({"grader": "exact"}, "no grader: an Inspect task scores with its own scorers"),
        ({"benchmark": "gsm8k"}, "no inspect task together with `benchmark`"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(_config(folder, model_dir, {"inspect": "tasks.py", **extra}))
    with pytest.raises(ConfigError, match="no task_args: only an `inspect` task takes them"):
        load_config(_config(folder, model_dir, {"file": "train.jsonl", "task_args": {"n": 2}}))
    with pytest.raises(ConfigError, match="an existing file"):
        load_config(_config(folder, model_dir, {"inspect": "nowhere.py"}))


def test_an_inspect_suite_runs_against_the_runs_checkpoint(
    model_dir: str, task_file: Path, tmp_path: Path
) -> None:
    suite = {"inspect": "tasks.py", "task_args": {"n": 3}, "max_tokens": 5, "limit": 2}
    cfg = load_config(_config(task_file.parent, model_dir, suite))
    service = ServiceClient(checkpoint_dir=tmp_path / "ckpt")
    sampler = service.create_sampling_client(base_model=model_dir).result()
    renderer = get_renderer("role_colon", sampler.get_tokenizer())
    ((built, rule),) = build_suites(cfg, renderer, service)
    assert built.kind == "inspect" and built.examples == [] and rule.metric == "accuracy"

    # A trained adapter, evaluated as a round would: its path is the model the log names.
    tc = service.create_lora_training_client(model_dir, rank=2, seed=0).result()
    path = tc.save_weights_for_sampler("round-1").result().path
    adapter = service.create_sampling_client(model_path=path).result()
    result = built.evaluate(adapter, model_path=path, log_dir=tmp_path / "r1")  # seed: the run's
    assert result.suite == "arith" and result.metrics["n"] == 2  # limit: 2 of the task's 3
    assert result.model_path == path
    assert result.provenance["model"] == f"evaltune/{path}"
    assert result.sampling["max_tokens"] == 5 and result.sampling["seed"] == 0
    assert list((tmp_path / "r1").glob("*.eval"))
    base = built.evaluate(sampler, log_dir=tmp_path / "r0")
    assert base.model_path is None and base.provenance["model"] == f"evaltune/{model_dir}"


def test_the_loop_evaluates_an_inspect_suite_each_round(model_dir: str, task_file: Path) -> None:
    from evaltune.loop import run_loop

    folder = task_file.parent
    path = _config(folder, model_dir, {"inspect": "tasks.py", "max_tokens": 4, "limit": 3})
    cfg = yaml.safe_load(path.read_text())
    cfg["training"] = {"batch_size": 1, "steps_per_round": 1, "learning_rate": 1e-3}
    cfg["loop"] = {"max_rounds": 1}
    cfg["output"] = {"workspace": str(folder / "ws"), "run_name": "inspect"}
    path.write_text(yaml.safe_dump(cfg))
    run = run_loop(load_config(path)).path
    summary = json.loads((run / "summary.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [0, 1]
    for k in (0, 1):
        result = EvalResult.read_jsonl(run / "rounds" / str(k) / "eval" / "arith.jsonl")
        assert result.metrics["n"] == 3 and result.provenance["kind"] == "inspect"
        assert list((run / "rounds" / str(k) / "eval" / "inspect").glob("*.eval"))
    assert result.model_path and result.model_path.startswith("tinker://")  # round 1's adapter
