"""The run's state machine on disk: ``state.json``, typed, versioned, built in one place.

``RunState`` is everything ``resume`` needs: the status (``running``, ``finished``, or
``failed`` with the error), the round records, counters, the next round's plan and data, what
the adaptive strategy learned (stalled tags, generated examples), the learning-rate probe.
``from_json`` reads every version written so far (version 1 had no adaptive fields: they start
empty), ``to_json`` writes the current one. A round record is a plain dict (it goes into
``summary.json`` as it is); ``new_round`` builds one, and its ``phase`` is a ``Phase``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from evaltune.errors import EvaltuneError

__all__ = ["VERSION", "Phase", "RunState", "baseline_of", "new_round"]

VERSION = 2


class Phase(StrEnum):
    """Where a round is: trained (and saved) → evaluated (and analysed) → decided."""

    TRAINED = "trained"
    EVALUATED = "evaluated"
    DECIDED = "decided"


@dataclass
class RunState:
    run_id: str
    status: str = "running"  # running | finished | failed (resume runs it again)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    global_step: int = 0
    tokens: int = 0  # training tokens, the probe's included
    plan: dict[str, Any] | None = None  # the next round's Plan
    selected_ids: list[str] = field(default_factory=list)  # targeted/random: pool ids so far
    trained: list[str] = field(default_factory=list)  # adaptive: example keys trained so far
    round_data: dict[str, Any] | None = None  # adaptive: the next round's new + replay keys
    stalled: dict[str, int] = field(default_factory=dict)  # adaptive: tag -> rank it stalled at
    generated: list[dict[str, Any]] = field(default_factory=list)  # synthesised records
    probe: dict[str, Any] | None = None  # the learning-rate probe, once it ran
    last_state_path: str | None = None
    stop_reason: str | None = None
    error: str | None = None  # why the last attempt failed (status "failed")
    best_round: int | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    version: int = VERSION

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        version = int(data.get("version", 1))
        if version > VERSION:
            raise EvaltuneError(
                f"state.json is version {version}; this evaltune reads up to {VERSION}: "
                "upgrade evaltune to resume this run"
            )
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in data.items() if k in known})
        state.version = VERSION
        for record in state.rounds:
            record["phase"] = Phase(record["phase"])
        return state

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def trained_rounds(self) -> list[dict[str, Any]]:
        return [r for r in self.rounds if r["round"] > 0]


def new_round(k: int, phase: Phase, **fields_: Any) -> dict[str, Any]:
    """A round record with every key the loop and the report read, in one place."""
    record: dict[str, Any] = {
        "round": k,
        "phase": phase,
        "lr": None,
        "steps": None,
        "rank": None,
        "train": None,
        "checkpoint": None,
        "evals": {},
        "val_nll": None,
        "method": "sft",
    }
    unknown = set(fields_) - set(record) - {"data"}
    assert not unknown, f"unknown round fields {sorted(unknown)}"
    record.update(fields_)
    return record


def baseline_of(rounds: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The base model's record (round 0) when the run evaluated it, else None."""
    return next((r for r in rounds if r["round"] == 0), None)
