"""Renderers: an ``Example`` → tokens with per-token loss weights, and prompts for sampling.

Three renderers, and ``auto`` (``chat_template`` when the tokenizer has one, else ``role_colon``):

- ``chat_template``: the tokenizer's own chat template (``apply_chat_template``); weights on every
  assistant turn's tokens, including what the template puts after the content (the end-of-turn
  marker). Each turn's span is found by rendering the conversation up to it, so the template must
  be *prefix-stable*: a prefix of the conversation, with the generation prompt, must render to a
  token prefix of the whole. A template that is not is refused with a ``DataError``.
- ``role_colon``: ``System: …\\n\\nUser: …\\n\\nAssistant: …`` text, turns separated by a blank line,
  for base models without a template. A prompt ends with ``Assistant:``; an answer is
  `` {content}`` then EOS, on every assistant turn.
- ``plain``: the prompt text followed directly by the completion text and EOS, single-turn only
  (a system message goes first, then a blank line). The data's author controls the spacing, with
  one exception: when the prompt does not end in whitespace and the completion does not start
  with it, one space is put at the start of the completion, so ``"2+2="`` / ``"4"`` does not train
  on ``"2+2=4"`` glued into one word.

``role_colon`` and ``plain`` tokenize the prompt and answer text as separate pieces, so the prompt
``render_prompt`` gives for sampling is, token for token, the one the model was trained on. Every
sequence starts with exactly one BOS when the tokenizer uses one. ``max_seq_len`` cuts from the
end and sets ``truncated``; a sequence cut so far that no weighted token survives is still
returned (all weights zero) and counted as dropped by ``stats``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from evaltune.data.example import Example, Message
from evaltune.errors import DataError

if TYPE_CHECKING:  # tinker is slow to import; only to_datum needs it
    from tinker import types
    from transformers import PreTrainedTokenizerBase as Tokenizer

__all__ = ["RENDERERS", "RenderedExample", "Renderer", "get_renderer", "to_datum"]


@dataclass(frozen=True)
class RenderedExample:
    tokens: list[int]  # the full sequence (prompt + completion), starting with BOS if any
    weights: list[float]  # one per token: 1.0 on completion/assistant tokens, else 0.0
    truncated: bool = False


class Renderer(Protocol):
    name: str

    def render_example(self, example: Example, max_seq_len: int | None = None) -> RenderedExample:
        """Tokens + weights for training; truncated to max_seq_len (``truncated`` says so)."""
        ...

    def render_prompt(self, messages: Sequence[Message]) -> list[int]:
        """Tokens to sample an assistant answer from (ends with the assistant-turn opener)."""
        ...

    @property
    def stop_sequences(self) -> list[str | int]:
        """Strings / token ids that end an assistant answer when sampling."""
        ...

    def parse_response(self, tokens: Sequence[int]) -> str:
        """Decoded answer text with the stop sequence and special tokens stripped."""
        ...


def to_datum(rendered: RenderedExample) -> types.Datum:
    """Shift by one: position i of model_input predicts token i + 1."""
    from tinker import types

    tokens, weights = rendered.tokens, rendered.weights
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": weights[1:]},
    )


Piece = tuple[str | list[int], bool]  # text or token ids, and whether the loss is taken on it


class PlainRenderer:
    name = "plain"

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._bos = _bos_id(tokenizer)
        self._eos = _eos_id(tokenizer, self.name)

    def render_example(self, example: Example, max_seq_len: int | None = None) -> RenderedExample:
        prompt = self._prompt_text(example.prompt_messages, example.source)
        completion = example.completion
        if prompt and not prompt[-1].isspace() and completion and not completion[0].isspace():
            completion = " " + completion
        pieces: list[Piece] = [(prompt, False), (completion, True), ([self._eos], True)]
        return _render(self.tokenizer, self._bos, pieces, max_seq_len)

    def render_prompt(self, messages: Sequence[Message]) -> list[int]:
        _check_prompt(messages, self.name)
        pieces: list[Piece] = [(self._prompt_text(messages, ""), False)]
        return _render(self.tokenizer, self._bos, pieces, None).tokens

    @property
    def stop_sequences(self) -> list[str | int]:
        return [self._eos]

    def parse_response(self, tokens: Sequence[int]) -> str:
        return _parse(self.tokenizer, self.stop_sequences, tokens)

    def _prompt_text(self, messages: Sequence[Message], source: str) -> str:
        system = [m.content for m in messages if m.role == "system"]
        turns = [m for m in messages if m.role != "system"]
        if len(turns) != 1:
            where = f"{source}: " if source else ""
            raise DataError(
                f"{where}the 'plain' renderer takes one user turn and its answer; found "
                f"{len(turns)} turns before the answer; use renderer 'role_colon' or 'chat_template'"
            )
        return "".join(f"{s}\n\n" for s in system) + turns[0].content


_LABELS = {"system": "System", "user": "User"}


class RoleColonRenderer:
    name = "role_colon"

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._bos = _bos_id(tokenizer)
        self._eos = _eos_id(tokenizer, self.name)

    def render_example(self, example: Example, max_seq_len: int | None = None) -> RenderedExample:
        pieces = self._pieces(example.messages, add_generation_prompt=False)
        return _render(self.tokenizer, self._bos, pieces, max_seq_len)

    def render_prompt(self, messages: Sequence[Message]) -> list[int]:
        _check_prompt(messages, self.name)
        pieces = self._pieces(messages, add_generation_prompt=True)
        return _render(self.tokenizer, self._bos, pieces, None).tokens

    @property
    def stop_sequences(self) -> list[str | int]:
        return [self._eos, "\n\nUser:"]

    def parse_response(self, tokens: Sequence[int]) -> str:
        return _parse(self.tokenizer, self.stop_sequences, tokens)

    def _pieces(self, messages: Sequence[Message], add_generation_prompt: bool) -> list[Piece]:
        pieces: list[Piece] = []
        for i, m in enumerate(messages):
            sep = "\n\n" if i else ""
            if m.role == "assistant":
                pieces += [
                    (f"{sep}Assistant:", False),
                    (f" {m.content}", True),
                    ([self._eos], True),
                ]
            else:
                pieces.append((f"{sep}{_LABELS[m.role]}: {m.content}", False))
        if add_generation_prompt:
            pieces.append(("\n\nAssistant:", False))
        return pieces


class ChatTemplateRenderer:
    name = "chat_template"
    _PROBE = "Xq7Zevaltune9Vk"  # an answer no template rewrites, to find what follows an answer

    def __init__(self, tokenizer: Tokenizer) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise DataError(
                "renderer 'chat_template' needs a tokenizer with a chat template, and this one "
                "has none; use renderer 'role_colon' (or 'plain', or 'auto' to pick)"
            )
        self.tokenizer = tokenizer
        self._bos = _bos_id(tokenizer)
        self.end_of_turn = self._find_end_of_turn()
        self._stops = self._derive_stops()

    def render_example(self, example: Example, max_seq_len: int | None = None) -> RenderedExample:
        messages = example.messages
        tokens = self._ids(messages, False, example.source)
        weights = [0.0] * len(tokens)
        for i, m in enumerate(messages):
            if m.role != "assistant":
                continue
            start = self._ids(messages[:i], True, example.source)
            end = tokens if i == len(messages) - 1 else self._ids(messages[: i + 1], False, "")
            for part in (start, end):
                if tokens[: len(part)] != part:
                    raise DataError(
                        f"{example.source}: the chat template is not prefix-stable: the "
                        f"conversation up to turn {i} does not render to a token prefix of the "
                        "whole, so the assistant tokens cannot be found; use renderer 'role_colon'"
                    )
            weights[len(start) : len(end)] = [1.0] * (len(end) - len(start))
        return _truncate(tokens, weights, max_seq_len)

    def render_prompt(self, messages: Sequence[Message]) -> list[int]:
        _check_prompt(messages, self.name)
        return self._ids(messages, True, "")

    @property
    def stop_sequences(self) -> list[str | int]:
        return list(self._stops)

    def parse_response(self, tokens: Sequence[int]) -> str:
        return _parse(self.tokenizer, self._stops, tokens)

    def _text(self, messages: Sequence[Message], add_generation_prompt: bool, source: str) -> str:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        try:
            text = self.tokenizer.apply_chat_template(
                chat, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except Exception as e:  # jinja raises its own errors (e.g. "roles must alternate")
            where = f"{source}: " if source else ""
            raise DataError(f"{where}the chat template cannot render this conversation: {e}") from e
        return str(text)

    def _ids(
        self, messages: Sequence[Message], add_generation_prompt: bool, source: str
    ) -> list[int]:
        ids = _encode(self.tokenizer, self._text(messages, add_generation_prompt, source))
        if self._bos is not None:  # exactly one BOS, whether or not the template writes it
            while ids[:2] == [self._bos, self._bos]:
                ids = ids[1:]
            if ids[:1] != [self._bos]:
                ids = [self._bos, *ids]
        return ids

    def _find_end_of_turn(self) -> str:
        """What the template writes after an answer's text: its end-of-turn marker."""
        text = self._text([Message("user", "Hi"), Message("assistant", self._PROBE)], False, "")
        at = text.rfind(self._PROBE)
        if at < 0 or not text[at + len(self._PROBE) :].strip():
            raise DataError(
                "the chat template does not show an assistant answer followed by an end-of-turn "
                "marker, so a trained model could not learn to stop; use renderer 'role_colon'"
            )
        return text[at + len(self._PROBE) :]

    def _derive_stops(self) -> list[str | int]:
        """The special tokens in the end-of-turn text, else the text itself; and EOS."""
        added = getattr(self.tokenizer, "added_tokens_decoder", {})
        # Only *special* added tokens: Gemma also adds "\n" as a (non-special) token.
        special = set(self.tokenizer.all_special_ids)
        special |= {i for i, t in added.items() if getattr(t, "special", False)}
        stops: list[str | int] = [
            t for t in _encode(self.tokenizer, self.end_of_turn) if t in special
        ]
        if not stops:
            stops = [self.end_of_turn.strip()]
        eos = self.tokenizer.eos_token_id
        if eos is not None and eos not in stops:
            stops.append(eos)
        return list(dict.fromkeys(stops))


