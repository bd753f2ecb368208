"""Reading a config file into a ``RunConfig``: parse, map the seed format, apply overrides,
resolve paths, validate, and report every problem at once as ``file:line: path: ...``.

Line numbers come from the YAML node tree (JSON is parsed with ``json`` for exact syntax-error
positions, then composed as YAML for key lines). Relative paths written in the file are made
absolute against the file's folder; paths given in overrides against the current directory,
as a shell user expects. The loaded config therefore holds absolute paths only, and its
snapshot (``dump_config``) reproduces the run from any directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from evaltune.config.messages import (
    describe,
    dotted,
    field_at,
    fields_of,
    is_model,
    printable,
    shorten,
    show,
    split_annotated,
    suggest_field,
)
from evaltune.config.names import NameCatalog, registered_names
from evaltune.config.parse import (
    BoundError,
    compose_yaml,
    find_bad_text,
    load_json,
    load_yaml,
    parse_yaml_value,
)
from evaltune.config.redact import is_secret_key
from evaltune.config.schema import (
    SUITE_SOURCES,
    FieldError,
    RunConfig,
    did_you_mean,
    duplicate_suite_names,
    map_paths,
)
from evaltune.config.seed import is_seed_format, map_seed
from evaltune.errors import ConfigError

__all__ = ["dump_config", "load_config", "parse_yaml_value"]

Loc = tuple[str | int, ...]


@dataclass
class _Source:
    shown: str  # the path as the user gave it
    text: str
    root: yaml.Node | None
    provenance: dict[Loc, Loc] = field(default_factory=dict)  # RunConfig loc -> file loc
    overrides: dict[Loc, str] = field(default_factory=dict)  # RunConfig loc -> override text

    def line(self, loc: Loc) -> int:
        if self.root is None:
            return _json_line(self.text, loc)
        node, line = self.root, self.root.start_mark.line + 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                hit = [(k, v) for k, v in node.value if getattr(k, "value", None) == str(part)]
                if not hit:
                    break
                key, node = hit[-1]  # a duplicated key: the later one is what was loaded
                line = key.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def where(self, loc: Loc) -> tuple[int, str, str]:
        """(line, prefix, shown path) of a RunConfig ``loc``: an override, or file:line."""
        for over_loc, text in self.overrides.items():
            if loc[: len(over_loc)] == over_loc:
                return 0, f"override {text}", dotted(loc)
        src = self.source_loc(loc)
        line = self.line(src)
        path = dotted(src) if src == loc else f"{dotted(src)} ({dotted(loc)})"
        return line, f"{self.shown}:{line}", path

    def source_loc(self, loc: Loc) -> Loc:
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.provenance:
                return self.provenance[loc[:n]] + loc[n:]
        return loc


def _json_line(text: str, loc: Loc) -> int:
    """Fallback when JSON is not also valid YAML: the line of the last key of ``loc``."""
    for part in reversed(loc):
        if isinstance(part, str):
            match = re.search(rf'"{re.escape(part)}"\s*:', text)
            if match:
                return text.count("\n", 0, match.start()) + 1
    return 1


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    check_files: bool = True,
    names: NameCatalog | None = None,
) -> RunConfig:
    """Load, override and validate a YAML or JSON run config (or a seed-format JSON).

    ``overrides`` are ``dotted.key=value`` strings (``evals.0.threshold=0.9``), applied before
    validation. ``check_files`` requires data and eval files to exist. ``names`` are the grader,
    benchmark, bundle and policy names to accept (default: the catalogue registered in
    ``config.names``, which ``loop.context`` fills from the layers that own the names). Raises
    ``ConfigError`` listing every problem.
    """
    if isinstance(overrides, str):  # one override passed bare: not a sequence of characters
        overrides = [overrides]
    path = Path(path)
    data, source = _read(path)
    problems: list[tuple[int, str]] = _duplicate_keys(source)
    if data is None:
        raise ConfigError(
            f"{source.shown}:1: the config is empty; expected a mapping with at least `data` and "
            "`evals` (see examples/configs/minimal.yaml)"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source.shown}:1: expected a mapping of config keys (base_model, data, evals, ...); "
            f"found {show(data)}"
        )
    reported: set[Loc] = set()
    if is_seed_format(data):
        mapping = map_seed(data)
        data, source.provenance = mapping.data, mapping.provenance
        for src, message in mapping.errors:
            line = source.line(src)
            problems.append((line, f"{source.shown}:{line}: {dotted(src)}: {message}"))
            reported.add(src)
    data = map_paths(data, path.parent.absolute())
    problems += _apply_overrides(data, overrides, source)
    bad = find_bad_text(data)
    if bad is not None:
        line, prefix, shown = source.where(bad[0])
        problems.append((line, f"{prefix}: {shown}: {bad[1]}; write it as UTF-8 text"))
    context = {
        "check_files": check_files,
        "names": names if names is not None else registered_names(),
    }
    try:
        config = RunConfig.model_validate(data, context=context)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for err in errors:
            if err["type"] == "too_short" and _has_deeper(err, errors):
                continue  # "at least 1 item" only because every item failed: noise
            problem = _format(err, source, reported)
            if problem is not None:
                problems.append(problem)
        problems += _raw_duplicate_names(data, source, reported)
    if problems:
        # dict: one line per distinct message (a seed key feeding several suites errs once)
        lines = list(dict.fromkeys(text for _, text in sorted(problems, key=lambda p: p[0])))
        if len(lines) == 1:
            raise ConfigError(lines[0])
        raise ConfigError(f"{len(lines)} problems in {source.shown}:\n  " + "\n  ".join(lines))
    return config.resolve_paths(path.parent.absolute())


def _raw_duplicate_names(data: Any, source: _Source, reported: set[Loc]) -> list[tuple[int, str]]:
    """Duplicate suite names in the raw ``evals`` list, formatted as the validator's would be."""
    suites = data.get("evals") if isinstance(data, dict) else None
    if not isinstance(suites, list):
        return []
    names = [s.get("name") if isinstance(s, dict) else None for s in suites]
    out = []
    for problem in duplicate_suite_names(names):
        err = {"type": "value_error", "loc": ("evals",), "input": None, "ctx": {"error": problem}}
        formatted = _format(cast(ErrorDetails, err), source, reported)
        if formatted is not None:
            out.append(formatted)
    return out


