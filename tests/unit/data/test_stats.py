"""Token statistics: counts after truncation, lengths before it, dropped and per-tag numbers."""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from evaltune.data import Example, get_renderer, token_stats


def examples() -> list[Example]:
    return [
        Example.single_turn("a", "What is the capital of France?", "Paris", tags=("geo",)),
        Example.single_turn("b", "What is two plus two?", "four", tags=("math", "easy")),
        Example.single_turn(
            "c", "The quick brown fox jumps over the lazy dog.", "Yes.", tags=("geo",)
        ),
    ]


def test_counts_without_truncation(tokenizer: PreTrainedTokenizerFast) -> None:
    renderer = get_renderer("role_colon", tokenizer)
    rendered = [renderer.render_example(e) for e in examples()]
    stats = token_stats(examples(), renderer, None)
    completion = [int(sum(r.weights)) for r in rendered]
    lengths = [len(r.tokens) for r in rendered]
    assert stats.examples == 3
    assert stats.completion_tokens == sum(completion)
    assert stats.prompt_tokens == sum(lengths) - sum(completion)
    assert stats.total_tokens == sum(lengths)
    assert (stats.max_length, stats.mean_length) == (max(lengths), sum(lengths) / 3)
    assert (stats.truncated, stats.dropped) == (0, 0)
    assert stats.tag_examples == {"geo": 2, "math": 1, "easy": 1}
    assert stats.tag_completion_tokens == {
        "geo": completion[0] + completion[2],
        "math": completion[1],
        "easy": completion[1],
    }


def test_truncation_counts_what_is_kept(tokenizer: PreTrainedTokenizerFast) -> None:
    renderer = get_renderer("plain", tokenizer)
    data = examples()
    rendered = [renderer.render_example(e) for e in data]
    prompt_lengths = [r.weights.index(1.0) for r in rendered]
    # Long enough for the shortest prompt's first answer token, too short for the longest prompt.
    limit = sorted(prompt_lengths)[1]
    stats = token_stats(data, renderer, limit)
    kept_weights = [r.weights[:limit] for r in rendered]
    assert stats.max_seq_len == limit
    assert stats.total_tokens == sum(len(w) for w in kept_weights)
    assert stats.completion_tokens == sum(int(sum(w)) for w in kept_weights)
    assert stats.truncated == sum(len(r.tokens) > limit for r in rendered)
    assert stats.dropped == sum(sum(w) == 0 for w in kept_weights) >= 1
    assert stats.max_length == max(len(r.tokens) for r in rendered)  # before truncation
    assert "truncated" in stats.summary() and f"max_seq_len {limit}" in stats.summary()


def test_empty(tokenizer: PreTrainedTokenizerFast) -> None:
    stats = token_stats([], get_renderer("plain", tokenizer), 64)
    assert (stats.examples, stats.total_tokens, stats.mean_length) == (0, 0, 0.0)
