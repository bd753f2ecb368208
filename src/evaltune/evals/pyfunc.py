"""The Python-function grader: score with the user's own code.

``function`` is ``"package.module:name"`` (imported from the environment, like an entry point)
or ``"path/to/file.py:name"`` (loaded from that file; a relative path is relative to the
current directory; a config makes it absolute against the config's folder). The function is
called as ``fn(response, target, example)``, or with fewer arguments when its signature takes
fewer (``fn(response, target)``, ``fn(response)``), and may return:

- a ``bool``: 1.0 or 0.0;
- a number in [0, 1];
- a ``GradeResult`` (score, detail, per-sample metrics);
- a mapping ``{"score": ..., "detail": ..., "metrics": {...}}``.

Anything else, a score outside [0, 1], or an exception raised by the function is an
``EvalError`` naming the function and the example: a grader that fails silently would report
a wrong score, which is worse than stopping.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltune.data.example import Example
from evaltune.errors import EvalError
from evaltune.evals.graders import GradeResult

__all__ = ["FunctionGrader", "load_function", "make_function_grader"]


def load_function(spec: str) -> Callable[..., Any]:
    """The callable ``spec`` names (``module:name`` or ``file.py:name``); ``EvalError`` says
    what could not be found and how to write the spec."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise EvalError(
            f"grader function {spec!r}: expected 'package.module:function' or "
            "'path/to/file.py:function'"
        )
    if where.endswith(".py"):
        module = _module_from_file(Path(where), spec)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise EvalError(
                f"grader function {spec!r}: cannot import module {where!r} ({exc}); install it, "
                "or give a file path such as 'graders.py:my_grader'"
            ) from None
    fn = getattr(module, name, None)
    if not callable(fn):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise EvalError(
            f"grader function {spec!r}: {where} has no function {name!r}; it defines: "
            + (", ".join(found) or "no public functions")
        )
    return fn


def _module_from_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise EvalError(f"grader function {spec!r}: no file {path} (from {Path.cwd()})")
    key = f"evaltune_grader_{abs(hash(str(path.resolve())))}"
    if key in sys.modules:
        return sys.modules[key]
    loader_spec = importlib.util.spec_from_file_location(key, path)
    assert loader_spec is not None and loader_spec.loader is not None
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        raise EvalError(
            f"grader function {spec!r}: importing {path} failed: {type(exc).__name__}: {exc}"
        ) from exc
    sys.modules[key] = module
    return module


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 3
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return min(3, len(positional))


@dataclass(frozen=True)
class FunctionGrader:
    spec: str
    fn: Callable[..., Any]

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        args = (response, target, example)[: max(1, _arity(self.fn))]
        try:
            value = self.fn(*args)
        except Exception as exc:
            raise EvalError(
                f"grader function {self.spec!r} raised {type(exc).__name__} on example "
                f"{example.id!r}: {exc}"
            ) from exc
        return self._to_result(value, example)

    def _to_result(self, value: Any, example: Example) -> GradeResult:
        if isinstance(value, GradeResult):
            result = value
        elif isinstance(value, bool):
            result = GradeResult(float(value), f"{self.spec} returned {value}")
        elif isinstance(value, int | float):
            result = GradeResult(float(value), f"{self.spec} returned {value:g}")
        elif isinstance(value, Mapping) and "score" in value:
            metrics = {str(k): float(v) for k, v in dict(value.get("metrics") or {}).items()}
            result = GradeResult(float(value["score"]), str(value.get("detail", "")), metrics)
        else:
            raise EvalError(
                f"grader function {self.spec!r} returned {type(value).__name__} for example "
                f"{example.id!r}; return a bool, a number in [0, 1], a GradeResult or "
                "{'score': ..., 'detail': ...}"
            )
        if not 0.0 <= result.score <= 1.0:
            raise EvalError(
                f"grader function {self.spec!r} scored example {example.id!r} {result.score}; "
                "scores must be in [0, 1]"
            )
        return result


def make_function_grader(function: str) -> FunctionGrader:
    """The ``python`` grader: ``function`` is ``module:name`` or ``file.py:name``."""
    return FunctionGrader(function, load_function(function))
