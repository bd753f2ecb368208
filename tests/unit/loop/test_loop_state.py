"""``state.json``: typed, versioned, and backwards-readable."""

from __future__ import annotations

import json

import pytest

from evaltune.errors import EvaltuneError
from evaltune.loop.state import VERSION, Phase, RunState, new_round


def test_a_version_1_state_reads_with_empty_adaptive_fields() -> None:
    v1 = {
        "version": 1,
        "run_id": "r",
        "status": "running",
        "rounds": [{"round": 0, "phase": "evaluated", "evals": {}}],
        "global_step": 0,
        "tokens": 0,
        "plan": None,
        "selected_ids": ["p1"],
        "last_state_path": None,
        "stop_reason": None,
        "best_round": None,
        "started_at": 1.0,
        "finished_at": None,
    }
    state = RunState.from_json(v1)
    assert state.version == VERSION
    assert (state.trained, state.round_data, state.stalled, state.probe) == ([], None, {}, None)
    assert state.selected_ids == ["p1"]
    assert state.rounds[0]["phase"] is Phase.EVALUATED


def test_the_state_round_trips_through_json() -> None:
    state = RunState("r", rounds=[new_round(1, Phase.TRAINED, lr=1e-3)], stalled={"a": 16})
    text = json.dumps(state.to_json())
    again = RunState.from_json(json.loads(text))
    assert again == state
    assert json.loads(text)["rounds"][0]["phase"] == "trained"


def test_a_newer_state_is_refused_with_a_clear_message() -> None:
    with pytest.raises(EvaltuneError, match="upgrade evaltune"):
        RunState.from_json({"version": VERSION + 1, "run_id": "r"})


def test_new_round_has_every_key_and_refuses_unknown_ones() -> None:
    record = new_round(2, Phase.TRAINED, steps=5)
    assert record["round"] == 2 and record["steps"] == 5 and record["evals"] == {}
    with pytest.raises(AssertionError):
        new_round(2, Phase.TRAINED, stpes=5)
