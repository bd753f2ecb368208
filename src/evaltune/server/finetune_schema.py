"""The fine-tuning job request (OpenAI's ``POST /v1/fine_tuning/jobs`` body) and cursor pages.

Unknown fields are refused, as OpenAI refuses them, so a misspelt hyperparameter is a 400 and
not a job that quietly ran with the default. Hyperparameters may come at the top level (the
older form) or under ``method.supervised`` / ``method.dpo`` (the newer); given both, they
must agree. ``method: supervised`` and ``dpo`` (with ``beta``) run here; ``reinforcement`` is
a 400 saying so.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaltune.server.http import ApiError

__all__ = ["Hyperparameters", "JobRequest", "Method", "job_hyperparameters", "job_method", "page"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: Literal["auto"] | Annotated[int, Field(ge=1, le=50)] = "auto"
    batch_size: Literal["auto"] | Annotated[int, Field(ge=1, le=256)] = "auto"
    learning_rate_multiplier: Literal["auto"] | Annotated[float, Field(gt=0, le=1000)] = "auto"


class Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: Hyperparameters | None = None


class DpoHyperparameters(Hyperparameters):
    beta: Literal["auto"] | Annotated[float, Field(gt=0, le=2)] = "auto"


class Dpo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: DpoHyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: Supervised | None = None
    dpo: Dpo | None = None
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


def job_method(req: JobRequest) -> str:
    """``supervised`` or ``dpo``; a 400 for what does not run here."""
    method = req.method or Method(type="supervised")
    if method.type == "reinforcement":
        raise ApiError(
            400,
            "method 'reinforcement' is not supported yet: evaltune serve runs supervised and "
            'dpo fine-tuning; send method {"type": "supervised"} or {"type": "dpo"}',
        )
    return method.type


def job_hyperparameters(req: JobRequest) -> dict[str, Any]:
    """The job's hyperparameters (``beta`` too for dpo), ``auto`` where not given."""
    kind = job_method(req)
    method = req.method or Method(type="supervised")
    section = method.supervised if kind == "supervised" else method.dpo
    inner = section.hyperparameters if section is not None else None
    top = req.hyperparameters
    if (
        top is not None
        and inner is not None
        and top.model_dump() != {k: v for k, v in inner.model_dump().items() if k != "beta"}
    ):
        raise ApiError(
            400,
            f"hyperparameters and method.{kind}.hyperparameters differ; "
            "give them once (OpenAI prefers the method's)",
        )
    model = DpoHyperparameters if kind == "dpo" else Hyperparameters
    given = inner or top
    return model(**(given.model_dump() if given is not None else {})).model_dump()
