"""A training model's LoRA slot on the engine, as both Tinker front-ends need it: what
``get_info`` reports, and ``load_state`` as a swap into a fresh slot.

Callers keep their own record of which slot a model holds (a ``TrainingClient`` attribute
in-process, a ``TrainingModel`` on the server): ``replace_slot`` takes that slot and returns the
new one, ``training_info`` the model's id and LoRA settings. Callers submit ``replace_slot`` to
the engine's worker, so it runs queued behind the model's earlier requests.
"""

from __future__ import annotations

from pathlib import Path

from tinker import types

from evaltune.engine import Engine, LoraSpec

__all__ = ["replace_slot", "training_info"]


def replace_slot(engine: Engine, old: str | None, folder: Path, with_optimizer: bool) -> str:
    """Load ``folder`` into a new training slot, then release ``old``; the new slot's name.

    Loading first means a bad checkpoint raises before anything is released: the model keeps
    the weights it had."""
    new = engine.load_training_slot(folder, with_optimizer)
    if old is not None:
        engine.release(old)
    return new


def training_info(
    engine: Engine, model_id: str, spec: LoraSpec, base_model: str
) -> types.GetInfoResponse:
    """``get_info`` of a LoRA model on ``engine``; ``base_model`` is the name it was asked by."""
    return types.GetInfoResponse(
        type="get_info",
        model_id=model_id,
        model_data=types.ModelData(
            arch=engine.architecture,
            model_name=base_model,
            tokenizer_id=str(engine.model_path),
        ),
        is_lora=True,
        lora_rank=spec.rank,
        model_name=base_model,
    )
