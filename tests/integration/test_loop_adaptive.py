"""The default (``adaptive``) loop end to end on the tiny model: what each round trains on,
replay, stalled tags, the learning-rate probe, synthesis, the no-new-data stop, and resume.

The tiny random model never answers the eval's unreachable targets, so every tag stays at 0:
the mechanics (allocation, stall detection, replay, stops) are what these tests check; the
efficacy of the same decisions on the real model is ``benchmarks/loop_efficacy.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaltune.config import load_config
from evaltune.loop import resume_run, run_loop
from evaltune.tracking import RunDir

UNREACHABLE = "zzz qqq"


def qa(i: int, tag: str, answer: str, **extra: Any) -> dict[str, Any]:
    return {"question": f"What is {i} plus {i} ({tag})?", "answer": answer, "tags": [tag], **extra}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("adaptive-data")
    write_jsonl(folder / "train.jsonl", [qa(i, "seeded", str(2 * i)) for i in range(8)])
    evals = [qa(i, t, UNREACHABLE, id=f"e-{t}-{i}") for t in ("seeded", "a", "b") for i in (50, 51)]
    write_jsonl(folder / "eval.jsonl", evals)
    pool = [qa(i, t, str(2 * i), id=f"p-{t}-{i}") for t in ("a", "b") for i in range(10, 13)]
    pool += [qa(i, "offtopic", str(2 * i), id=f"p-off-{i}") for i in range(20, 30)]
    pool.append(qa(50, "a", "100", id="leak"))  # an eval prompt: the contamination guard drops it
    write_jsonl(folder / "pool.jsonl", pool)
    (folder / "gen.py").write_text(
        "def make(tag, n, examples):\n"
        "    return [{'question': f'Generated {tag} question {i}?', 'answer': 'ok'} "
        "for i in range(n)]\n"
    )
    return folder


def make_config(folder: Path, model: Path, workspace: Path, **sections: Any) -> Path:
    config: dict[str, Any] = {
        "base_model": str(model),
        "data": {
            "train": str(folder / "train.jsonl"),
            "pool": str(folder / "pool.jsonl"),
            "renderer": "role_colon",
        },
        "lora": {"rank": 8},
        # two passes over new data: enough for the tiny model's losses to reach "fitted"
        "training": {"batch_size": 4, "learning_rate": 1e-2, "min_steps": 1, "passes": 2},
        "evals": [
            {
                "name": "qa",
                "file": str(folder / "eval.jsonl"),
                "grader": "normalized",
                "threshold": 0.9,
                "max_tokens": 3,
            }
        ],
        # The tiny model's per-tag training loss falls from about 2-3 to 0.3-1.3 over four
        # rounds; fitted_loss 1.5 puts "fitted" in that range, so every tag is under-fitted
        # after round 1 and fitted (then stalled, as it never moves) by round 3.
        "loop": {
            "max_rounds": 4,
            "selection": {"budget": 4, "similarity": "tfidf", "fitted_loss": 1.5},
        },
        "output": {"workspace": str(workspace), "run_name": "adaptive"},
    }
    for name, values in sections.items():
        merged = {**config.get(name, {}), **values}
        if name == "loop" and "selection" in values:
            merged["selection"] = {**config["loop"]["selection"], **values["selection"]}
        config[name] = merged
    workspace.mkdir(parents=True, exist_ok=True)
    path = workspace / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def the_run(workspace: Path) -> RunDir:
    (path,) = (workspace / "runs").iterdir()
    return RunDir.open(path)


class StopAt:
    """A Reporter raising KeyboardInterrupt (as Ctrl-C would) at the first message with ``text``."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text

    def message(self, text: str) -> None:
        if self.text and self.text in text:
            self.text = None
            raise KeyboardInterrupt

    def start(self, task: str, description: str, total: int) -> None:
        pass

    def advance(self, task: str, completed: int, info: str = "") -> None:
        pass

    def finish(self, task: str) -> None:
        pass


