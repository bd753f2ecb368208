"""The OpenAI ``multi`` grader: named sub-graders, combined by a ``calculate_output`` formula.

The formula is arithmetic over the sub-graders' keys (``0.5 * name + 0.5 * arguments``) with
the operators and functions OpenAI's guide lists: ``+ - * /``, ``^`` for a power (``**`` too),
parentheses, numbers, and ``min``, ``max``, ``abs``, ``floor``, ``ceil``, ``exp``, ``sqrt``,
``log``. It is parsed once with ``ast`` and evaluated by walking that tree, allowing nothing
else: never ``eval``. Each key stands for its sub-grader's own output (a ``score_model`` on its
range); the result is clamped to [0, 1] for evaltune's score and kept as it is in ``value``,
and every sub-grader's output is reported with it (``parts``).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from evaltune.errors import EvalError
from evaltune.evals.openai_graders.base import Context, Node, NodeScore, Spec

__all__ = ["FUNCTIONS", "Formula", "MultiGrader"]

FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil,
    "exp": math.exp, "sqrt": math.sqrt, "log": math.log,
}  # fmt: skip
_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow,
}  # fmt: skip
_UNARY: dict[type, Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}


@dataclass(frozen=True)
class Formula:
    text: str
    tree: ast.Expression

    @classmethod
    def parse(cls, text: str, names: Sequence[str], where: str) -> Formula:
        try:
            tree = ast.parse(text.replace("^", "**"), mode="eval")
        except SyntaxError as exc:
            raise EvalError(
                f"{where}: calculate_output {text!r} does not parse: {exc.msg}"
            ) from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in names and node.id not in FUNCTIONS:
                raise EvalError(
                    f"{where}: calculate_output names {node.id!r}, which is no grader; the "
                    f"graders are: {', '.join(names)}"
                )
        formula = cls(text, tree)
        formula.evaluate(dict.fromkeys(names, 0.5), where)  # every construct is allowed
        return formula

    def evaluate(self, values: Mapping[str, float], where: str) -> float:
        def walk(node: ast.AST) -> float:
            if isinstance(node, ast.Expression):
                return walk(node.body)
            if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
                return float(node.value)
            if isinstance(node, ast.Name) and node.id in values:
                return float(values[node.id])
            if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
                return _BINARY[type(node.op)](walk(node.left), walk(node.right))
            if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
                return _UNARY[type(node.op)](walk(node.operand))
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in FUNCTIONS
                and not node.keywords
            ):
                return float(FUNCTIONS[node.func.id](*(walk(a) for a in node.args)))
            raise EvalError(
                f"{where}: calculate_output {self.text!r}: {ast.unparse(node)!r} is not allowed; "
                "use numbers, grader names, + - * / ^ and " + ", ".join(FUNCTIONS)
            )

        try:
            return walk(self.tree)
        except (ZeroDivisionError, ValueError, OverflowError, TypeError) as exc:
            raise EvalError(f"{where}: calculate_output {self.text!r} failed: {exc}") from None


@dataclass(frozen=True)
class MultiGrader:
    name: str
    graders: dict[str, Node]
    formula: Formula
    where: str

    @classmethod
    def build(cls, spec: Spec, build: Callable[[object, str], Node]) -> MultiGrader:
        subs = spec.get("graders", Mapping)
        if not subs:
            raise EvalError(f"{spec.where}: graders is empty")
        graders = {str(k): build(v, f"{spec.where} graders.{k}") for k, v in subs.items()}
        formula = Formula.parse(spec.get("calculate_output", str), list(graders), spec.where)
        return cls(spec.name, graders, formula, spec.where)

    def grade_many(self, contexts: Sequence[Context]) -> list[NodeScore]:
        results = {key: g.grade_many(contexts) for key, g in self.graders.items()}
        out = []
        for i in range(len(contexts)):
            parts = {key: scores[i].value for key, scores in results.items()}
            value = self.formula.evaluate(parts, self.where)
            shown = ", ".join(f"{k}={v:g}" for k, v in parts.items())
            detail = f"{self.formula.text} = {value:g} ({shown})"
            out.append(NodeScore(value, min(1.0, max(0.0, value)), detail, parts=parts))
        return out
