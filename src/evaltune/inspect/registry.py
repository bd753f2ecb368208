"""The ``inspect_ai`` entry point: registers the ``evaltune`` model provider with Inspect.

pyproject's ``[project.entry-points.inspect_ai]`` names this module; Inspect imports it the first
time a model string starts with a provider it does not know (``evaltune/...``). The provider
class is imported only when Inspect asks for it, so listing providers stays cheap.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import modelapi

__all__ = ["evaltune"]


@modelapi(name="evaltune")
def evaltune() -> Any:
    from evaltune.inspect.provider import EvaltuneModelAPI

    return EvaltuneModelAPI
