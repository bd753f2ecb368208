"""``docs/config-reference.md``, generated from the ``RunConfig`` model so it cannot drift.

A test compares the committed file with ``render_reference()``; regenerate with
``python -m evaltune.config --reference > docs/config-reference.md``.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from evaltune.config.messages import describe, is_model, show, split_annotated, variants
from evaltune.config.schema import RunConfig
from evaltune.config.seed import SEED_KEYS

__all__ = ["render_reference"]

_INTRO = """\
# Config reference

<!-- Generated from evaltune.config.RunConfig by `python -m evaltune.config --reference`.
     Do not edit: tests/unit/test_config.py fails when this file and the model disagree. -->

A run config is a YAML or JSON file validated into `evaltune.config.RunConfig`. Only `data` and
`evals` are required; everything else has the default listed below.

```yaml
data:
  train: data/train.jsonl
evals:
  - name: arithmetic
    file: data/arithmetic.jsonl
    threshold: 0.8
```

**Overrides.** `evaltune run run.yaml training.learning_rate=1e-4 evals.0.threshold=0.9
data.train=[a.jsonl,b.jsonl]`: each `dotted.key=value` is applied before validation; the value
is read as YAML (`1e-4` is a number, `[a, b]` a list, an empty value is null); list items are
addressed by index. Overrides always use the keys below, also for a seed-format file.

**Paths.** A relative path written in the config file (data files, eval files,
`output.workspace`, a `base_model` written as `./folder`) is relative to the config file's
folder (an unset `output.workspace` means the current directory when the run starts); a relative path given in an override is relative to the current directory. `~` is
expanded. The loaded config holds absolute paths only, so the snapshot written to
`runs/<run-id>/config.yaml` reproduces the run from any directory. Data and eval files must
exist when the config is loaded. A `RunConfig` built in code resolves its paths with
`config.resolve_paths(base_dir)`.

**Errors.** Every problem is reported at once, one per line, as
`<file>:<line>: <key path>: <what was expected>; found <value>`, for example
`run.yaml:12: training.learning_rate: expected a finite number > 0 or "auto"; found "fast"`.
Unknown keys are errors, with a suggestion (`lora.rnak: unknown field; did you mean 'rank'?`).
A config cannot hold YAML aliases (`*name`, `<<: *base`), nesting deeper than 64 levels,
integers of more than 64 digits, `.inf`/`.nan`, or text that is not Unicode (a lone surrogate):
each is one error naming the line and key. Values shown in errors are shortened, and the value
of any secret-looking key (password, secret, token, key, credential) is shown as `…`.

**Secrets.** The Tinker API key is read from the environment variable named by
`tinker.api_key_env`; a config holding a key (`api_key`, or a secret-looking key in `extras`)
is rejected, so run snapshots never contain one.
"""

_SEED = """\
## Seed format (`eval_loop_config.json`)

The flat JSON of tinker-eval-loop is accepted: a config whose top level has `train_file` or
`eval_tasks` is read in this format and mapped as below. Keys it does not set keep the defaults
above (so `backend` is `local`; add the override `backend=tinker` to train on Tinker). Any other
key is an error.

| seed key | becomes |
|---|---|
{rows}

- `eval_tasks` items are task names or objects `{{name, file (or path), threshold, grader, ...}}`
  with any `evals[]` key. A name maps to a suite whose file is `<name>.jsonl` next to the config
  and whose suite name is the name's last `/` part with other characters replaced by `_`
  (`inspect_evals/ifeval` → suite `ifeval`, file `inspect_evals/ifeval.jsonl`).
- `eval_threshold` becomes the threshold of every target suite that does not set its own.
- `renderer_name`: `role_colon`, `plain`, `chat_template` and `auto` (or `default`) map to
  themselves; chat renderer names of tinker-cookbook (`llama3`, `qwen3`, `gemma3`, `deepseekv3`,
  `gpt_oss_*`, `kimi_k2`, ...) map to `chat_template`; anything else is an error.
- `evalops_enabled`, `evalops_url`, `evalops_api_key_env` and `evalops_test_suite_id` set the
  HTTP sink (`tracking.http`); its API key is read from the environment variable named by
  `evalops_api_key_env` (default `EVALOPS_API_KEY`), never from the file. Other `evalops_*`
  keys are kept in `extras`: recorded in the run snapshot, used by nothing.
