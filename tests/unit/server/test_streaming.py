"""``TextDeltas``: what a stream may send as tokens arrive, on a real byte-level BPE tokenizer
(multi-byte characters split across tokens): never half a character, never text a stop string
will cut, and the pieces add up to the non-streamed answer."""

from __future__ import annotations

import pytest

from evaltune.server.streaming import TextDeltas
from tiny import build_tokenizer

TEXT = "héllo wörld 💥 and the quick brown fox"


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def stream(tokenizer, stops: list[str]) -> tuple[list[str], str]:
    ids = tokenizer(TEXT, add_special_tokens=False).input_ids
    deltas = TextDeltas(tokenizer, 1, stops)
    pieces = []
    for n, token in enumerate(ids, 1):
        pieces.append(deltas.add(0, token))
        text = tokenizer.decode(ids[:n])
        if any(s in text for s in stops):
            break  # the engine stops the row once its text holds a stop string
    final = tokenizer.decode(ids)
    cuts = [final.find(s) for s in stops if s in final]
    final = final[: min(cuts)] if cuts else final
    pieces.append(deltas.finish(0, final))
    return pieces, final


@pytest.mark.parametrize("stops", [[], ["wör"], ["ö"], [" the", "fox"], ["💥"]])
def test_pieces_add_up_and_never_run_ahead(tokenizer, stops: list[str]) -> None:
    pieces, final = stream(tokenizer, stops)
    assert "".join(pieces) == final
    assert all("\ufffd" not in p for p in pieces)
    sent = ""
    for piece in pieces:
        sent += piece
        assert final.startswith(sent)  # nothing was sent that the answer does not hold
    assert len([p for p in pieces if p]) >= (2 if not stops else 1)


def test_multibyte_tokens_exist_in_this_text(tokenizer) -> None:
    ids = tokenizer("💥", add_special_tokens=False).input_ids
    assert len(ids) > 1 and "\ufffd" in tokenizer.decode(ids[:1])  # the case being tested
