"""Renderers: exact loss masks, prompts that are token prefixes, BOS, stops, truncation, errors."""

from __future__ import annotations

import pytest
from tokenizers import processors
from transformers import PreTrainedTokenizerFast

from evaltune.data import Example, Message, RenderedExample, get_renderer, to_datum
from evaltune.errors import DataError
from tiny import build_tokenizer

QA = Example.single_turn(
    "q1", "What is the capital of France?", "Paris", system="Be brief.", source="t.jsonl:1"
)
CHAT = Example(
    "c1",
    (
        Message("user", "What is 3 x 3?"),
        Message("assistant", "9"),
        Message("user", "And 3 x 4?"),
        Message("assistant", "12"),
    ),
    source="t.jsonl:2",
)
# What each renderer puts after an answer's text: EOS, or the template's end of turn.
ENDINGS = {
    "plain": " Paris<eos>",
    "role_colon": " Paris<eos>",
    "chat_template": "Paris<end_of_turn>\n",
}


def weighted_runs(rendered: RenderedExample) -> list[list[int]]:
    """The token runs that carry loss, in order."""
    runs: list[list[int]] = []
    previous = 0.0
    for token, weight in zip(rendered.tokens, rendered.weights, strict=True):
        assert weight in (0.0, 1.0)
        if weight:
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = weight
    return runs


@pytest.fixture(params=["plain", "role_colon", "chat_template"])
def name_and_tokenizer(
    request: pytest.FixtureRequest,
    tokenizer: PreTrainedTokenizerFast,
    chat_tokenizer: PreTrainedTokenizerFast,
) -> tuple[str, PreTrainedTokenizerFast]:
    return request.param, chat_tokenizer if request.param == "chat_template" else tokenizer


def test_loss_mask_is_exactly_the_answer(
    name_and_tokenizer: tuple[str, PreTrainedTokenizerFast],
) -> None:
    name, tok = name_and_tokenizer
    renderer = get_renderer(name, tok)
    rendered = renderer.render_example(QA)
    [answer] = weighted_runs(rendered)
    assert tok.decode(answer) == ENDINGS[name]
    assert rendered.tokens[-len(answer) :] == answer  # the answer is the whole tail
    prompt = renderer.render_prompt(QA.prompt_messages)
    assert prompt == rendered.tokens[: len(rendered.tokens) - len(answer)]  # a token prefix
    assert rendered.tokens[0] == tok.bos_token_id  # exactly one BOS, first
    assert tok.bos_token_id not in rendered.tokens[1:]
    assert not rendered.truncated


def test_role_colon_text(tokenizer: PreTrainedTokenizerFast) -> None:
    renderer = get_renderer("role_colon", tokenizer)
    assert tokenizer.decode(renderer.render_example(QA).tokens) == (
        "<bos>System: Be brief.\n\nUser: What is the capital of France?\n\nAssistant: Paris<eos>"
    )
    assert tokenizer.decode(renderer.render_prompt(CHAT.prompt_messages)) == (
        "<bos>User: What is 3 x 3?\n\nAssistant: 9<eos>\n\nUser: And 3 x 4?\n\nAssistant:"
    )


@pytest.mark.parametrize(
    ("name", "answers"),
    [
        ("role_colon", [" 9<eos>", " 12<eos>"]),
        ("chat_template", ["9<end_of_turn>\n", "12<end_of_turn>\n"]),
    ],
)
def test_every_assistant_turn_is_weighted(
    name: str,
    answers: list[str],
    tokenizer: PreTrainedTokenizerFast,
    chat_tokenizer: PreTrainedTokenizerFast,
) -> None:
    tok = chat_tokenizer if name == "chat_template" else tokenizer
    renderer = get_renderer(name, tok)
    rendered = renderer.render_example(CHAT)
    assert [tok.decode(run) for run in weighted_runs(rendered)] == answers
    for upto in (1, 3):  # the prompt before each answer is a prefix, ending where its weights start
        prompt = renderer.render_prompt(CHAT.messages[:upto])
        assert rendered.tokens[: len(prompt)] == prompt
        assert rendered.weights[len(prompt) - 1 : len(prompt) + 1] == [0.0, 1.0]


