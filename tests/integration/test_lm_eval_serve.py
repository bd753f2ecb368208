"""lm-evaluation-harness against a real ``evaltune serve`` on 127.0.0.1: ``lm_eval --model
local-completions`` runs small tasks on local files (multiple choice and loglikelihood through
``echo`` + ``logprobs``, generation through ``/v1/completions``) and ``local-chat-completions``
a generation task through the chat route. The loglikelihoods the harness records equal a plain
transformers computation on the same model, so the server's scores are right, not just shaped
right. Slow: each harness run imports the harness and indexes its built-in tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from transformers import AutoTokenizer

from evaltune.server.launch import ServerProcess, launch_server
from lm_eval_tasks import ITEMS, reference_loglikelihood, write_tasks
from tiny import write_tiny_model

pytestmark = pytest.mark.slow
HARNESS = Path(sys.executable).parent / "lm_eval"
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}model:{% endif %}"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny-chat"), chat_template=TEMPLATE)


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not HARNESS.is_file():
        pytest.skip("lm-evaluation-harness is not installed: pip install 'evaltune[lm-eval]'")
    checkpoints = tmp_path_factory.mktemp("ckpt")
    with launch_server(str(model), checkpoint_dir=checkpoints,
                       extra_args=("--served-model-name", "tiny")) as process:  # fmt: skip
        yield process


def harness(server: ServerProcess, tmp: Path, kind: str, tasks: str, args: str, *extra: str):
    """One ``lm_eval`` run; its samples by task."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OPENAI_API_KEY": server.api_key, "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp / "hf")}  # fmt: skip
    command = [
        str(HARNESS), "--model", kind, "--model_args", args, "--tasks", tasks,
        "--include_path", str(write_tasks(tmp / "tasks")), "--output_path", str(tmp / "out"),
        "--log_samples", *extra,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    samples: dict[str, list[dict[str, Any]]] = {}
    for path in (tmp / "out").rglob("samples_*.jsonl"):
        task = path.name.removeprefix("samples_").rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in path.read_text().splitlines()]
    return samples


def test_local_completions_scores_and_generates_against_serve(
    server: ServerProcess, model: Path, tmp_path: Path
) -> None:
    url = f"{server.base_url}/v1/completions"
    args = (
        f"model=tiny,base_url={url},tokenizer={model},tokenizer_backend=huggingface,max_retries=1"
    )
    samples = harness(server, tmp_path, "local-completions", "tiny_mc,tiny_ll,tiny_gen", args)
    assert {task: len(s) for task, s in samples.items()} == {
        "tiny_mc": len(ITEMS), "tiny_ll": len(ITEMS), "tiny_gen": len(ITEMS),
    }  # fmt: skip
    for sample in samples["tiny_mc"] + samples["tiny_ll"]:  # echo + logprobs, as the harness reads
        for i, response in enumerate(sample["resps"]):
            request = sample["arguments"][f"gen_args_{i}"]
            expected = reference_loglikelihood(model, request["arg_0"], request["arg_1"])
            assert float(response[0][0]) == pytest.approx(expected, abs=1e-3)
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key)
    tok = AutoTokenizer.from_pretrained(model)
    for sample in samples["tiny_gen"]:  # the server's own greedy answer, cut at the newline
        prompt = tok.encode(sample["arguments"]["gen_args_0"]["arg_0"], add_special_tokens=False)
        text = client.completions.create(model="tiny", prompt=prompt, max_tokens=8,
                                         temperature=0, stop=["\n"]).choices[0].text  # fmt: skip
        assert sample["resps"][0][0] == text


def test_local_chat_completions_generates_against_serve(
    server: ServerProcess, tmp_path: Path
) -> None:
    url = f"{server.base_url}/v1/chat/completions"
    samples = harness(server, tmp_path, "local-chat-completions", "tiny_gen",
                      f"model=tiny,base_url={url},max_retries=1", "--apply_chat_template")  # fmt: skip
    assert len(samples["tiny_gen"]) == len(ITEMS)
    assert all(isinstance(s["resps"][0][0], str) for s in samples["tiny_gen"])
