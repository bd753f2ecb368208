"""A training model's slot: the load_state swap (a bad checkpoint keeps the old weights) and
get_info."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltune.bridge import replace_slot, training_info
from evaltune.engine import Engine, LoraSpec
from evaltune.errors import EngineError

# Releasing the active adapter makes PEFT pick another one and say so; expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Adapter .* was active which is now deleted")


@pytest.fixture
def engine(tiny_model_dir: Path) -> Engine:
    return Engine(str(tiny_model_dir))


def test_replace_slot_loads_first_then_releases(engine: Engine, tmp_path: Path) -> None:
    old = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    engine.save_sampler(old, tmp_path / "sampler")
    engine.save_state(old, tmp_path / "state")
    with pytest.raises(EngineError, match="no optimizer state"):
        replace_slot(engine, old, tmp_path / "sampler", with_optimizer=True)
    assert old in engine._train  # the failed load released nothing
    new = replace_slot(engine, old, tmp_path / "state", with_optimizer=True)
    assert new != old and new in engine._train and old not in engine._train
    assert replace_slot(engine, None, tmp_path / "state", with_optimizer=False) in engine._train


def test_training_info(engine: Engine) -> None:
    info = training_info(engine, "s1:train:0", LoraSpec(rank=8), "tiny")
    assert (info.model_id, info.lora_rank, info.is_lora) == ("s1:train:0", 8, True)
    assert info.model_name == info.model_data.model_name == "tiny"
    assert info.model_data.tokenizer_id == str(engine.model_path)
    assert info.model_data.arch == engine.architecture