def test_chat_template_text(chat_tokenizer: PreTrainedTokenizerFast) -> None:
    renderer = get_renderer("auto", chat_tokenizer)
    assert renderer.name == "chat_template"
    assert chat_tokenizer.decode(renderer.render_prompt(QA.prompt_messages)) == (
        "<bos><start_of_turn>system\nBe brief.<end_of_turn>\n"
        "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"
    )


@pytest.mark.parametrize(
    ("prompt", "completion", "answer"),
    [
        ("2+2=", "4", " 4"),  # neither side has a space: one is put before the answer
        ("Q: 2+2=\n", "4", "4"),  # the prompt ends in whitespace
        ("2+2=", " 4", " 4"),  # the answer starts with it
    ],
)
def test_plain_spacing(
    tokenizer: PreTrainedTokenizerFast, prompt: str, completion: str, answer: str
) -> None:
    renderer = get_renderer("plain", tokenizer)
    rendered = renderer.render_example(Example.single_turn("x", prompt, completion))
    assert tokenizer.decode(rendered.tokens) == f"<bos>{prompt}{answer}<eos>"
    assert tokenizer.decode(weighted_runs(rendered)[0]) == f"{answer}<eos>"
    assert tokenizer.decode(renderer.render_prompt([Message("user", prompt)])) == f"<bos>{prompt}"


def test_plain_takes_single_turn_only(tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(
        DataError,
        match=r"^t\.jsonl:2: the 'plain' renderer takes one user turn .* use renderer 'role_colon'",
    ):
        get_renderer("plain", tokenizer).render_example(CHAT)


def test_stop_sequences_and_parse_response(
    tokenizer: PreTrainedTokenizerFast, chat_tokenizer: PreTrainedTokenizerFast
) -> None:
    eos = tokenizer.eos_token_id
    plain, role_colon = get_renderer("plain", tokenizer), get_renderer("role_colon", tokenizer)
    assert plain.stop_sequences == [eos]
    assert (
        plain.parse_response([*tokenizer.encode(" Paris ", add_special_tokens=False), eos, 5])
        == "Paris"
    )
    assert role_colon.stop_sequences == [eos, "\n\nUser:"]
    sampled = tokenizer.encode(" Paris\n\nUser: and Rome?", add_special_tokens=False)
    assert role_colon.parse_response(sampled) == "Paris"
    chat = get_renderer("chat_template", chat_tokenizer)
    assert chat.stop_sequences == ["<end_of_turn>", eos]  # the marker is plain text in this vocab
    sampled = chat_tokenizer.encode(
        "Paris<end_of_turn>\n<start_of_turn>user", add_special_tokens=False
    )
    assert chat.parse_response(sampled) == "Paris"


def test_chat_template_with_special_turn_tokens(chat_tokenizer: PreTrainedTokenizerFast) -> None:
    chat_tokenizer.add_tokens(["<start_of_turn>", "<end_of_turn>"], special_tokens=True)
    chat_tokenizer.add_tokens(["\n"])  # as Gemma's vocabulary does: added, but not special
    end_of_turn = chat_tokenizer.convert_tokens_to_ids("<end_of_turn>")
    renderer = get_renderer("chat_template", chat_tokenizer)
    assert renderer.stop_sequences == [end_of_turn, chat_tokenizer.eos_token_id]
    rendered = renderer.render_example(QA)
    [answer] = weighted_runs(rendered)
    assert chat_tokenizer.decode(answer) == "Paris<end_of_turn>\n"
    assert answer[-2] == end_of_turn
    sampled = [*chat_tokenizer.encode("Paris", add_special_tokens=False), end_of_turn, 7, 8]
    assert renderer.parse_response(sampled) == "Paris"


def test_one_bos_whether_or_not_the_template_writes_it(
    chat_tokenizer: PreTrainedTokenizerFast,
) -> None:
    chat_tokenizer.chat_template = chat_tokenizer.chat_template.replace("{{ bos_token }}", "")
    rendered = get_renderer("chat_template", chat_tokenizer).render_example(QA)
    assert rendered.tokens[0] == chat_tokenizer.bos_token_id
    assert chat_tokenizer.bos_token_id not in rendered.tokens[1:]
    chat_tokenizer.chat_template = "{{ bos_token }}" * 2 + chat_tokenizer.chat_template
    assert (
        get_renderer("chat_template", chat_tokenizer).render_example(QA).tokens == rendered.tokens
    )


def test_no_bos_when_the_tokenizer_uses_none() -> None:
    tok = build_tokenizer()
    tok.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    rendered = get_renderer("role_colon", tok).render_example(QA)
    assert tok.bos_token_id not in rendered.tokens
    assert tok.decode(rendered.tokens).startswith("System: Be brief.")


def test_template_that_is_not_prefix_stable(chat_tokenizer: PreTrainedTokenizerFast) -> None:
    # Writes a marker before the whole conversation only when asked for a generation prompt.
    chat_tokenizer.chat_template = (
        "{% if add_generation_prompt %}GEN {% endif %}" + chat_tokenizer.chat_template
    )
    renderer = get_renderer("chat_template", chat_tokenizer)
    with pytest.raises(DataError, match=r"^t\.jsonl:1: the chat template is not prefix-stable"):
        renderer.render_example(QA)


def test_template_that_never_closes_a_turn(chat_tokenizer: PreTrainedTokenizerFast) -> None:
    chat_tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(
        DataError, match="does not show an assistant answer followed by an end-of-turn"
    ):
        get_renderer("chat_template", chat_tokenizer)


def test_template_that_refuses_a_conversation(chat_tokenizer: PreTrainedTokenizerFast) -> None:
    chat_tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}" + chat_tokenizer.chat_template
    )
    renderer = get_renderer("chat_template", chat_tokenizer)
    with pytest.raises(
        DataError,
        match=r"^t\.jsonl:1: the chat template cannot render this conversation: System role not supported",
    ):
        renderer.render_example(QA)


