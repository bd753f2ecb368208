"""LaTeX final answers: find the boxed answer and decide whether two answers are the same.

``last_boxed`` returns the content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or
``\\boxed 5``), braces balanced. ``normalize_answer`` is the MATH benchmark's ``strip_string``
(Hendrycks et al.) extended; in order it:

1. drops line breaks, ``\\!``, ``\\,``, ``\\;``, ``\\:``, ``\\left``, ``\\right``, ``$`` and
   ``\\$``, ``\\%`` / ``%``, degree marks (``^\\circ``, ``^{\\circ}``, ``°``), ``\\displaystyle``;
2. turns ``\\dfrac`` / ``\\tfrac`` into ``\\frac``, ``\\text{...}`` / ``\\textbf`` /
   ``\\mathrm`` / ``\\mbox`` into their content after removing a trailing unit (``5\\text{ cm}``);
3. removes a unit word after a number and a space (``5 cm``, ``12 inches``, ``3 square
   units``, ``90 degrees``);
4. keeps only the right side of a short equation (``x = 5`` → ``5``, ``k=-2`` → ``-2``);
5. adds braces (``\\frac12`` → ``\\frac{1}{2}``, ``\\sqrt2`` → ``\\sqrt{2}``), writes a simple
   ``a/b`` as ``\\frac{a}{b}``, and a leading ``.5`` as ``0.5``;
6. removes all spaces, thousands commas (``1,000``), and a trailing ``.0`` (``5.0`` → ``5``,
   ``2.50`` → ``2.5``).

``same_answer`` is true when the normalised strings are equal, or when both read as numbers
(integers, decimals, ``\\frac{a}{b}``, ``a/b``, with a sign) that are equal within 1e-6.
"""

from __future__ import annotations

import math
import re

__all__ = ["last_boxed", "normalize_answer", "same_answer", "to_number"]

_BASE_UNITS = (
    r"units?|cm|centimet(?:er|re)s?|mm|millimet(?:er|re)s?|m|met(?:er|re)s?|km|kilomet(?:er|re)s?|"
    r"inch(?:es)?|in|feet|foot|ft|yards?|miles?|mph|degrees?|deg|dollars?|cents?|hours?|"
    r"minutes?|seconds?|days?|pounds?|lbs?|grams?|g|kg|kilograms?|liters?|litres?"
)
_UNITS = rf"(?:(?:square|sq\.?|cubic)\s*)?(?:{_BASE_UNITS})"
_UNIT_AFTER_NUMBER = re.compile(
    rf"^([-+]?[\d.,/{{}}\\a-z]*\d[\d.,}}]*)\s+(?:{_UNITS})(?:\^?\{{?\d\}}?)?$"
)
_TEXT_UNIT = re.compile(r"\\(?:text|mbox|mathrm)\{\s+[^{}]*\}$")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox|mathbf)\{([^{}]*)\}")
_EQUATION = re.compile(r"^\s*[a-zA-Z](?:_\{?\w\}?)?\s*=\s*(.+)$")
_SLASH = re.compile(r"^(-?\d+)/(\d+)$")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_TRAILING_ZEROS = re.compile(r"^(-?\d+)\.(\d*?)0+$")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{}`` / ``\\fbox{}`` in ``text``, or None."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    rest = text[start:].split("{", 1)
    head = text[start:].split(" ", 1)
    if head[0] == "\\boxed" and len(head) == 2 and not head[1].startswith("{"):
        return head[1].split("$")[0].strip() or None  # "\boxed 5"
    if len(rest) != 2:
        return None
    depth, out = 1, []
    for ch in rest[1]:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return "".join(out).strip()
        out.append(ch)
    return None  # unbalanced


def _fix_fracs(text: str) -> str:
    # \frac12 -> \frac{1}{2}; \frac1{b} -> \frac{1}{b}; \fracab -> \frac{a}{b}
    parts = text.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{") or len(part) < 2:
            out += part
            continue
        a, b, tail = part[0], part[1], part[2:]
        out += "{" + a + "}" + (b + tail if b == "{" else "{" + b + "}" + tail)
    return out


def normalize_answer(answer: str) -> str:
    """Canonical text of a final answer; the module docstring lists every step."""
    s = answer.strip()
    for old in ("\n", "\\!", "\\,", "\\;", "\\:", "\\left", "\\right", "\\displaystyle"):
        s = s.replace(old, "")
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    for mark in ("^{\\circ}", "^\\circ", "°"):
        s = s.replace(mark, "")
    s = s.replace("dfrac", "frac").replace("tfrac", "frac").replace("\\\\", "\\")
    s = _TEXT_UNIT.sub("", s.strip())
    s = _TEXT_WRAP.sub(r"\1", s).strip()
    if m := _UNIT_AFTER_NUMBER.match(s):
        s = m.group(1)
    if (m := _EQUATION.match(s)) and "=" not in m.group(1):
        s = m.group(1)
    s = s.replace(" ", "")
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = _fix_fracs(s)
    s = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), s)
    if m := _SLASH.match(s):
        s = f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
    if s.startswith("."):
        s = "0" + s
    s = s.replace("-.", "-0.")
    if m := _TRAILING_ZEROS.match(s):
        s = m.group(1) + (f".{m.group(2)}" if m.group(2) else "")
    return s


def to_number(answer: str) -> float | None:
    """A normalised answer as a number (``-3``, ``2.5``, ``\\frac{3}{4}``, ``-\\frac{1}{2}``)."""
    s = normalize_answer(answer)
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("-+")
    if m := re.fullmatch(r"\\frac\{(\d+(?:\.\d+)?)\}\{(\d+(?:\.\d+)?)\}", s):
        den = float(m.group(2))
        return None if den == 0 else sign * float(m.group(1)) / den
    try:
        return sign * float(s)
    except ValueError:
        return None


def same_answer(a: str, b: str) -> bool:
    if normalize_answer(a) == normalize_answer(b):
        return True
    x, y = to_number(a), to_number(b)
    return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