def _has_deeper(err: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    loc = tuple(err["loc"])
    return any(len(e["loc"]) > len(loc) and tuple(e["loc"][: len(loc)]) == loc for e in errors)


def dump_config(config: RunConfig) -> str:
    """The config as YAML, for the run folder: absolute paths, no secrets, reloadable as is."""
    body = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return "# evaltune run config (resolved; reload with evaltune.config.load_config)\n" + body


def _read(path: Path) -> tuple[Any, _Source]:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"config path is not a file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    data: Any = None
    shown = printable(str(path))
    if path.suffix.lower() == ".json":
        try:
            data = load_json(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except BoundError as exc:
            raise ConfigError(_bound_message(shown, exc)) from None
        try:
            root = compose_yaml(text)
        except (yaml.YAMLError, BoundError):
            root = None  # lines then come from a text search for the key
        return data, _Source(shown, text, root)
    try:
        data, root = load_yaml(text)
    except BoundError as exc:
        raise ConfigError(_bound_message(shown, exc)) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_error(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return data, _Source(shown, text, root)


def _bound_message(shown: str, exc: BoundError) -> str:
    where = f"{shown}:{exc.line}" if exc.line else shown
    return f"{where}: {dotted(exc.loc)}: {exc.message}" if exc.loc else f"{where}: {exc.message}"


def _yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = exc.problem or "syntax error"
    if exc.context:
        problem += f" ({exc.context})"
    if "\\t" in problem or "\t" in problem:
        problem += "; indent YAML with spaces, not tabs"
    return f"{where}: invalid YAML: {problem}"


def _duplicate_keys(source: _Source) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []

    def walk(node: yaml.Node, loc: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(getattr(key, "value", ""))
                line = key.start_mark.line + 1
                if name in first:
                    found.append(
                        (
                            line,
                            f"{source.shown}:{line}: {dotted((*loc, name))}: duplicate key "
                            f"(first at line {first[name]}); only the last one would count",
                        )
                    )
                first.setdefault(name, line)
                walk(value, (*loc, name))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*loc, i))

    if source.root is not None:
        walk(source.root, ())
    return found


def _untagged(loc: Loc) -> Loc:
    """``loc`` without the tag a tagged union puts after its position (``evals.0.bundle.limit``
    is ``evals.0.limit`` in the file); the tagged ``loc`` still finds the variant's fields."""
    if len(loc) > 2 and loc[0] == "evals" and isinstance(loc[1], int) and loc[2] in SUITE_SOURCES:
        return loc[:2] + loc[3:]
    return loc


def _format(err: ErrorDetails, source: _Source, reported: set[Loc]) -> tuple[int, str] | None:
    tagged: Loc = tuple(err["loc"])
    loc = _untagged(tagged)
    ctx = err.get("ctx") or {}
    found: str | None = "nothing" if err["type"] == "missing" else show(err.get("input"))
    exc = ctx.get("error")
    if isinstance(exc, FieldError):
        loc += exc.loc
        expected = exc.expected
        if exc.hide_found:
            found = None
        elif exc.found is not FieldError.UNSET:
            found = show(exc.found)
    elif err["type"] == "extra_forbidden":
        expected, found = _unknown_field(tagged, tagged=True), None
    else:
        expected = _expected(err, tagged)
    if err["type"] != "extra_forbidden":
        expected = f"expected {expected}"
    if source.provenance and source.source_loc(loc) in reported:
        return None  # the seed mapping already reported this key
    line, prefix, shown = source.where(loc)
    if source.provenance and "(" in shown and source.source_loc(loc)[0] in _FAN_OUT:
        shown = shown.split(" (")[0]  # eval_threshold (evals.0.threshold): name the seed key only
    tail = f"; found {found}" if found is not None else ""
    return line, f"{prefix}: {shown}: {expected}{tail}"


_FAN_OUT = ("eval_threshold",)  # seed keys copied into several RunConfig fields


def _unknown_field(loc: Loc, *, tagged: bool = False) -> str:
    name = str(loc[-1])
    if "api_key" in name and name != "api_key_env":
        return (
            "unknown field: never put a key in a config; set it in the environment variable "
            "named by tinker.api_key_env (default TINKER_API_KEY)"
        )
    ann, _ = field_at(loc[:-1], tagged=tagged)
    return "unknown field; " + suggest_field(name, fields_of(ann))


def _expected(err: ErrorDetails, loc: Loc) -> str:
    """What was expected at ``loc``, a validation error's (tagged) location."""
    kind = err["type"]
    ann, info = field_at(loc, tagged=True)
    wanted = describe(ann) if ann is not None else None
    if kind == "value_error":  # a validator's own sentence says it best
        return err["msg"].removeprefix("Value error, ")
    if kind == "missing":
        note = ""
        if info is not None and info.description:
            first = info.description.split(". ")[0].rstrip(".")
            note = f" (required: {first[0].lower()}{first[1:]})"
        return f"{wanted or 'a value'}{note}"
    if kind == "literal_error" and wanted and wanted.startswith("one of: "):
        choices = wanted.removeprefix("one of: ").split(", ")
        close = did_you_mean(err.get("input"), choices)
        return wanted + (f" (did you mean {close!r}?)" if close else "")
    if kind == "too_short":
        size = (err.get("ctx") or {}).get("min_length", 1)
        return f"{wanted or 'a list'} with at least {size} item{'s' if size != 1 else ''}"
    if wanted and wanted != "a value":
        return wanted
    return err["msg"][0].lower() + err["msg"][1:]


def _apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], source: _Source
) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    cwd = Path.cwd()
    for text in overrides:
        key, sep, raw = text.partition("=")
        key = key.strip()
        shown = repr(shorten(f"{key}=…" if _secret_override(key, raw) else text, 80))
        loc, problem = _override_loc(key) if sep and key else ((), None)
        if not sep or not key:
            problem = "expected key=value with a dotted key, e.g. training.learning_rate=1e-4"
        bad = find_bad_text(raw)
        if problem is None and bad is not None:
            problem = f"the value holds {bad[1]}; write it as UTF-8 text"
        elif problem is None:
            try:
                value = map_paths(parse_yaml_value(raw), cwd, loc)
            except BoundError as exc:
                verb = "is" if exc.message.startswith("nested") else "holds"
                problem = f"the value {verb} {exc.message}"
            except yaml.YAMLError as exc:
                reason = getattr(exc, "problem", None) or "syntax error"
                problem = f"the value is not valid YAML ({reason})"
            else:
                problem = _set(data, loc, value)
        if problem is not None:
            problems.append((0, f"override {shown}: {problem}"))
        else:
            source.overrides[loc] = shown
    return problems


