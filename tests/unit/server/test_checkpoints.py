"""Checkpoint paths: the local backend's layout, names that cannot escape the folder, listings."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltune.backends.local import checkpoint_folder
from evaltune.server.checkpoints import CheckpointStore
from evaltune.server.http import ApiError


def fake_checkpoint(store: CheckpointStore, model_id: str, kind: str, name: str) -> Path:
    folder, _ = store.new_folder(model_id, kind, name, overwrite=False)
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"0" * 10)
    return folder


def test_layout_matches_the_local_backend(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    folder = fake_checkpoint(store, "s1:train:0", "sampler_weights", "round-1")
    uri = "tinker://s1:train:0/sampler_weights/round-1"
    assert store.folder(uri) == folder == checkpoint_folder(uri, tmp_path)
    assert store.folder("s1:train:0/round-1") == folder  # the OpenAI-style short name
    assert store.uri("s1:train:0", "weights", "a") == "tinker://s1:train:0/weights/a"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("tinker://s1/weights/../../etc", 400),
        ("tinker://../weights/x", 400),
        ("tinker://s1/other/x", 400),
        ("tinker://s1/weights", 400),
        ("tinker://s1/weights/missing", 404),
        ("s1/../x", 404),
        ("nothing-like-a-path", 404),
    ],
)
def test_bad_or_missing_paths_are_refused(tmp_path: Path, path: str, status: int) -> None:
    with pytest.raises(ApiError) as err:
        CheckpointStore(tmp_path).folder(path)
    assert err.value.status == status


def test_names_are_checked_and_not_overwritten_by_default(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    fake_checkpoint(store, "m", "weights", "a")
    with pytest.raises(ApiError, match="already exists"):
        store.new_folder("m", "weights", "a", overwrite=False)
    assert store.new_folder("m", "weights", "a", overwrite=True)[0].name == "a"
    for bad in ("../a", ".hidden", "a/b", ""):
        with pytest.raises(ApiError, match="not allowed"):
            store.new_folder("m", "weights", bad, overwrite=False)


def test_listing_runs_and_checkpoints_and_deleting(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.write_run("s1:train:0", {"base_model": "tiny", "lora": {"rank": 4}})
    fake_checkpoint(store, "s1:train:0", "weights", "a")
    fake_checkpoint(store, "s1:train:0", "sampler_weights", "a")
    fake_checkpoint(store, "s2:train:0", "sampler_weights", "b")
    assert set(store.run_ids()) == {"s1:train:0", "s2:train:0"}
    assert store.read_run("s1:train:0")["lora"] == {"rank": 4}
    listed = store.checkpoints("s1:train:0")
    assert {(c.checkpoint_type, c.checkpoint_id) for c in listed} == {
        ("training", "weights/a"),
        ("sampler", "sampler_weights/a"),
    }
    assert all(c.size_bytes and c.size_bytes >= 10 for c in listed)
    assert len(store.all_checkpoints()) == 3
    store.delete("s1:train:0", "weights/a")
    assert [c.checkpoint_id for c in store.checkpoints("s1:train:0")] == ["sampler_weights/a"]
    with pytest.raises(ApiError) as err:
        store.delete("s1:train:0", "weights/a")
    assert err.value.status == 404
