"""``Example``: one training or evaluation record, whatever shape its file had.

Every loader normalises into this one type. A single-turn record keeps ``prompt`` and
``completion``; a chat record keeps its ``messages`` (the last assistant turn is the completion).
``source`` is ``"file:line"`` so every later message can point back at the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Example", "Message"]


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Example:
    id: str
    messages: tuple[Message, ...]  # the whole conversation; the last one is the assistant's answer
    tags: tuple[str, ...] = ()
    grade: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    source: str = ""  # "path:line" of the record it came from

    @property
    def prompt_messages(self) -> tuple[Message, ...]:
        """Everything before the final assistant turn: what the model is asked."""
        return self.messages[:-1]

    @property
    def prompt(self) -> str:
        """The last user turn's text (single-turn records: the whole prompt)."""
        users = [m.content for m in self.prompt_messages if m.role == "user"]
        return users[-1] if users else ""

    @property
    def completion(self) -> str:
        """The final assistant turn: the training target, or an eval item's reference answer."""
        return self.messages[-1].content

    @classmethod
    def single_turn(
        cls,
        id: str,
        prompt: str,
        completion: str,
        *,
        system: str | None = None,
        tags: tuple[str, ...] = (),
        grade: str | None = None,
        metadata: dict[str, Any] | None = None,
        source: str = "",
    ) -> Example:
        msgs = [Message("system", system)] if system else []
        msgs += [Message("user", prompt), Message("assistant", completion)]
        return cls(id, tuple(msgs), tags, grade, metadata or {}, source)
