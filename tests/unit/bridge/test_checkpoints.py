"""The checkpoint store's rules, one set for both backends: ``tinker://`` paths ↔ folders, names
that cannot escape the root, the overwrite rule, run records and listings."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltune.bridge import (
    KINDS,
    CheckpointError,
    CheckpointNotFound,
    CheckpointRef,
    CheckpointStore,
)
from evaltune.errors import BackendError


def fake_checkpoint(store: CheckpointStore, model_id: str, kind: str, name: str) -> Path:
    folder, _ = store.new_folder(model_id, kind, name, overwrite=False)
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"0" * 10)
    (folder / "adapter_config.json").write_text("{}")
    return folder


@pytest.mark.parametrize("kind", list(KINDS))
def test_uris_map_to_folders_under_the_root(tmp_path: Path, kind: str) -> None:
    store = CheckpointStore(tmp_path)
    folder = fake_checkpoint(store, "local-abc", kind, "step-1")
    uri = f"tinker://local-abc/{kind}/step-1"
    assert folder == tmp_path / "local-abc" / kind / "step-1"
    assert store.new_folder("local-abc", kind, "step-1", overwrite=True) == (folder, uri)
    assert store.folder(uri) == folder
    assert store.folder(uri + "/") == folder
    assert CheckpointRef.parse(uri) == CheckpointRef("local-abc", kind, "step-1")
    assert CheckpointRef("local-abc", kind, "step-1").uri == uri


def test_sdk_model_ids_and_the_short_name(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    sampler = fake_checkpoint(store, "s1:train:0", "sampler_weights", "round-1")
    assert store.folder("tinker://s1:train:0/sampler_weights/round-1") == sampler
    assert store.folder("s1:train:0/round-1") == sampler  # the OpenAI-style short name
    training = fake_checkpoint(store, "s1:train:0", "weights", "round-2")
    assert store.folder("s1:train:0/round-2") == training  # training weights when no sampler
    fake_checkpoint(store, "s1:train:0", "weights", "round-1")
    assert store.folder("s1:train:0/round-1") == sampler  # sampler weights first


@pytest.mark.parametrize(
    "uri",
    [
        "tinker://",
        "tinker://m1",
        "tinker://m1/weights",
        "tinker://m1/checkpoints/a",
        "tinker://m1/other/a",
        "tinker://m1/weights/a/b",
        "tinker://../weights/a",
        "tinker://m1/weights/..",
        "tinker://m1/weights/../../etc",
        "tinker://m1//weights/a",
        "tinker://m 1/weights/a",
    ],
)
def test_malformed_uris_are_refused(tmp_path: Path, uri: str) -> None:
    (tmp_path / "m1" / "weights" / "a" / "b").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="malformed checkpoint path") as err:
        CheckpointStore(tmp_path).folder(uri)
    assert not isinstance(err.value, CheckpointNotFound)  # a 400 on the wire, not a 404
    assert "tinker://<model_id>/weights/<name>" in str(err.value)


def test_missing_checkpoints_are_not_found(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    with pytest.raises(CheckpointNotFound, match="not found") as err:
        store.folder("tinker://m1/weights/nope")
    assert str(tmp_path / "m1" / "weights" / "nope") in str(err.value)
    # A folder is a checkpoint once the engine has written its adapter_config.json (last).
    (tmp_path / "m1" / "weights" / "half").mkdir(parents=True)
    with pytest.raises(CheckpointNotFound):
        store.folder("tinker://m1/weights/half")
    for short in ("s1/../x", "nothing-like-a-path", "s1/missing", "/x"):
        with pytest.raises(CheckpointNotFound):
            store.folder(short)


def test_names_are_checked_and_not_overwritten_by_default(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    folder = fake_checkpoint(store, "m", "weights", "a")
    with pytest.raises(CheckpointError, match="already exists") as err:
        store.new_folder("m", "weights", "a", overwrite=False)
    assert "overwrite=True" in str(err.value) and str(folder) in str(err.value)
    assert store.new_folder("m", "weights", "a", overwrite=True)[0] == folder
    bad = ["../x", "", ".hidden", "a/b", "a b", "x" * 129, "..", "-", "ckpt\n"]
    for name in bad:
        with pytest.raises(CheckpointError, match="is not allowed"):
            store.new_folder("m", "sampler_weights", name, overwrite=True)
    with pytest.raises(CheckpointError, match="malformed model id"):
        store.new_folder("../m", "weights", "a", overwrite=False)
    assert not (tmp_path / "m" / "sampler_weights").exists()


def test_store_errors_are_backend_errors() -> None:
    assert issubclass(CheckpointNotFound, CheckpointError)
    assert issubclass(CheckpointError, BackendError)  # the CLI prints them; the server: a 4xx


def test_listing_runs_and_checkpoints_and_deleting(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.write_run("s1:train:0", {"base_model": "tiny", "lora": {"rank": 4}})
    fake_checkpoint(store, "s1:train:0", "weights", "a")
    fake_checkpoint(store, "s1:train:0", "sampler_weights", "a")
    fake_checkpoint(store, "s2:train:0", "sampler_weights", "b")
    assert set(store.run_ids()) == {"s1:train:0", "s2:train:0"}
    assert store.read_run("s1:train:0")["lora"] == {"rank": 4}
    listed = store.checkpoints("s1:train:0")
    assert {(c.checkpoint_type, c.checkpoint_id, c.tinker_path) for c in listed} == {
        ("training", "weights/a", "tinker://s1:train:0/weights/a"),
        ("sampler", "sampler_weights/a", "tinker://s1:train:0/sampler_weights/a"),
    }
    assert all(c.size_bytes and c.size_bytes >= 10 for c in listed)
    assert len(store.all_checkpoints()) == 3
    store.delete("s1:train:0", "weights/a")
    assert [c.checkpoint_id for c in store.checkpoints("s1:train:0")] == ["sampler_weights/a"]
    with pytest.raises(CheckpointNotFound):
        store.delete("s1:train:0", "weights/a")
    with pytest.raises(CheckpointError, match="malformed checkpoint id"):
        store.delete("s1:train:0", "other/a")


def test_local_folder_is_none_for_what_the_store_does_not_hold(tmp_path: Path) -> None:
    """What the loop's report asks: is there a PEFT folder on this machine for a sampler path?
    A remote (Tinker service) checkpoint, a half-written one or a malformed path: no."""
    store = CheckpointStore(tmp_path)
    folder = fake_checkpoint(store, "local-abc", "sampler_weights", "round-1")
    assert store.local_folder("tinker://local-abc/sampler_weights/round-1") == folder
    assert store.local_folder("tinker://svc-123:train:0/sampler_weights/round-1") is None
    half, _ = store.new_folder("local-abc", "sampler_weights", "round-2", overwrite=False)
    half.mkdir(parents=True)  # no adapter_config.json yet
    assert store.local_folder("tinker://local-abc/sampler_weights/round-2") is None
    assert store.local_folder("tinker://local-abc/weights/a/b") is None
