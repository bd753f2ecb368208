"""Token statistics of a data set as a renderer sees it: how much the loss will train on.

Owns ``TokenStats`` and ``token_stats``. Token counts are taken *after* truncation to
``max_seq_len``, because that is what a training step sees; ``completion_tokens`` (the weighted
tokens) is the number that LoRA capacity advice compares with the adapter's parameter count.
Sequence lengths (``max_length``, ``mean_length``) are taken *before* truncation, so they say how
long ``max_seq_len`` would have to be. A sequence cut so far that none of its weighted tokens
survive teaches nothing: it is counted in ``dropped`` (and in ``truncated``), and a trainer
should leave it out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from evaltune.data.example import Example
from evaltune.data.renderers import Renderer

__all__ = ["TokenStats", "token_stats"]


@dataclass(frozen=True)
class TokenStats:
    examples: int
    prompt_tokens: int  # unweighted tokens kept after truncation (BOS, template, prompt)
    completion_tokens: int  # weighted tokens kept after truncation: what the loss trains on
    total_tokens: int  # prompt_tokens + completion_tokens
    max_length: int  # the longest rendered sequence, before truncation
    mean_length: float  # mean rendered length, before truncation
    max_seq_len: int | None
    truncated: int  # sequences longer than max_seq_len
    dropped: int  # truncated so far that no weighted token is left
    tag_examples: dict[str, int] = field(default_factory=dict)  # examples per tag
    tag_completion_tokens: dict[str, int] = field(default_factory=dict)  # weighted tokens per tag

    def summary(self) -> str:
        """One line for a person: ``120 examples, 9,800 tokens (2,100 completion), ...``."""
        limit = "" if self.max_seq_len is None else f" of max_seq_len {self.max_seq_len}"
        return (
            f"{self.examples} examples, {self.total_tokens:,} tokens "
            f"({self.completion_tokens:,} completion); longest {self.max_length}{limit}, "
            f"mean {self.mean_length:.1f}; {self.truncated} truncated, {self.dropped} dropped"
        )


def token_stats(
    examples: Iterable[Example], renderer: Renderer, max_seq_len: int | None = None
) -> TokenStats:
    """Render every example once (untruncated) and count what ``max_seq_len`` would keep."""
    count = prompt = completion = longest = length_sum = truncated = dropped = 0
    tag_examples: Counter[str] = Counter()
    tag_completion: Counter[str] = Counter()
    for example in examples:
        rendered = renderer.render_example(example, None)
        length = len(rendered.tokens)
        kept = rendered.weights if max_seq_len is None else rendered.weights[:max_seq_len]
        weighted = sum(1 for w in kept if w > 0)
        count += 1
        longest = max(longest, length)
        length_sum += length
        completion += weighted
        prompt += len(kept) - weighted
        if len(kept) < length:
            truncated += 1
            dropped += weighted == 0
        for tag in example.tags:
            tag_examples[tag] += 1
            tag_completion[tag] += weighted
    return TokenStats(
        examples=count,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        max_length=longest,
        mean_length=length_sum / count if count else 0.0,
        max_seq_len=max_seq_len,
        truncated=truncated,
        dropped=dropped,
        tag_examples=dict(tag_examples),
        tag_completion_tokens=dict(tag_completion),
    )