@pytest.fixture(scope="module")
def adaptive(
    data_dir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> RunDir:
    workspace = tmp_path_factory.mktemp("adaptive")
    return run_loop(load_config(make_config(data_dir, tiny_model_dir, workspace)))


def test_with_a_pool_the_default_strategy_is_adaptive_and_round_1_explores(
    adaptive: RunDir,
) -> None:
    state = adaptive.read_json("state.json")
    baseline, first = state["rounds"][0], state["rounds"][1]
    sel = baseline["selection"]
    assert sel["strategy"] == "adaptive"
    assert sel["states"]["a"]["status"] == "untried"
    assert sel["states"]["seeded"]["status"] == "trying"  # the seed set covers it
    assert set(sel["quotas"]) == {"a", "b"}  # seeded has no pool examples; offtopic no eval
    assert sum(sel["quotas"].values()) == 4
    plan = adaptive.read_json("rounds/1/plan.json")
    assert plan["new_examples"] == 8 + 4 and plan["replay_examples"] == 0
    assert first["data"]["by_tag"] == {"seeded": 8, **sel["quotas"]}
    # steps follow the new data: two passes (this test's setting) over 12 examples at batch 4
    assert plan["steps"] == 6 == first["train"]["steps"]
    # each trained tag's own training loss, counted over the same tags as by_tag
    per_tag_loss = first["train"]["per_tag_loss"]
    assert set(per_tag_loss) == set(first["data"]["by_tag"])
    assert all(0 < loss < 20 for loss in per_tag_loss.values())


def test_off_target_and_eval_items_are_never_trained(adaptive: RunDir) -> None:
    trained = adaptive.read_json("state.json")["trained"]
    assert not [k for k in trained if k.startswith("p-off")]
    assert "leak" not in trained
    assert len(trained) == len(set(trained))


def test_tags_that_never_move_stall_and_the_run_stops_when_nothing_new_can_help(
    adaptive: RunDir,
) -> None:
    state = adaptive.read_json("state.json")
    assert {"a", "b"} <= set(state["stalled"])
    assert state["stop_reason"] in ("no_new_data", "memorised", "plateau", "max_rounds")
    # after round 1 every tag is under-fitted (training loss above 1.5) and none moved: none is
    # stalled yet, but none gets extra passes either (it may be one the model cannot learn);
    # the replay is the one per new example (at least two batches in all), taken once, while
    # the new examples get two passes
    first, second = (adaptive.read_json(f"rounds/{k}/plan.json") for k in (1, 2))
    after_1 = state["rounds"][1]["selection"]["states"]
    assert all(st["underfit"] and st["status"] == "trying" for st in after_1.values())
    new, replay = second["new_examples"], second["replay_examples"]
    assert replay == max(new, 8 - new) < first["new_examples"]
    assert second["steps"] == math.ceil((2 * new + replay) / 4)
    # by round 3, a tag whose own examples are fitted and still not moving is stalled (the
    # note gives the training loss); one still under-fitted is not, yet
    after_3 = state["rounds"][3]["selection"]["states"]
    for st in after_3.values():
        if st["underfit"]:
            assert st["status"] == "trying" and "under-fitted" in st["note"]
        else:
            assert st["status"] == "stalled" and "training loss" in st["note"]
    report = (adaptive.path / "report.md").read_text()
    assert "## Tags: what the loop learned about them" in report
    assert f"**Stalled tags: {', '.join(sorted(state['stalled']))}.**" in report
    assert "vs best so far (paired)" in report


def test_resume_after_decide_never_repeats_a_step_with_the_adaptive_state(
    adaptive: RunDir, data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(data_dir, tiny_model_dir, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_loop(load_config(config), StopAt("round 2 · training"))
    run = the_run(tmp_path)
    planned = run.read_json("state.json")["round_data"]
    assert planned and planned["new"]
    resume_run(run.path)
    state, straight = run.read_json("state.json"), adaptive.read_json("state.json")
    assert state["trained"] == straight["trained"]
    assert state["global_step"] == straight["global_step"]
    assert state["global_step"] == sum(r["train"]["steps"] for r in state["rounds"][1:])
    for k in range(1, len(state["rounds"])):
        a = [s["loss"] for s in run.read_json(f"rounds/{k}/train.json")["steps"]]
        b = [s["loss"] for s in adaptive.read_json(f"rounds/{k}/train.json")["steps"]]
        assert a == pytest.approx(b, rel=1e-4)


def test_a_version_1_state_file_still_resumes(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(data_dir, tiny_model_dir, tmp_path, loop={"max_rounds": 2})
    with pytest.raises(KeyboardInterrupt):
        run_loop(load_config(config), StopAt("round 2 · training"))
    run = the_run(tmp_path)
    state = run.read_json("state.json")
    for key in ("trained", "round_data", "stalled", "generated", "probe"):
        state.pop(key)
    state["version"] = 1
    run.write_json("state.json", state)
    resume_run(run.path)  # no adaptive plan in an old state: round 2 trains the seed set
    state = run.read_json("state.json")
    assert state["status"] == "finished"
    assert [r["round"] for r in state["rounds"]] == [0, 1, 2]
    assert run.read_json("rounds/2/plan.json")["train_examples"] == 8


def test_the_learning_rate_probe_chooses_before_round_1(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        training={"learning_rate": "auto", "probe_steps": 2},
        loop={"max_rounds": 1},
    )
    run = run_loop(load_config(config))
    probe = run.read_json("probe.json")
    assert [c["factor"] for c in probe["candidates"]] == [0.25, 0.5, 1.0]
    best = min(probe["candidates"], key=lambda c: (round(c["val_nll"], 6), c["lr"]))
    assert probe["chosen"] == best["lr"]
    assert probe["held_out"] == 2  # 20 % of the 8 seed examples, never an eval item
    state = run.read_json("state.json")
    assert state["rounds"][1]["lr"] == pytest.approx(probe["chosen"])
    assert "## Learning-rate probe" in (run.path / "report.md").read_text()


def test_a_generator_fills_a_dry_pool(data_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    synthesis = {"generator": str(data_dir / "gen.py") + ":make", "per_tag": 2}
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        data={"pool": []},
        loop={"max_rounds": 2, "selection": {"strategy": "adaptive", "synthesis": synthesis}},
    )
    run = run_loop(load_config(config))
    state = run.read_json("state.json")
    generated = state["generated"]
    assert {tuple(g["tags"]) for g in generated} >= {("a",), ("b",)}
    assert all(g["generated"].endswith("gen.py:make") for g in generated)
    assert set(state["trained"]) >= {g["id"] for g in generated}
    assert "*(generated)*" in (run.path / "report.md").read_text()


def test_memorised_data_with_no_new_examples_stops_the_run(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # every loss counts as memorised here and no tag's own loss is consulted; the pool is
    # empty, so nothing new can come
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        data={"pool": []},
        loop={
            "overfit_loss": 1e9,
            "selection": {"strategy": "adaptive", "fitted_loss": None},
        },
    )
    run = run_loop(load_config(config))
    state = run.read_json("state.json")
    assert state["stop_reason"] == "memorised"
    assert [r["round"] for r in state["rounds"]] == [0, 1]
    note = state["rounds"][1]["decision"]["note"]
    assert "memorised" in note and "no new examples" in note


def test_a_tag_whose_own_examples_are_not_fitted_yet_is_not_memorised(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The same run, but the seed tag's own training loss (about 5 after round 1) is above
    # fitted_loss: a low batch loss does not make it memorised; consolidation rounds go on.
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        data={"pool": []},
        loop={
            "max_rounds": 2,
            "overfit_loss": 1e9,
            "selection": {"strategy": "adaptive", "fitted_loss": 1.5},
        },
    )
    state = run_loop(load_config(config)).read_json("state.json")
    assert state["rounds"][1]["selection"]["states"]["seeded"]["underfit"]
    assert [r["round"] for r in state["rounds"]] == [0, 1, 2]
    assert state["stop_reason"] == "max_rounds"
    assert state["rounds"][2]["data"]["new"] == 0  # a consolidation round


def run_with_teacher(
    folder: Path, model: Path, workspace: Path, synthesis: dict[str, Any]
) -> tuple[RunDir, list[str]]:
    """A run with an empty pool and ``synthesis``: it finishes; the teacher's errors, and no
    example was made."""
    config = make_config(
        folder,
        model,
        workspace,
        data={"pool": []},
        loop={"max_rounds": 3, "selection": {"strategy": "adaptive", "synthesis": synthesis}},
    )
    run = run_loop(load_config(config))
    state = run.read_json("state.json")
    assert state["status"] == "finished"
    reports = [r["selection"]["synthesis"] for r in state["rounds"] if r.get("selection")]
    assert reports and all(rep["made"] == 0 for rep in reports)
    return run, [e for rep in reports for e in rep["errors"]]


def test_a_backend_teacher_model_is_asked_and_its_unparsable_reply_skipped(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The tiny random model is a real teacher on the backend, with a context too small for the
    # teacher prompt: each failure is recorded and reported, and the run goes on to a clean stop.
    synthesis = {"model": str(tiny_model_dir), "per_tag": 2, "max_tokens": 16}
    run, errors = run_with_teacher(data_dir, tiny_model_dir, tmp_path, synthesis)
    state = run.read_json("state.json")
    assert state["generated"] == []
    assert all(not k.startswith("gen-") for k in state["trained"])
    assert any("exceeds the model's context" in e for e in errors)
    assert all(e.startswith("tag '") for e in errors)
    assert "teacher failed for tag" in (run.path / "report.md").read_text()


def test_an_endpoint_teacher_is_called_through_evaltune_serve(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # A real OpenAI-compatible server (evaltune serve on the tiny model) as the teacher; the
    # tiny model has no chat template, so the server answers 400, which the loop records and
    # reports, and the run goes on.
    from serve_once import serve_once

    server = serve_once(tiny_model_dir, ("--served-model-name", "teacher"))
    synthesis = {
        "model": "teacher",
        "base_url": f"{server.base_url}/v1",
        "api_key_env": server.key_env,
        "per_tag": 2,
        "max_tokens": 16,
    }
    run, errors = run_with_teacher(data_dir, tiny_model_dir, tmp_path, synthesis)
    assert errors and all("/v1/chat/completions answered 400" in e for e in errors), errors
    assert "teacher failed for tag 'a'" in (run.path / "report.md").read_text()
    assert server.api_key not in (run.path / "report.md").read_text()  # the key stays secret
    assert server.api_key not in (run.path / "state.json").read_text()
