"""Plain-words descriptions of the schema: what a field expects, and how a value looks.

Shared by the loader's error messages and the generated reference, so both say the same thing
("an integer >= 1", "one of: local, tinker").
"""

from __future__ import annotations

import json
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, Tag
from pydantic.fields import FieldInfo

from evaltune.config.redact import mask_secrets
from evaltune.config.schema import RunConfig, did_you_mean

__all__ = [
    "describe",
    "dotted",
    "field_at",
    "fields_of",
    "is_model",
    "printable",
    "shorten",
    "show",
    "split_annotated",
    "suggest_field",
    "variants",
]

Loc = tuple[str | int, ...]


def dotted(loc: Loc) -> str:
    """``loc`` as a user writes it (``evals.0.threshold``); a very deep one is cut in the middle."""
    parts = [shorten(printable(str(part)), 40) for part in loc]
    if len(parts) > 8:
        parts = [*parts[:6], f"…({len(parts) - 7} more)", parts[-1]]
    return ".".join(parts) or "(top level)"


def printable(text: str) -> str:
    """``text`` with what cannot be printed as UTF-8 (a lone surrogate) escaped: ``\\ud800``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and end (a path's file)."""
    if len(text) <= limit:
        return text
    keep = max(limit - 1, 2)
    return f"{text[: keep - keep // 3]}…{text[len(text) - keep // 3 :]}"


def show(value: Any, limit: int = 60) -> str:
    """A value as a user would write it: JSON-ish, double-quoted strings, secrets masked; a
    long list or mapping is cut at ``limit`` characters, a string (often a path the user must
    recognise) at 160, keeping its end."""
    text = printable(json.dumps(mask_secrets(value), default=str, ensure_ascii=False))
    if isinstance(value, str):
        return shorten(text, 160)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_annotated(ann: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while get_origin(ann) is Annotated:
        ann, *more = get_args(ann)
        metadata = [*more, *metadata]
    return ann, metadata


def _members(ann: Any) -> tuple[list[Any], bool]:
    """A union's members without None, and whether None was one."""
    if get_origin(ann) in (Union, types.UnionType):
        args = get_args(ann)
        return [a for a in args if a is not type(None)], type(None) in args
    return [ann], False


def is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def variants(ann: Any) -> dict[str, type[BaseModel]]:
    """The members of a tagged union of models (``EvalSuiteConfig``) by tag; {} for any other
    annotation."""
    inner, _ = split_annotated(ann)
    members, _ = _members(inner)
    out: dict[str, type[BaseModel]] = {}
    for member in members:
        model, metadata = split_annotated(member)
        tag = next((m.tag for m in metadata if isinstance(m, Tag)), None)
        if tag is not None and is_model(model):
            out[tag] = model
    return out


def fields_of(ann: Any) -> list[str]:
    """The field names of a model, or of every variant of a tagged union, in order."""
    inner, _ = split_annotated(ann)
    models = [inner] if is_model(inner) else list(variants(ann).values())
    return list(dict.fromkeys(name for model in models for name in model.model_fields))


def field_at(loc: Loc, *, tagged: bool = False) -> tuple[Any, FieldInfo | None]:
    """The annotation at a RunConfig ``loc`` and the FieldInfo of its last named field.

    ``(None, None)`` when ``loc`` leaves the schema; ``Any`` inside a free-form mapping. At a
    tagged union, a ``tagged`` loc (a validation error's) names the variant next; an untagged one
    (an override's) finds the first variant with the key."""
    ann: Any = RunConfig
    info: FieldInfo | None = None
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        members_by_tag = variants(ann)
        if members_by_tag and tagged:
            if part not in members_by_tag:
                return None, None
            ann = members_by_tag[str(part)]
            continue
        if members_by_tag:
            ann = next((m for m in members_by_tag.values() if part in m.model_fields), None)
            if ann is None:
                return None, None
        inner, _ = split_annotated(ann)
        members, _ = _members(inner)
        inner = members[0] if len(members) == 1 else inner
        if is_model(inner):
            if not isinstance(part, str) or part not in inner.model_fields:
                return None, None
            info = inner.model_fields[part]
            ann = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        elif get_origin(inner) in (tuple, list) and isinstance(part, int):
            ann = get_args(inner)[0]
        elif get_origin(inner) is dict or inner is Any:
            return Any, info
        else:
            return None, None
    return ann, info


def suggest_field(name: str, fields: list[str]) -> str:
    """ "did you mean …?" from this section's fields, else from any section, else the choices."""
    close = did_you_mean(name, fields)
    if close:
        return f"did you mean {close!r}?"
    elsewhere = [dotted(loc) for loc in _all_field_locs() if loc[-1] == name]
    if elsewhere:
        return f"did you mean {elsewhere[0]!r}?"
    return "expected one of: " + ", ".join(fields)


def _all_field_locs(model: type[BaseModel] = RunConfig, prefix: Loc = ()) -> list[Loc]:
    locs: list[Loc] = []
    for name, info in model.model_fields.items():
        locs.append((*prefix, name))
        inner, _ = split_annotated(info.annotation)
        if is_model(inner):
            locs += _all_field_locs(inner, (*prefix, name))
    return locs


def describe(ann: Any, metadata: list[Any] | None = None) -> str:
    """What a value of this annotation looks like, in words: "an integer >= 1"."""
    if variants(ann):
        return "a mapping"
    ann, more = split_annotated(ann)
    metadata = [*(metadata or []), *more]
    members, nullable = _members(ann)
    if len(members) > 1:
        text = " or ".join(describe(m, metadata if i == 0 else None) for i, m in enumerate(members))
    else:
        one, inner = split_annotated(members[0])  # str | None with the str Annotated
        text = _describe_one(one, [*metadata, *inner])
    return f"{text} or null" if nullable else text


def _describe_one(ann: Any, metadata: list[Any]) -> str:
    if get_origin(ann) is Literal:
        values = get_args(ann)
        if len(values) == 1:
            return json.dumps(values[0])
        return "one of: " + ", ".join(str(v) for v in values)
    if ann is bool:
        return "true or false"
    if ann is int:
        return "an integer" + _bounds(metadata)
    if ann is float:
        return "a number" + _bounds(metadata)
    if ann is str:
        return "a non-empty string" if _min_len(metadata) else "a string"
    if get_origin(ann) in (tuple, list):
        item, _ = split_annotated(get_args(ann)[0])
        mappings = is_model(item) or bool(variants(get_args(ann)[0]))
        return "a list of mappings" if mappings else "a list of strings"
    if get_origin(ann) is dict or is_model(ann):
        return "a mapping"
    return "a value"


def _bounds(metadata: list[Any]) -> str:
    low = high = None
    for m in metadata:
        for item in getattr(m, "metadata", [m]):  # FieldInfo inside Annotated carries its own
            if isinstance(item, at.Ge):
                low = ("[", ">=", item.ge)
            elif isinstance(item, at.Gt):
                low = ("(", ">", item.gt)
            elif isinstance(item, at.Le):
                high = ("]", "<=", item.le)
            elif isinstance(item, at.Lt):
                high = (")", "<", item.lt)
    if low and high:
        return f" in {low[0]}{low[2]}, {high[2]}{high[0]}"
    if low or high:
        bound = low or high
        assert bound is not None
        return f" {bound[1]} {bound[2]}"
    return ""


def _min_len(metadata: list[Any]) -> bool:
    for m in metadata:
        for item in getattr(m, "metadata", [m]):
            if isinstance(item, at.MinLen) and item.min_length > 0:
                return True
    return False
