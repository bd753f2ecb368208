"""Examples written for a tag whose pool has run dry: by a Python generator or a teacher model.

- ``generator: module:function`` (or ``file.py:function``) is called as
  ``fn(tag, n, examples)`` with the tag's training examples as dicts (``question``/``answer``
  or ``messages``, ``tags``) and returns records in any shape evaltune's data files accept;
- ``model`` (with ``base_url``: an OpenAI-compatible endpoint; without: a model the backend
  loads) is shown up to eight of the tag's training examples and asked for ``n`` new ones as
  JSON lines ``{"question": ..., "answer": ...}``.

Only training examples are ever shown to a teacher, never eval items. What comes back passes
the same checks as pool data: record validation, deduplication against everything already
known, and the contamination guard against every eval prompt. A user's generator that returns
bad records is an error naming the record; a teacher model's unparsable lines are skipped and
counted, and a teacher that fails (endpoint down, prompt too long for it) is recorded and the
round goes on without its examples (a teacher's slip should not end a run). Each example is
tagged with its tag and has ``metadata.generated`` naming who wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from evaltune.data import Example, Message
from evaltune.data.dedup import normalise_text
from evaltune.data.records import parse_record
from evaltune.errors import ConfigError, DataError, EvaltuneError
from evaltune.evals import load_function

__all__ = ["Synthesiser", "example_to_record", "parse_teacher_reply", "teacher_prompt"]

STYLE_EXAMPLES = 8


def example_to_record(ex: Example) -> dict[str, Any]:
    if len(ex.messages) == 2 and ex.messages[0].role == "user":
        return {"question": ex.prompt, "answer": ex.completion, "tags": list(ex.tags)}
    return {
        "messages": [{"role": m.role, "content": m.content} for m in ex.messages],
        "tags": list(ex.tags),
    }


def teacher_prompt(tag: str, n: int, examples: Sequence[Example]) -> str:
    shown = "\n".join(
        json.dumps({"question": e.prompt, "answer": e.completion})
        for e in examples[:STYLE_EXAMPLES]
    )
    return (
        f"Here are question-answer pairs on the topic '{tag}':\n{shown}\n\n"
        f"Write {n} new, different pairs on the same topic in the same style, with correct, "
        "equally short answers. Reply with one JSON object per line, "
        '{"question": ..., "answer": ...}, and nothing else.'
    )


def parse_teacher_reply(text: str) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects with a question and an answer in ``text``; the count of lines skipped."""
    records, skipped = [], 0
    for line in text.splitlines():
        line = line.strip().strip(",")
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if isinstance(obj, dict) and obj.get("question") and obj.get("answer"):
            records.append({"question": str(obj["question"]), "answer": str(obj["answer"])})
        else:
            skipped += 1
    return records, skipped


class Synthesiser:
    """``synthesiser(tag, n, examples) -> [Example]``, checked and deduplicated."""

    def __init__(
        self,
        *,
        generator: str | None = None,
        chat: Any = None,  # an evals ChatBackend (EndpointChat or SamplerChat)
        known_prompts: Iterable[str] = (),
        eval_prompts: Iterable[str] = (),
        per_tag: int = 8,
    ) -> None:
        self.fn: Callable[..., Any] | None = None
        if generator is not None:
            try:
                self.fn = load_function(generator)
            except EvaltuneError as exc:
                raise ConfigError(f"loop.selection.synthesis.generator: {exc}") from None
        self.chat, self.per_tag = chat, per_tag
        self.known = {normalise_text(p) for p in known_prompts}
        self.evals = {normalise_text(p) for p in eval_prompts}
        self.label = generator or getattr(chat, "name", "teacher")
        self.made = 0
        self.rejected: dict[str, int] = {"duplicate": 0, "eval_item": 0, "unparsable": 0}
        self.errors: list[str] = []  # a teacher model's failures, for the report

    def __call__(self, tag: str, n: int, examples: list[Example]) -> list[Example]:
        n = min(n, self.per_tag)
        if self.fn is not None:
            records = self._from_generator(tag, n, examples)
        else:
            try:
                reply = self.chat.complete_many(
                    [[Message("user", teacher_prompt(tag, n, examples))]]
                )
            except EvaltuneError as exc:  # an endpoint down or a context too small: go on
                self.errors.append(f"tag {tag!r}: {exc}")
                return []
            records, skipped = parse_teacher_reply(reply[0] if reply else "")
            self.rejected["unparsable"] += skipped
        out = []
        for record in records[:n]:
            ex = self._example(tag, record)
            if ex is not None:
                out.append(ex)
        return out

    def _from_generator(self, tag: str, n: int, examples: list[Example]) -> list[Any]:
        assert self.fn is not None
        try:
            made = self.fn(tag, n, [example_to_record(e) for e in examples])
        except Exception as exc:  # the user's code: say whose and what
            raise DataError(
                f"synthesis generator {self.label} raised {type(exc).__name__}: {exc} "
                f"(called for tag {tag!r}, n={n})"
            ) from None
        if not isinstance(made, list | tuple):
            raise DataError(
                f"synthesis generator {self.label}: expected a list of records for tag {tag!r}; "
                f"found {type(made).__name__}"
            )
        return list(made)

    def _example(self, tag: str, record: Any) -> Example | None:
        self.made += 1
        key = f"gen-{tag}-{self.made}"
        if isinstance(record, Example):
            ex = record
        elif isinstance(record, dict):
            source = f"{self.label} (tag {tag!r}, item {self.made})"
            ex = parse_record(record, source=source, default_id=key)
        else:
            raise DataError(
                f"synthesis generator {self.label}: item {self.made} for tag {tag!r} should be "
                f"a dict or an Example; found {type(record).__name__}"
            )
        prompt = normalise_text(ex.prompt)
        if prompt in self.evals:
            self.rejected["eval_item"] += 1
            return None
        if prompt in self.known:
            self.rejected["duplicate"] += 1
            return None
        self.known.add(prompt)
        tags = ex.tags if tag in ex.tags else (*ex.tags, tag)
        metadata = {**ex.metadata, "generated": self.label}
        return Example(key, ex.messages, tags, ex.grade, metadata, ex.source or self.label)
