"""The model registry: records from run folders, statuses with who/when/why, one production
model per name, guard refusals, and two processes registering at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evaltune.errors import ConfigError
from evaltune.registry import Registry, describe_round, render_registry
from run_fixture import make_run


def test_a_run_round_becomes_a_record_with_its_evidence(tmp_path: Path) -> None:
    run = make_run(tmp_path, correct=(2, 5, 7))
    record = describe_round(run.path, target_score=0.875)
    assert record["lineage"]["round"] == 2 and record["lineage"]["run_id"] == run.run_id
    assert record["base_model"] == "gemma-3-270m" and record["backend"] == "local"
    assert record["lora"]["rank"] == 8
    assert [hp["round"] for hp in record["hyperparameters"]] == [1, 2]
    assert record["hyperparameters"][1]["lr"] == pytest.approx(5e-4)
    qa = next(e for e in record["evals"] if e["suite"] == "qa")
    assert qa["value"] == 7 / 8 and qa["ci_low"] < qa["value"] < qa["ci_high"]
    assert qa["suite_hash"] == "hash-qa" and qa["sampling"]["temperature"] == 0.0
    assert record["checkpoint"]["peft_folder"].endswith("round-2")
    files = {f["role"]: f for f in record["data"]["files"]}
    assert len(files["train"]["sha256"]) == 64 and files["train"]["lines"] == 3
    assert record["data"]["selected"] == ["pool-0-a", "pool-1-a"]
    assert record["data"]["generated"] == ["gen-0-b", "gen-1-b"]
    assert record["evidence"]["best_round"] and record["evidence"]["guards_hold"]
    with pytest.raises(ConfigError, match="round 0 has no evaluated checkpoint"):
        describe_round(run.path, 0)


def test_registering_twice_keeps_one_model_and_versions_count_per_name(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.sqlite")
    a, b = make_run(tmp_path, "alpha"), make_run(tmp_path, "beta")
    first, added = reg.register("demo", describe_round(a.path))
    again, added_again = reg.register("demo", describe_round(a.path))
    assert added and not added_again and first["id"] == again["id"] == "demo-v1"
    second, _ = reg.register("demo", describe_round(b.path, 1))
    assert second["id"] == "demo-v2" and second["status"] == "candidate"
    with sqlite3.connect(reg.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_status_changes_are_recorded_with_who_when_and_why(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.sqlite")
    one, _ = reg.register("demo", describe_round(make_run(tmp_path, "a").path), who="loop")
    two, _ = reg.register("demo", describe_round(make_run(tmp_path, "b").path), who="loop")
    reg.set_status(one["id"], "staging", why="looks good", who="ana")
    reg.set_status(one["id"], "production", why="passed review", who="ana")
    changes = reg.set_status(two["id"], "production", why="better on qa", who="ben")
    assert [(c.model_id, c.to_status) for c in changes] == [
        ("demo-v1", "retired"),
        ("demo-v2", "production"),
    ]
    assert "demo-v2 promoted to production" in changes[0].why
    assert [m["id"] for m in reg.list(status="production")] == ["demo-v2"]
    history = reg.history("demo-v1")
    assert [(c.from_status, c.to_status, c.who, c.why) for c in history] == [
        (None, "candidate", "loop", "registered"),
        ("candidate", "staging", "ana", "looks good"),
        ("staging", "production", "ana", "passed review"),
        ("production", "retired", "ben", "demo-v2 promoted to production"),
    ]
    assert all(c.at.endswith("+00:00") for c in history)
    doc = render_registry(reg.list(), reg.history(), str(reg.path))
    assert "Production: demo-v2" in doc and "by ben: better on qa" in doc
    with pytest.raises(ConfigError, match=r"no model 'demo-v9'.*demo-v2"):
        reg.get("demo-v9")
    with pytest.raises(ConfigError, match="choose one of: candidate, staging"):
        reg.set_status("demo-v1", "live")


def test_a_model_whose_guards_broke_needs_force_and_a_reason(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.sqlite")
    run = make_run(tmp_path, guard_correct=(6, 6, 2))  # the best round breaks the guard
    model, _ = reg.register("demo", describe_round(run.path))
    assert not model["guards_hold"]
    with pytest.raises(ConfigError, match=r"broke a guard.*--force"):
        reg.set_status(model["id"], "production")
    with pytest.raises(ConfigError, match="needs a reason"):
        reg.set_status(model["id"], "production", force=True)
    (change,) = reg.set_status(model["id"], "production", force=True, why="hotfix", who="ana")
    assert change.why == "forced past a broken guard: hotfix"


WORKER = """
import sys
from pathlib import Path
from evaltune.registry import Registry
reg = Registry(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    record = {"base_model": "m", "backend": "local", "evidence": {"guards_hold": True},
              "lineage": {"run_id": f"{sys.argv[2]}-{i}", "round": 1}}
    reg.register("shared", record, who=sys.argv[2])
"""


def test_two_processes_registering_at_once_lose_nothing(tmp_path: Path) -> None:
    path, n = tmp_path / "registry.sqlite", 25
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(path), who, str(n)])
        for who in ("proc-a", "proc-b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    models = Registry(path).list()
    assert len(models) == 2 * n
    assert sorted(m["version"] for m in models) == list(range(1, 2 * n + 1))
    assert {m["record"]["lineage"]["run_id"] for m in models} == {
        f"proc-{p}-{i}" for p in "ab" for i in range(n)
    }
    assert len(Registry(path).history()) == 2 * n
