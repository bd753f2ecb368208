"""Config text → plain data within bounds: the YAML loader, bounded JSON, and text checks.

A config is small and hand-written, so whatever it cannot sensibly hold is refused here, before
anything walks the data, with the line and key where it was found:

- YAML aliases (``*name``, also in ``<<: *base``): expanding them is how "billion laughs" hangs a
  loader and how a recursive alias makes a cycle; a config repeats a value instead;
- nesting deeper than ``MAX_DEPTH`` levels (every later step recurses into the data);
- integers of more than ``MAX_INT_DIGITS`` digits (Python refuses over 4300 with a bare
  ``ValueError``; no field needs more than 20);
- strings that are not Unicode text (a lone surrogate such as ``\\ud800``, or undecodable bytes
  from a shell argument): they cannot be written to the run's snapshot or printed.

Each problem is a ``BoundError`` carrying its 1-based line (0: not known) and key path; the
loader turns it into a ``ConfigError`` naming the file (or the override).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from evaltune.limits import MAX_DEPTH, MAX_INT_DIGITS, depth_over

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "BoundError",
    "compose_yaml",
    "find_bad_text",
    "load_json",
    "load_yaml",
    "parse_yaml_value",
]


Loc = tuple[str | int, ...]


class BoundError(ValueError):
    """Input a config cannot hold: ``message`` at ``line`` (1-based; 0 unknown) and ``loc``."""

    def __init__(
        self, message: str, *, line: int = 0, loc: Loc = (), node: yaml.Node | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.line, self.loc, self.node = message, line, loc, node


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep; a config needs far fewer"


def _too_long(digits: int) -> str:
    return f"an integer of {digits} digits; at most {MAX_INT_DIGITS} are accepted"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a number (YAML 1.1 wants ``1.0e-4``; people don't),
    refuses aliases and deep nesting while composing, and long integers while constructing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str | int] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if parent is not None:  # index: the key node in a mapping, the position in a sequence
            part = index.value if isinstance(index, yaml.ScalarNode) else index
            self._path.append(part if isinstance(part, int) else str(part))
        try:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise BoundError(
                    f"a YAML alias (*{event.anchor}); aliases are not supported in a config: "
                    "write the value out",
                    line=event.start_mark.line + 1,
                    loc=tuple(self._path),
                )
            if len(self._path) >= MAX_DEPTH:
                event = self.peek_event()
                raise BoundError(_too_deep(), line=event.start_mark.line + 1, loc=tuple(self._path))
            return super().compose_node(parent, index)
        finally:
            if parent is not None:
                self._path.pop()

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = len(re.sub(r"[^0-9a-fA-F]", "", str(node.value)))
        if digits > MAX_INT_DIGITS:
            raise BoundError(_too_long(digits), line=node.start_mark.line + 1, node=node)
        return super().construct_yaml_int(node)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def compose_yaml(text: str) -> yaml.Node | None:
    """The node tree of one YAML document (line numbers for messages); ``BoundError`` or
    ``yaml.YAMLError`` when it cannot be read."""
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def load_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The data of one YAML document and its node tree."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        try:
            return (loader.construct_document(root) if root is not None else None), root
        except BoundError as exc:
            target = exc.node
            if root is not None and target is not None:
                exc.loc = _loc_of(root, lambda node: node is target) or ()
            raise
    finally:
        loader.dispose()


def _loc_of(root: yaml.Node, hit: Callable[[yaml.Node], bool]) -> Loc | None:
    """The key path of the first node in ``root`` that ``hit`` picks (the tree is bounded)."""
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if hit(node):
            return loc
        if isinstance(node, yaml.MappingNode):
            stack += [(v, (*loc, str(k.value))) for k, v in reversed(node.value)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(v, (*loc, i)) for i, v in reversed(list(enumerate(node.value)))]
    return None


def parse_yaml_value(text: str) -> Any:
    """A YAML value as overrides read it: ``1e-4`` → float, ``[a, b]`` → list, ``""`` → None."""
    return load_yaml(text)[0]


def _json_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise BoundError(_too_long(digits))
    return int(text)


def load_json(text: str) -> Any:
    """JSON text as data; ``json.JSONDecodeError`` for bad syntax, ``BoundError`` (line and key
    found by composing the text as YAML, which JSON nearly always is) past the bounds."""
    try:
        data = json.loads(text, parse_int=_json_int)
    except RecursionError:
        data = _DEEP
    except BoundError as exc:
        digits = re.search(rf"\d{{{MAX_INT_DIGITS + 1},}}", text)
        line = text.count("\n", 0, digits.start()) + 1 if digits else 0
        loc: Loc | None = None
        try:
            root = compose_yaml(text)
            if root is not None:
                loc = _loc_of(root, lambda n: isinstance(n, yaml.ScalarNode) and _long(n.value))
        except (yaml.YAMLError, BoundError):
            pass
        raise BoundError(exc.message, line=line, loc=loc or ()) from None
    if data is _DEEP or depth_over(data, MAX_DEPTH):
        try:
            compose_yaml(text)
        except BoundError as exc:
            raise BoundError(_too_deep(), line=exc.line, loc=exc.loc) from None
        except yaml.YAMLError:
            pass
        raise BoundError(_too_deep())
    return data


_DEEP = object()


def _long(value: object) -> bool:
    return len(str(value).lstrip("-")) > MAX_INT_DIGITS


def find_bad_text(data: Any) -> tuple[Loc, str] | None:
    """The first key or string in ``data`` that is not Unicode text: its loc and a description
    (``a lone surrogate \\ud800 at character 3``)."""
    for loc, text in _strings(data, ()):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            char = text[exc.start].encode("unicode_escape").decode("ascii")
            return loc, f"text that is not valid Unicode ({char} at character {exc.start + 1})"
    return None


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield (*loc, key), key
            yield from _strings(item, (*loc, key if isinstance(key, int) else str(key)))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _strings(item, (*loc, i))