- `train_file` and `eval_tasks` are required.
"""


def render_reference() -> str:
    parts = [_INTRO]
    parts += _sections(RunConfig, "Top level", "")
    rows = "\n".join(f"| `{key}` | `{target}` |" for key, target in SEED_KEYS.items())
    parts.append(_SEED.format(rows=rows))
    return "\n".join(parts)


def _sections(
    model: type[BaseModel],
    title: str,
    anchor_key: str,
    only: Sequence[str] | None = None,
    done: set[str] | None = None,
    shown_as: str | None = None,
) -> list[str]:
    """The section of ``model`` (its fields ``only``, when given, in that order) and of the
    models below it; ``done`` holds the keys already given a section (two suite kinds share
    `judge`); ``shown_as`` names the model in the title."""
    done = set() if done is None else done
    doc = inspect.cleandoc(model.__doc__ or "")
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel] | dict[str, type[BaseModel]]]] = []
    for name in model.model_fields if only is None else only:
        info = model.model_fields[name]
        sub = _sub_model(info)
        key = f"{anchor_key}{name}"
        is_list = get_origin(split_annotated(info.annotation)[0]) is tuple
        union = variants(get_args(info.annotation)[0]) if is_list else variants(info.annotation)
        if sub is not None or union:
            nested.append((f"{key}[]" if is_list else key, sub or union))
        rows.append(
            f"| `{name}` | {_cell(_type(info, sub, union))} | {_cell(_default(info))} | "
            f"{_cell(info.description or '')} |"
        )
    name = shown_as or model.__name__
    out = [f"## {title} (`{name}`)\n\n{doc}\n\n" + "\n".join(rows) + "\n"]
    for key, sub in nested:
        if isinstance(sub, dict):
            out += _union_sections(key, sub, done)
        elif key not in done:
            done.add(key)
            out += _sections(sub, f"`{key}`", f"{key}.", done=done)
    return out


def _union_sections(key: str, union: dict[str, type[BaseModel]], done: set[str]) -> list[str]:
    """A tagged union (the suite kinds): the keys its members share, then each member's own."""
    (base,) = {model.__mro__[1] for model in union.values()}
    out = _sections(base, f"`{key}`", f"{key}.", done=done, shown_as="EvalSuiteConfig")
    nested: list[str] = []
    for tag, model in union.items():
        declared = vars(model).get("__annotations__", {})
        own = [name for name in declared if name in model.model_fields]  # as the class lists them
        label = "kind: nll" if tag == "nll" else tag
        section, *below = _sections(model, f"`{key}` with `{label}`", f"{key}.", own, done)
        out.append(section)
        nested += below  # after every kind's own section (`judge`)
    return out + nested


def _sub_model(info: FieldInfo) -> type[BaseModel] | None:
    ann, _ = split_annotated(info.annotation)
    if get_origin(ann) is tuple:
        ann, _ = split_annotated(get_args(ann)[0])
    members = [a for a in get_args(ann) if a is not type(None)]
    if get_origin(ann) in (Union, types.UnionType) and len(members) == 1:  # an optional section
        ann, _ = split_annotated(members[0])
    return ann if is_model(ann) else None


def _type(
    info: FieldInfo, sub: type[BaseModel] | None, union: dict[str, type[BaseModel]] | None = None
) -> str:
    if union:
        kinds = ", ".join(f"`{m.__name__}`" for m in union.values())
        return f"list of mappings (one of: {kinds}; below)"
    if sub is not None:
        kind = "list of mappings" if get_origin(info.annotation) is tuple else "mapping"
        null = " or null" if type(None) in get_args(info.annotation) else ""
        return f"{kind} (`{sub.__name__}`, below){null}"
    text = describe(info.annotation, list(info.metadata))
    return text.removeprefix("a ").removeprefix("an ")


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "(section defaults)"
    elif info.default is PydanticUndefined:
        return "**required**"
    else:
        value = info.default
    if isinstance(value, tuple):
        value = list(value)
    return f"`{show(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
