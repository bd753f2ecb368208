"""Closing the loop on the tiny model: pool selection (targeted and random) with the
contamination guard, the hyperparameter policies, the reaction to a broken guard, the budget and
plateau stop rules, and resume after the decide phase.

The seed-0 tiny model answers "What is i plus i?" with non-empty garbage before training and after
one step at lr 1e-2, and with nothing after two (see tests/integration/test_loop.py): a regex
grader with "." tells the two apart, so a guard on it holds after round 1 and breaks after
round 2. Targets use the unreachable answer, so no run stops on its target unless it wants to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaltune.backends.local import ServiceClient
from evaltune.config import load_config
from evaltune.loop import resume_run, run_loop
from evaltune.loop.policies import lora_parameter_count
from evaltune.tracking import RunDir

UNREACHABLE = "zzz qqq"
CLEAN_ARITHMETIC = [f"p{i}" for i in range(30, 36)]
CLEAN_MISC = ["m1", "m2", "m3", "m4"]
CLEAN = CLEAN_ARITHMETIC + CLEAN_MISC
# Pool copies of eval items: one by id (another prompt), two by prompt (case, spacing and end
# punctuation changed, other ids). Tagged like the failures, and two of them identical to
# failed prompts once normalised, so a targeted selection would rank them first.
CONTAMINATED = ["e12", "c13", "c14"]


class Recorder:
    """A Reporter that keeps every message; ``stop_on`` raises KeyboardInterrupt (as Ctrl-C
    would) on the first message or task description containing that text."""

    def __init__(self, stop_on: str | None = None) -> None:
        self.stop_on = stop_on
        self.messages: list[str] = []

    def _check(self, text: str) -> None:
        if self.stop_on and self.stop_on in text:
            self.stop_on = None
            raise KeyboardInterrupt

    def message(self, text: str) -> None:
        self.messages.append(text)
        self._check(text)

    def start(self, task: str, description: str, total: int) -> None:
        self._check(description)

    def advance(self, task: str, completed: int, info: str = "") -> None:
        pass

    def finish(self, task: str) -> None:
        pass


def arithmetic(i: int, answer: str, **extra: Any) -> dict[str, Any]:
    tag = "odd" if i % 2 else "even"
    return {"question": f"What is {i} plus {i}?", "answer": answer, "tags": [tag], **extra}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("closing-data")
    write_jsonl(folder / "train.jsonl", [arithmetic(i, str(2 * i)) for i in range(12)])
    write_jsonl(
        folder / "eval.jsonl", [arithmetic(i, UNREACHABLE, id=f"e{i}") for i in range(12, 16)]
    )
    write_jsonl(folder / "guard.jsonl", [arithmetic(i, UNREACHABLE) for i in range(16, 20)])
    write_jsonl(folder / "val.jsonl", [arithmetic(i, str(2 * i)) for i in range(20, 23)])
    misc = ["Name a colour of the sky.", "Spell the word dog.", "Say hello.", "Count to three."]
    write_jsonl(
        folder / "pool.jsonl",
        [
            {"id": "e12", "question": "Spell the word cat.", "answer": "cat", "tags": ["even"]},
            *[arithmetic(i, str(2 * i), id=f"p{i}") for i in range(30, 33)],
            {"id": "c13", "question": "  WHAT is 13   PLUS 13 ", "answer": "26", "tags": ["odd"]},
            *[
                {"id": f"m{n}", "question": q, "answer": "ok", "tags": ["misc"]}
                for n, q in enumerate(misc, start=1)
            ],
            {"id": "c14", "question": "what is 14 plus 14?!", "answer": "28", "tags": ["even"]},
            *[arithmetic(i, str(2 * i), id=f"p{i}") for i in range(33, 36)],
        ],
    )
    return folder


def make_config(folder: Path, model: Path, workspace: Path, **sections: Any) -> Path:
    """A run config for the tiny model: 1 step of 4 per round at lr 1e-2, no decay, an
    unreachable target; ``sections`` update these defaults (``evals`` replaces the suites)."""
    config: dict[str, Any] = {
        "base_model": str(model),
        "data": {"train": str(folder / "train.jsonl"), "renderer": "role_colon"},
        "lora": {"rank": 8},
        "training": {"batch_size": 4, "steps_per_round": 1, "learning_rate": 1e-2},
        "evals": [qa_suite(folder)],
        "loop": {"max_rounds": 2, "lr_decay": 1.0},
        "output": {"workspace": str(workspace), "run_name": "closing"},
    }
    for name, values in sections.items():
        config[name] = values if name == "evals" else {**config.get(name, {}), **values}
    workspace.mkdir(parents=True, exist_ok=True)
    path = workspace / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def qa_suite(folder: Path) -> dict[str, Any]:
    return {
        "name": "qa",
        "file": str(folder / "eval.jsonl"),
        "grader": "normalized",
        "threshold": 0.9,
        "max_tokens": 4,
    }


def non_empty_guard(folder: Path) -> dict[str, Any]:
    """Holds while the model answers anything at all (baseline accuracy 1.0)."""
    return {
        "name": "talks",
        "file": str(folder / "guard.jsonl"),
        "grader": "regex",
        "pattern": ".",
        "role": "guard",
        "max_tokens": 4,
    }


def pool_loop(strategy: str, **loop: Any) -> dict[str, Any]:
    selection = {"strategy": strategy, "budget": 4, "similarity": "tfidf", "tag_weight": 0.5}
    return {"max_rounds": 4, "lr_decay": 1.0, "selection": selection} | loop


def the_run(workspace: Path) -> RunDir:
    (path,) = (workspace / "runs").iterdir()
    return RunDir.open(path)


def added_ids(record: dict[str, Any]) -> list[str]:
    return [item["id"] for item in (record.get("selection") or {}).get("added", [])]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every training client the loop makes: ("new", rank) or ("state", path)."""
    calls: list[tuple[str, Any]] = []
    new, from_state = (
        ServiceClient.create_lora_training_client,
        ServiceClient.create_training_client_from_state_with_optimizer,
    )

    def spy_new(self: ServiceClient, *args: Any, **kwargs: Any) -> Any:
        calls.append(("new", kwargs["rank"]))
        return new(self, *args, **kwargs)

    def spy_state(self: ServiceClient, path: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(("state", path))
        return from_state(self, path, *args, **kwargs)

    monkeypatch.setattr(ServiceClient, "create_lora_training_client", spy_new)
    monkeypatch.setattr(
        ServiceClient, "create_training_client_from_state_with_optimizer", spy_state
    )
    return calls


# -- (a) + (b) targeted selection from a pool, and the contamination guard -------------------
@pytest.fixture(scope="module")
def targeted(
    data_dir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> RunDir:
    workspace = tmp_path_factory.mktemp("targeted")
    config = make_config(
        data_dir,
        tiny_model_dir,
        workspace,
        data={"pool": str(data_dir / "pool.jsonl")},
        loop=pool_loop("targeted"),
    )
    return run_loop(load_config(config))


def test_targeted_selection_adds_the_budget_after_each_round(
    targeted: RunDir,
) -> None:
    run = targeted
    state = run.read_json("state.json")
    rounds = state["rounds"]
    assert state["stop_reason"] == "max_rounds"
    # 10 clean pool items, budget 4: 4 + 4 + the last 2; never one twice
    assert [len(added_ids(r)) for r in rounds[1:4]] == [4, 4, 2]
    assert state["selected_ids"] == [i for r in rounds[1:4] for i in added_ids(r)]
    assert sorted(state["selected_ids"]) == sorted(CLEAN)
    assert rounds[4].get("selection") is None  # the last round plans nothing
    for k, expected in ((1, 0), (2, 4), (3, 8), (4, 10)):
        plan = run.read_json(f"rounds/{k}/plan.json")
        assert plan["pool_examples"] == expected
        assert plan["train_examples"] == 12 + expected


def test_targeted_selection_prefers_the_weak_tags_and_the_failures(
    targeted: RunDir,
) -> None:
    run = targeted
    first = run.read_json("state.json")["rounds"][1]["selection"]
    assert (first["strategy"], first["method"]) == ("targeted", "tfidf")
    # nothing in qa passes: both of its tags are as weak as can be; "misc" is not measured
    assert first["weakness"] == {"even": 1.0, "odd": 1.0}
    assert sorted(first["weak_tags"]) == ["even", "odd"]
    # the arithmetic questions (weak tags, like the failed prompts) before the misc ones
    selected = run.read_json("state.json")["selected_ids"]
    assert sorted(selected[:6]) == sorted(CLEAN_ARITHMETIC)
    assert sorted(selected[6:]) == sorted(CLEAN_MISC)
    for item in first["added"]:
        assert item["tags"][0] in ("odd", "even") and item["score"] > 0.5
    assert (
        "selection (targeted): +4 pool examples"
        in run.read_json("state.json")["rounds"][1]["decision"]["note"]
    )


def test_report_has_a_data_selection_section(targeted: RunDir) -> None:
    run = targeted
    report = (run.path / "report.md").read_text()
    assert "## Data selection" in report
    section = report.split("## Data selection", 1)[1].split("\n## ", 1)[0]
    assert "After round 1 (targeted, tfidf similarity): weakest tags" in section
    assert "added 4 pool examples" in section
    for k in (1, 2, 3):
        assert f"After round {k} (targeted" in section
    for pool_id in CLEAN:
        assert f"| {pool_id} |" in section
    for eval_id in CONTAMINATED:
        assert f"| {eval_id} |" not in section
    summary = run.read_json("summary.json")
    assert [added_ids(r) for r in summary["rounds"][1:4]] == [
        added_ids(r) for r in run.read_json("state.json")["rounds"][1:4]
    ]


def test_contamination_guard_keeps_eval_items_out_of_training(
    targeted: RunDir,
) -> None:
    run = targeted
    state = run.read_json("state.json")
    selected = [i for r in state["rounds"] for i in added_ids(r)]
    assert selected and not set(selected) & set(CONTAMINATED)
    assert set(selected) <= set(CLEAN)
    notes = run.read_json("summary.json")["notes"]
    (note,) = [n for n in notes if "pool examples that are eval items" in n]
    assert note.startswith("removed 3 pool examples that are eval items (same id or prompt)")
    assert all(i in note for i in CONTAMINATED)
    assert run.read_json("summary.json")["data"]["pool_examples"] == len(CLEAN)
    assert "- data: removed 3 pool examples" in (run.path / "report.md").read_text()


# -- (c) random selection ------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_run(
    data_dir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> RunDir:
    workspace = tmp_path_factory.mktemp("random")
    config = make_config(
        data_dir,
        tiny_model_dir,
        workspace,
        data={"pool": str(data_dir / "pool.jsonl")},
        loop=pool_loop("random"),
    )
    return run_loop(load_config(config))


def test_random_selection_adds_as_many_as_targeted(random_run: RunDir, targeted: RunDir) -> None:
    rounds = random_run.read_json("state.json")["rounds"]
    other = targeted.read_json("state.json")["rounds"]
    assert [len(added_ids(r)) for r in rounds[1:4]] == [len(added_ids(r)) for r in other[1:4]]
    assert rounds[1]["selection"]["strategy"] == "random"
    assert rounds[1]["selection"]["method"] == ""
    for k, expected in ((2, 4), (3, 8), (4, 10)):
        assert random_run.read_json(f"rounds/{k}/plan.json")["pool_examples"] == expected
    assert "After round 1 (random): " in (random_run.path / "report.md").read_text()


def test_random_selection_never_draws_eval_items(random_run: RunDir) -> None:
    state = random_run.read_json("state.json")
    # the pool ran dry: every clean item was drawn, and no eval item ever was
    assert sorted(state["selected_ids"]) == sorted(CLEAN)
    notes = random_run.read_json("summary.json")["notes"]
    assert any(n.startswith("removed 3 pool examples that are eval items") for n in notes)


def test_random_selection_is_seeded(
    random_run: RunDir, data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        data={"pool": str(data_dir / "pool.jsonl")},
        loop=pool_loop("random", max_rounds=2),
    )
    again = run_loop(load_config(config)).read_json("state.json")
    first = random_run.read_json("state.json")["rounds"][1]
    assert again["selected_ids"] == added_ids(first)


# -- (h) resume after the decide phase keeps the selection ----------------------------------
def test_resume_after_decide_trains_on_the_same_selection(
    targeted: RunDir, data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        data={"pool": str(data_dir / "pool.jsonl")},
        loop=pool_loop("targeted"),
    )
    with pytest.raises(KeyboardInterrupt):
        run_loop(load_config(config), Recorder(stop_on="round 2 · training"))
    run = the_run(tmp_path)
    state = run.read_json("state.json")
    assert [(r["round"], r["phase"]) for r in state["rounds"]] == [(0, "evaluated"), (1, "decided")]
    chosen = state["selected_ids"]
    assert len(chosen) == 4
    assert not (run.path / "rounds" / "2").exists()

    resume_run(run.path, Recorder())
    state = run.read_json("state.json")
    assert state["status"] == "finished"
    assert state["selected_ids"][:4] == chosen  # not chosen again on resume
    assert added_ids(state["rounds"][1]) == chosen
    assert run.read_json("rounds/2/plan.json")["pool_examples"] == 4
    # the same examples as the run that was never interrupted, hence the same losses
    straight = targeted
    assert state["selected_ids"] == straight.read_json("state.json")["selected_ids"]
    for k in (2, 3, 4):
        resumed = [s["loss"] for s in run.read_json(f"rounds/{k}/train.json")["steps"]]
        expected = [s["loss"] for s in straight.read_json(f"rounds/{k}/train.json")["steps"]]
        assert resumed == pytest.approx(expected, rel=1e-4)


# -- (d) budget stop ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("budget", "rounds", "unit"),
    [
        ({"max_steps": 4}, 2, "steps"),
        ({"max_tokens": 1}, 1, "tokens"),
        ({"max_seconds": 1e-3}, 1, "seconds"),
    ],
    ids=["steps", "tokens", "seconds"],
)
def test_budget_stops_the_run(
    data_dir: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    budget: dict[str, float],
    rounds: int,
    unit: str,
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        training={"steps_per_round": 2},
        loop={"max_rounds": 5, "budget": budget},
    )
    run = run_loop(load_config(config))
    summary = run.read_json("summary.json")
    assert summary["stop_reason"] == "budget"
    assert summary["rounds_trained"] == rounds
    assert run.read_json("state.json")["global_step"] == 2 * rounds
    decision = summary["rounds"][-1]["decision"]
    assert decision["reason"] == "budget"
    assert f" {unit} of a budget of " in decision["note"]
    assert summary["best"]["round"] in range(1, rounds + 1)


# -- (e) a guard the trained model breaks ---------------------------------------------------
def test_a_broken_guard_is_never_best_and_the_next_round_restarts(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path, spy: list[tuple[str, Any]]
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        data={"validation": str(data_dir / "val.jsonl")},
        evals=[qa_suite(data_dir), non_empty_guard(data_dir)],
        loop={"max_rounds": 3, "lr_decay": 0.5, "guard_backoff": 0.25},
    )
    run = run_loop(load_config(config))
    summary = run.read_json("summary.json")
    base, one, two, three = summary["rounds"]
    assert base["evals"]["talks"]["metrics"]["accuracy"] == 1.0
    assert one["guards_hold"] is True
    assert two["guards_hold"] is False
    assert two["evals"]["talks"]["metrics"]["accuracy"] < 1.0
    # Round 2 is better on everything but the guard: the same target score, a lower
    # validation loss. It must still lose.
    assert two["val_nll"] < one["val_nll"]
    assert summary["best"]["round"] == 1
    assert summary["best"]["guards_hold"] is True
    broken = {r["round"] for r in summary["rounds"][1:] if not r["guards_hold"]}
    assert summary["best"]["round"] not in broken

    # The reaction: round 3 restarts from round 1's saved state, lr × guard_backoff, no decay.
    plan = run.read_json("rounds/3/plan.json")
    assert plan["restart_from"] == one["checkpoint"]["state"]
    assert plan["fresh_adapter"] is False
    assert plan["lr"] == pytest.approx(two["lr"] * 0.25)
    assert two["lr"] == pytest.approx(one["lr"] * 0.5)  # the decay applied when the guard held
    assert three["lr"] == pytest.approx(plan["lr"])
    assert two["next_plan"]["restart_from"] == one["checkpoint"]["state"]
    assert two["decision"]["note"].startswith(
        "round 2 broke a guard: restart from round 1, lr × 0.25"
    )
    assert spy == [("new", 8), ("state", one["checkpoint"]["state"])]


def test_a_guard_broken_in_round_1_starts_a_fresh_adapter(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path, spy: list[tuple[str, Any]]
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        evals=[qa_suite(data_dir), non_empty_guard(data_dir)],
        training={"steps_per_round": 2},
    )
    run = run_loop(load_config(config))
    summary = run.read_json("summary.json")
    one = summary["rounds"][1]
    assert one["guards_hold"] is False
    plan = run.read_json("rounds/2/plan.json")
    assert (plan["restart_from"], plan["fresh_adapter"]) == (None, True)
    assert plan["lr"] == pytest.approx(one["lr"] * 0.5)
    assert spy == [("new", 8), ("new", 8)]  # round 2 did not continue round 1's adapter
    assert "restart from a fresh adapter" in one["decision"]["note"]


def test_a_round_that_met_its_target_but_broke_a_guard_is_not_promoted(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    any_answer = non_empty_guard(data_dir) | {
        "name": "any",
        "file": str(data_dir / "eval.jsonl"),
        "role": "target",
        "threshold": 0.5,
    }
    # Passes the untrained model's garbage; fails once training makes it answer with digits.
    no_digits = non_empty_guard(data_dir) | {"name": "keep", "pattern": "^[^0-9]+$"}
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        evals=[any_answer, no_digits],
        training={"steps_per_round": 8},
        loop={"max_rounds": 1},
    )
    summary = run_loop(load_config(config)).read_json("summary.json")
    base, one = summary["rounds"]
    assert base["evals"]["keep"]["metrics"]["accuracy"] == 1.0
    assert one["targets_met"] is True and one["guards_hold"] is False
    assert summary["best"] is None or summary["best"]["guards_hold"] is True


# -- (f) plateau returns the best round --------------------------------------------------------
def test_plateau_returns_the_best_round_not_the_last(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    talks = non_empty_guard(data_dir) | {"role": "target", "threshold": 0.5}
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        evals=[talks],
        loop={"max_rounds": 5, "plateau_rounds": 1, "stop_on_target": False},
    )
    run = run_loop(load_config(config))
    summary = run.read_json("summary.json")
    assert summary["stop_reason"] == "plateau"
    scores = [r["evals"]["talks"]["metrics"]["accuracy"] for r in summary["rounds"]]
    assert summary["rounds_trained"] == 2
    assert scores[1] > scores[2]  # round 2 fell back: the plateau
    assert summary["best"]["round"] == 1
    assert run.read_json("state.json")["best_round"] == 1
    assert summary["best"]["checkpoint"] == summary["rounds"][1]["checkpoint"]
    assert "- best checkpoint: round 1 — " in (run.path / "report.md").read_text()


# -- (g) policies on the tiny model ---------------------------------------------------------
def test_more_steps_while_validation_loss_falls(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        data={"validation": str(data_dir / "val.jsonl")},
        training={"learning_rate": 3e-3},
        loop={
            "max_rounds": 3,
            "policies": ["more_steps"],
            "steps_growth": 2.0,
            "max_steps_per_round": 10,
        },
    )
    run = run_loop(load_config(config))
    rounds = run.read_json("summary.json")["rounds"]
    assert rounds[2]["val_nll"] < rounds[1]["val_nll"]
    assert [run.read_json(f"rounds/{k}/plan.json")["steps"] for k in (1, 2, 3)] == [1, 1, 2]
    assert [r["train"]["steps"] for r in rounds[1:]] == [1, 1, 2]
    assert run.read_json("state.json")["global_step"] == 4
    assert rounds[1]["decision"]["note"] == "train round 2"  # one round: nothing to compare
    assert rounds[2]["decision"]["note"].startswith("more_steps: validation loss fell")


def long_train(folder: Path) -> Path:
    """Twelve examples with long answers: more completion tokens than a rank-1 LoRA on the
    tiny model's unembedding has parameters."""
    path = folder / "long_train.jsonl"
    if not path.exists():
        answer = " ".join(["the quick brown fox jumps over the lazy dog"] * 8)
        write_jsonl(path, [arithmetic(i, f"{2 * i} {answer}") for i in range(12)])
    return path


def test_capacity_doubles_the_rank_up_to_max_rank(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path, spy: list[tuple[str, Any]]
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        data={"train": str(long_train(data_dir)), "max_seq_len": 128},
        lora={"rank": 1, "train_attn": False, "train_mlp": False, "train_unembed": True},
        loop={"max_rounds": 3, "policies": ["capacity"], "max_rank": 2},
    )
    reporter = Recorder()
    run = run_loop(load_config(config), reporter)
    (advice,) = [m for m in reporter.messages if m.startswith("LoRA capacity:")]
    assert "fewer than the completion tokens" in advice
    plans = [run.read_json(f"rounds/{k}/plan.json") for k in (1, 2, 3)]
    assert [p["rank"] for p in plans] == [1, 2, 2]
    assert [p["fresh_adapter"] for p in plans] == [False, True, False]
    rounds = run.read_json("summary.json")["rounds"]
    assert [r["rank"] for r in rounds[1:]] == [1, 2, 2]
    assert "capacity:" in rounds[1]["decision"]["note"]
    assert "capacity:" not in rounds[2]["decision"]["note"]  # at max_rank
    assert spy == [("new", 1), ("new", 2)]  # round 3 continued round 2's rank-2 adapter


def test_lora_parameter_count_matches_the_adapter(tiny_model_dir: Path) -> None:
    """The capacity check's arithmetic against PEFT on the tiny model (GQA: 2 query heads,
    1 key/value head, head_dim 32 on hidden 64; a tied unembedding)."""
    from transformers import AutoModelForCausalLM

    from evaltune.engine.lora import LoraSpec, adapter_parameters, add_adapter, lora_config

    facts = ServiceClient(checkpoint_dir=tiny_model_dir / "unused").model_facts(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for parts in [(True, False, False), (False, True, False), (False, False, True)]:
        attn, mlp, unembed = parts
        spec = LoraSpec(rank=3, train_attn=attn, train_mlp=mlp, train_unembed=unembed)
        name = f"a{int(attn)}{int(mlp)}{int(unembed)}"
        model = add_adapter(model, name, lora_config(model, spec))
        actual = sum(p.numel() for p in adapter_parameters(model, name).values())
        assert lora_parameter_count(facts, 3, attn, mlp, unembed) == actual, parts


def test_bayes_proposes_learning_rates_within_its_range(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        loop={
            "max_rounds": 3,
            "policies": ["bayes"],
            "bayes": {"lr_min_factor": 0.5, "lr_max_factor": 1.5, "seed": 7},
        },
    )
    run = run_loop(load_config(config))
    rounds = run.read_json("summary.json")["rounds"]
    lrs = [run.read_json(f"rounds/{k}/plan.json")["lr"] for k in (1, 2, 3)]
    assert lrs[0] == 1e-2
    assert all(5e-3 <= lr <= 1.5e-2 for lr in lrs[1:])
    assert [r["lr"] for r in rounds[1:]] == lrs
    for r, lr in zip(rounds[1:3], lrs[1:], strict=True):
        assert r["decision"]["note"] == f"bayes: Optuna proposes lr {lr:.3g}"