def test_get_renderer_errors(tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(
        DataError,
        match=r"^unknown renderer 'rolecolon'; choose one of: auto, chat_template, plain, role_colon$",
    ):
        get_renderer("rolecolon", tokenizer)
    with pytest.raises(DataError, match="has none; use renderer 'role_colon'"):
        get_renderer("chat_template", tokenizer)
    assert get_renderer("auto", tokenizer).name == "role_colon"


def test_render_prompt_needs_a_final_user_turn(tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(
        DataError, match="a prompt must end with a user turn; it ends with 'assistant'"
    ):
        get_renderer("role_colon", tokenizer).render_prompt(QA.messages)


def test_truncation(name_and_tokenizer: tuple[str, PreTrainedTokenizerFast]) -> None:
    name, tok = name_and_tokenizer
    renderer = get_renderer(name, tok)
    full = renderer.render_example(QA)
    assert renderer.render_example(QA, len(full.tokens)) == full
    cut = renderer.render_example(QA, len(full.tokens) - 1)  # loses the last answer token
    assert cut.truncated and cut.tokens == full.tokens[:-1] and cut.weights == full.weights[:-1]
    assert sum(cut.weights) == sum(full.weights) - 1
    prompt_only = renderer.render_example(QA, 3)  # nothing weighted survives: still returned
    assert prompt_only.truncated and len(prompt_only.tokens) == 3 and sum(prompt_only.weights) == 0
    with pytest.raises(DataError, match="max_seq_len must be at least 1; found 0"):
        renderer.render_example(QA, 0)


def test_to_datum_shifts_by_one(tokenizer: PreTrainedTokenizerFast) -> None:
    rendered = get_renderer("role_colon", tokenizer).render_example(QA)
    datum = to_datum(rendered)
    assert datum.model_input.to_ints() == rendered.tokens[:-1]
    assert datum.loss_fn_inputs["target_tokens"].tolist() == rendered.tokens[1:]
    assert datum.loss_fn_inputs["weights"].tolist() == rendered.weights[1:]