def _secret_override(key: str, raw: str) -> bool:
    """Never echo a pasted secret: a secret-looking key, or a mapping value with one."""
    keys = re.findall(r"(?<![\w.-])[\w.-]+(?=[\"']?\s*:)", raw)  # linear: words start once
    return is_secret_key(key) or any(is_secret_key(k) for k in keys)


def _override_loc(key: str) -> tuple[Loc, str | None]:
    loc: Loc = ()
    for part in key.split("."):
        ann, _ = field_at(loc)
        inner, _ = split_annotated(ann)
        if ann is None or not part:
            return loc, f"{key}: not a config path"
        if is_model(inner) and part not in inner.model_fields:
            if "api_key" in part and part != "api_key_env":
                return loc, f"{key}: {_unknown_field((*loc, part)).removeprefix('unknown field: ')}"
            return loc, f"{key}: unknown field; {suggest_field(part, list(inner.model_fields))}"
        loc = (*loc, int(part) if not is_model(inner) and part.isdigit() else part)
        if field_at(loc)[0] is None:
            return loc, f"{key}: {dotted(loc[:-1])} has no field {part!r}"
    return loc, None


def _set(data: dict[str, Any], loc: Loc, value: Any) -> str | None:
    """Put ``value`` at ``loc``, creating missing sections; list items must already exist."""
    node: Any = data
    for i, part in enumerate(loc):
        if isinstance(part, int) and not (isinstance(node, list) and part < len(node)):
            size = len(node) if isinstance(node, list) else 0
            return (
                f"{dotted(loc)}: index {part} is out of range ({dotted(loc[:i])} has {size} "
                f"item{'s' if size != 1 else ''}); set the whole list instead"
            )
        if i == len(loc) - 1:
            node[part] = value
            return None
        child = node[part] if isinstance(part, int) else node.get(part)
        if isinstance(loc[i + 1], str) and not isinstance(child, dict):
            child = node[part] = {}  # e.g. lora.rank=8 with no lora section yet
        node = child
    return None