RENDERERS: dict[str, type] = {
    "chat_template": ChatTemplateRenderer,
    "plain": PlainRenderer,
    "role_colon": RoleColonRenderer,
}


def get_renderer(name: str, tokenizer: Tokenizer) -> Renderer:
    """The renderer called ``name`` for ``tokenizer``; ``auto`` picks by the chat template."""
    if name == "auto":
        name = "chat_template" if getattr(tokenizer, "chat_template", None) else "role_colon"
    factory = RENDERERS.get(name)
    if factory is None:
        choices = ", ".join(["auto", *sorted(RENDERERS)])
        raise DataError(f"unknown renderer '{name}'; choose one of: {choices}")
    return factory(tokenizer)


def _bos_id(tokenizer: Any) -> int | None:
    """The BOS id when the tokenizer puts one first (so the model expects it), else None."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return None
    return bos if tokenizer.encode("a", add_special_tokens=True)[:1] == [bos] else None


def _eos_id(tokenizer: Any, renderer: str) -> int:
    if tokenizer.eos_token_id is None:
        raise DataError(
            f"renderer '{renderer}' ends answers with the EOS token, and this tokenizer has none"
        )
    return int(tokenizer.eos_token_id)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def _check_prompt(messages: Sequence[Message], renderer: str) -> None:
    if not messages or messages[-1].role != "user":
        last = f"'{messages[-1].role}'" if messages else "nothing"
        raise DataError(
            f"renderer '{renderer}': a prompt must end with a user turn; it ends with {last}"
        )


def _render(
    tokenizer: Any, bos: int | None, pieces: list[Piece], max_seq_len: int | None
) -> RenderedExample:
    """Tokenize each run of same-weight text as one piece, then truncate."""
    merged: list[Piece] = []
    for content, weighted in pieces:
        last = merged[-1] if merged else None
        if last and isinstance(content, str) and isinstance(last[0], str) and last[1] == weighted:
            merged[-1] = (last[0] + content, weighted)
        else:
            merged.append((content, weighted))
    tokens = [] if bos is None else [bos]
    weights = [0.0] * len(tokens)
    for content, weighted in merged:
        ids = content if isinstance(content, list) else _encode(tokenizer, content)
        tokens += ids
        weights += [1.0 if weighted else 0.0] * len(ids)
    return _truncate(tokens, weights, max_seq_len)


def _truncate(tokens: list[int], weights: list[float], max_seq_len: int | None) -> RenderedExample:
    if max_seq_len is not None and max_seq_len < 1:
        raise DataError(f"max_seq_len must be at least 1; found {max_seq_len}")
    if max_seq_len is None or len(tokens) <= max_seq_len:
        return RenderedExample(tokens, weights)
    return RenderedExample(tokens[:max_seq_len], weights[:max_seq_len], truncated=True)


def _parse(tokenizer: Any, stops: Sequence[str | int], tokens: Sequence[int]) -> str:
    """Cut at the first stop token, decode without special tokens, cut at the first stop string."""
    ids = list(tokens)
    stop_ids = {s for s in stops if isinstance(s, int)}
    cut = next((i for i, t in enumerate(ids) if t in stop_ids), len(ids))
    text = tokenizer.decode(ids[:cut], skip_special_tokens=True)
    for stop in stops:
        if isinstance(stop, str) and stop in text:
            text = text[: text.index(stop)]
    return text.strip()
