"""The fine-tuning job request (OpenAI's ``POST /v1/fine_tuning/jobs`` body) and cursor pages.

Unknown fields are refused, as OpenAI refuses them, so a misspelt hyperparameter is a 400 and
not a job that quietly ran with the default. Hyperparameters may come at the top level (the
older form) or under ``method.supervised`` (the newer); given both, they must agree. Only
``method: supervised`` runs here: ``dpo`` and ``reinforcement`` are a 400 saying so.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaltune.server.http import ApiError

__all__ = ["Hyperparameters", "JobRequest", "Method", "job_hyperparameters", "page"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: Literal["auto"] | Annotated[int, Field(ge=1, le=50)] = "auto"
    batch_size: Literal["auto"] | Annotated[int, Field(ge=1, le=256)] = "auto"
    learning_rate_multiplier: Literal["auto"] | Annotated[float, Field(gt=0, le=1000)] = "auto"


class Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: Hyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: Supervised | None = None
    dpo: dict[str, Any] | None = None
    reinforcement: dict[str, Any] | None = None


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    suffix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    integrations: list[Any] | None = None
    metadata: dict[str, str] | None = None
    evaltune: dict[str, Any] | None = None


def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """OpenAI's cursor page over ``items`` (newest first): those after ``after``, ``limit`` of
    them, and whether more follow."""
    if not 1 <= limit <= 100:
        raise ApiError(400, f"limit must be from 1 to 100; got {limit}")
    start = 0
    if after is not None:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise ApiError(400, f"after: {after!r} is not in this list; page with an id from it")
        start = ids.index(after) + 1
    data = items[start : start + limit]
    return {"object": "list", "data": data, "has_more": start + limit < len(items)}


def job_hyperparameters(req: JobRequest) -> dict[str, Any]:
    method = req.method or Method(type="supervised")
    if method.type != "supervised":
        raise ApiError(
            400,
            f"method {method.type!r} is not supported yet: evaltune serve runs supervised "
            'fine-tuning; send method {"type": "supervised"} (or no method)',
        )
    given = [
        h
        for h in (req.hyperparameters, method.supervised and method.supervised.hyperparameters)
        if h is not None
    ]
    if len(given) == 2 and given[0] != given[1]:
        raise ApiError(
            400,
            "hyperparameters and method.supervised.hyperparameters differ; "
            "give them once (OpenAI prefers the method's)",
        )
    return (given[-1] if given else Hyperparameters()).model_dump()
