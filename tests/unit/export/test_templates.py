"""The deployment prompt formats spell each renderer's prompt exactly (Jinja against
``render_prompt``), and the Modelfile carries FROM, TEMPLATE and the renderer's stops."""

from __future__ import annotations

import pytest

from evaltune.data import Message, get_renderer
from evaltune.engine.models import GEMMA3_CHAT_TEMPLATE
from evaltune.export.templates import modelfile, prompt_format
from tiny import build_tokenizer

CONVERSATIONS = [
    (Message("user", "What is 2 plus 2?"),),
    (Message("system", "Answer briefly."), Message("user", "Capital of Italy?")),
    (
        Message("user", "hello there"),
        Message("assistant", "hi"),
        Message("user", "What is the capital of France?"),
    ),
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.mark.parametrize("name", ["role_colon", "plain"])
def test_jinja_template_renders_what_the_renderer_does(tokenizer, name: str) -> None:
    renderer = get_renderer(name, tokenizer)
    fmt = prompt_format(renderer, tokenizer)
    for messages in CONVERSATIONS:
        if name == "plain" and len([m for m in messages if m.role != "system"]) > 1:
            continue  # the plain renderer takes one user turn
        chat = [{"role": m.role, "content": m.content} for m in messages]
        text = tokenizer.apply_chat_template(
            chat, chat_template=fmt.chat_template, add_generation_prompt=True, tokenize=False
        )
        assert text == tokenizer.decode(renderer.render_prompt(messages))


def test_role_colon_modelfile_has_template_and_stops(tokenizer) -> None:
    fmt = prompt_format(get_renderer("role_colon", tokenizer), tokenizer)
    text = modelfile("model-f16.gguf", fmt)
    assert "FROM ./model-f16.gguf\n" in text
    assert 'TEMPLATE """' in text and "Assistant: {{ $m.Content }}<eos>" in text
    assert text.rstrip().endswith('PARAMETER stop """\n\nUser:"""')
    assert 'PARAMETER stop "<eos>"' in text


def test_gemma_chat_template_gets_gemma_ollama_template(tokenizer) -> None:
    tokenizer = build_tokenizer()
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    tokenizer.add_tokens(["<start_of_turn>", "<end_of_turn>"], special_tokens=True)
    fmt = prompt_format(get_renderer("chat_template", tokenizer), tokenizer)
    assert fmt.chat_template == GEMMA3_CHAT_TEMPLATE
    assert fmt.ollama_template is not None and "<start_of_turn>model\n" in fmt.ollama_template
    assert "<end_of_turn>" in fmt.stops
