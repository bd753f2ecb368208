"""Prompt formats for deployment: the renderer a run trained with (``evaltune.data.renderers``)
as a Hugging Face chat template (Jinja: the merged folder, the GGUF's
``tokenizer.chat_template``, vLLM's chat endpoint) and as an Ollama ``TEMPLATE`` (Go template)
with its stop sequences, written into a ``Modelfile``.

The renderers own the formats; this module spells the same text in two template languages.
``tests/unit/export/test_templates.py`` renders each Jinja template with the tokenizer's
``apply_chat_template`` and checks it against the renderer's own ``render_prompt``. The Go
templates are not executed here (no Go runtime in the tests); they follow Ollama's
``.Messages`` form and were checked by hand against the Jinja ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PromptFormat", "modelfile", "prompt_format"]

_ROLE_COLON_JINJA = (
    "{%- if bos_token %}{{ bos_token }}{% endif -%}"
    "{%- for m in messages -%}"
    "{%- if not loop.first %}{{ '\\n\\n' }}{% endif -%}"
    "{%- if m['role'] == 'system' %}{{ 'System: ' + m['content'] }}"
    "{%- elif m['role'] == 'user' %}{{ 'User: ' + m['content'] }}"
    "{%- else %}{{ 'Assistant: ' + m['content'] + eos_token }}{% endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ '\\n\\nAssistant:' }}{% endif -%}"
)
_PLAIN_JINJA = (
    "{%- if bos_token %}{{ bos_token }}{% endif -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' %}{{ m['content'] + '\\n\\n' }}"
    "{%- elif m['role'] == 'user' %}{{ m['content'] }}{% endif -%}"
    "{%- endfor -%}"
)
# Ollama adds the BOS itself (tokenizer.ggml.add_bos_token), so no template writes it.
_ROLE_COLON_GO = (
    "{{- range $i, $m := .Messages }}{{ if $i }}\n\n{{ end }}"
    '{{- if eq $m.Role "system" }}System: {{ $m.Content }}'
    '{{- else if eq $m.Role "assistant" }}Assistant: {{ $m.Content }}EOS'
    "{{- else }}User: {{ $m.Content }}{{ end }}{{ end }}\n\nAssistant:"
)
_PLAIN_GO = (
    '{{- range .Messages }}{{ if eq .Role "system" }}{{ .Content }}\n\n'
    '{{ else if eq .Role "user" }}{{ .Content }}{{ end }}{{ end }}'
)
# Gemma's own template: a system message folded into the first user turn, role "model".
_GEMMA_GO = (
    '{{- $prefix := "" }}{{ range .Messages }}{{ if eq .Role "system" }}'
    '{{ $prefix = printf "%s\\n\\n" .Content }}{{ else }}<start_of_turn>'
    '{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}\n'
    '{{ $prefix }}{{ .Content }}<end_of_turn>\n{{ $prefix = "" }}{{ end }}{{ end }}'
    "<start_of_turn>model\n"
)


@dataclass(frozen=True)
class PromptFormat:
    """One renderer's format: Jinja chat template, Ollama template (None when there is no Go
    spelling of it) and the stop sequences as text."""

    renderer: str
    chat_template: str
    ollama_template: str | None
    stops: tuple[str, ...]


def prompt_format(renderer: Any, tokenizer: Any) -> PromptFormat:
    """The format of ``renderer`` (an ``evaltune.data`` Renderer) on ``tokenizer``."""
    stops = tuple(
        s if isinstance(s, str) else str(tokenizer.convert_ids_to_tokens(s))
        for s in renderer.stop_sequences
    )
    eos = str(tokenizer.eos_token or "")
    if renderer.name == "role_colon":
        return PromptFormat(
            "role_colon", _ROLE_COLON_JINJA, _ROLE_COLON_GO.replace("EOS", eos), stops
        )
    if renderer.name == "plain":
        return PromptFormat("plain", _PLAIN_JINJA, _PLAIN_GO, stops)
    template = str(tokenizer.chat_template)
    gemma = "<start_of_turn>" in template and "<end_of_turn>" in template
    return PromptFormat(renderer.name, template, _GEMMA_GO if gemma else None, stops)


def modelfile(gguf_name: str, fmt: PromptFormat) -> str:
    """An Ollama ``Modelfile`` next to ``gguf_name``: FROM, TEMPLATE and one stop per line."""
    lines = [f"# written by evaltune export; prompt format: {fmt.renderer}", f"FROM ./{gguf_name}"]
    if fmt.ollama_template is not None:
        lines.append(f'TEMPLATE """{fmt.ollama_template}"""')
    else:
        lines.append(
            "# no Ollama TEMPLATE for this chat template: Ollama uses the GGUF's "
            "tokenizer.chat_template if it can, else write a TEMPLATE by hand"
        )
    for stop in fmt.stops:
        quoted = f'"""{stop}"""' if "\n" in stop or '"' in stop else f'"{stop}"'
        lines.append(f"PARAMETER stop {quoted}")
    return "\n".join(lines) + "\n"
