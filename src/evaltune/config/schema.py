"""The typed run config: ``RunConfig`` and its sections, the one place run defaults live.

Every model is frozen and forbids unknown keys; every field carries a ``description`` because
``docs/config-reference.md`` is generated from them. Validation can be given a context
(paths are made absolute before validation, by ``map_paths``):

- ``check_files``: when true, data and eval files must exist (``load_config`` turns it on);
- ``names``: the ``NameCatalog`` of grader, benchmark, bundle and policy names to accept
  (default: the one registered in ``config.names``, so the layers implementing them own the
  lists and this module imports none of them).

Cross-field rules are field validators that read earlier fields (``info.data``), so each error
lands on the field to fix: a target suite without a threshold errors at ``evals.N.threshold``.

An eval suite is a tagged union (``EvalSuiteConfig``): one model per source (file, benchmark,
bundle, Inspect task, NLL), told apart by the key that names the source (``suite_source``), so a
variant has only the keys it uses and says why it rejects another's (``no file with a bundle``).

Over 500 lines because every section model lives here, next to the ``FieldError`` and context
helpers their validators share; the suite variants are the largest part and the first
candidate to move to a module of its own.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from evaltune.config.names import NameCatalog, registered_names
from evaltune.config.redact import is_secret_key

__all__ = [
    "GRADER_SETTINGS",
    "LOWER_IS_BETTER",
    "SUITE_SOURCES",
    "UNBOUNDED_METRICS",
    "BenchmarkSuiteConfig",
    "BundleSuiteConfig",
    "DataConfig",
    "EvalSuiteConfig",
    "FieldError",
    "FileSuiteConfig",
    "HTTPSinkConfig",
    "InspectSuiteConfig",
    "JudgeConfig",
    "LoopConfig",
    "LoraConfig",
    "MLflowConfig",
    "NLLSuiteConfig",
    "OutputConfig",
    "RegistryConfig",
    "RunConfig",
    "TinkerConfig",
    "TrackingConfig",
    "TrackioConfig",
    "TrainingConfig",
    "did_you_mean",
    "map_paths",
    "suite_source",
]

LOWER_IS_BETTER: tuple[str, ...] = ("nll", "perplexity", "engagement_rate", "over_refusal_rate")
"""Metrics where lower is better (``evaltune.evals.LOWER_IS_BETTER``, mirrored)."""
UNBOUNDED_METRICS: tuple[str, ...] = ("nll", "perplexity", "judge_score")
"""Metrics not confined to [0, 1], so a threshold above 1 is allowed."""

SEED_MAX = 2**32 - 1  # what every seeded library accepts (numpy and Optuna the narrowest)
STEPS_MAX = 1_000_000  # optimizer steps: far beyond any LoRA round, short of a hang


class FieldError(ValueError):
    """A validator's error aimed at a sub-path (``loc``), optionally hiding the value found.

    ``expected`` is the "what was expected" half of the message; the loader adds where and what
    was found. ``found`` overrides the value shown; ``hide_found`` shows none (secrets).
    """

    UNSET: Any = object()

    def __init__(
        self,
        expected: str,
        *,
        loc: tuple[str | int, ...] = (),
        found: Any = UNSET,
        hide_found: bool = False,
    ) -> None:
        super().__init__(expected)
        self.expected = expected
        self.loc = loc
        self.found = found
        self.hide_found = hide_found


def duplicate_suite_names(names: Sequence[object]) -> list[FieldError]:
    """One error (at ``evals.<i>.name``) per suite name used by an earlier suite. The loader
    also runs it on the raw ``evals`` list, so a duplicate is reported even when another suite
    has an error (the field validator then never runs)."""
    first: dict[str, int] = {}
    out: list[FieldError] = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in first:
            expected = f"a unique suite name (evals.{first[name]}.name is also {name!r})"
            out.append(FieldError(expected, loc=(i, "name"), found=name))
        else:
            first[name] = i
    return out


def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


def _names(info: ValidationInfo) -> NameCatalog:
    names = _context(info).get("names")
    return names if isinstance(names, NameCatalog) else registered_names()


def _one_of(value: str, choices: tuple[str, ...] | None) -> None:
    """``FieldError`` listing ``choices`` unless ``value`` is one (``None``: not checked)."""
    if choices is not None and value not in choices:
        close = did_you_mean(value, choices)
        hint = f" (did you mean {close!r}?)" if close else ""
        raise FieldError("one of: " + ", ".join(choices) + hint)


def _existing_file(value: str, info: ValidationInfo) -> str:
    if _context(info).get("check_files") and not Path(value).is_file():
        raise FieldError("an existing file")
    return value


def _model_ref(value: str, info: ValidationInfo) -> str:
    if _context(info).get("check_files") and _is_local_model(value) and not Path(value).is_dir():
        raise FieldError("an existing model folder")
    return value


def _wrap_one(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


DataFile = Annotated[str, Field(min_length=1), AfterValidator(_existing_file)]
FileList = Annotated[tuple[DataFile, ...], BeforeValidator(_wrap_one), Field(strict=False)]
Method = Literal["sft", "rl", "dpo", "distill"]


class _Section(BaseModel):
    # strict: a YAML/JSON source has real types, so "8" for an integer or `yes` for a number is
    # a mistake worth reporting rather than coercing. No field means anything at inf or nan
    # (`.inf` as a learning rate trains to a nan loss), so numbers must be finite.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class TinkerConfig(_Section):
    """How to reach Tinker when `backend: tinker`. The API key is never stored in a config."""

    base_url: str | None = Field(
        None,
        description="Tinker service URL; null uses the SDK's default (Thinking Machines). Point it "
        "at `evaltune serve` to train on your own GPU box.",
    )
    api_key_env: str = Field(
        "TINKER_API_KEY",
        description="Name of the environment variable holding the API key (the key itself never "
        "goes in a config file, so run snapshots hold no secrets).",
    )

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            # Never echo the value: a pasted key is the usual cause.
            raise FieldError(
                "the NAME of an environment variable (letters, digits, _), not the key itself",
                hide_found=True,
            )
        return value


class LoraConfig(_Section):
    """The LoRA adapter that is trained (same meaning on both backends)."""

    rank: int = Field(16, ge=1, le=4096, description="LoRA rank (adapter width).")
    train_mlp: bool = Field(True, description="Put adapters on the MLP projections.")
    train_attn: bool = Field(True, description="Put adapters on the attention projections.")
    train_unembed: bool = Field(True, description="Put an adapter on the unembedding (LM head).")


class DataConfig(_Section):
    """Training data and where targeted examples may come from. Files are JSONL."""

    train: FileList = Field(
        min_length=1,
        description="Training files (JSONL). A single string is accepted as a one-item list.",
    )
    validation: FileList = Field(
        (), description="Held-out files for validation NLL after each round."
    )
    pool: FileList = Field(
        (),
        description="Candidate examples the loop may add in later rounds (targeted data); never "
        "trained on unless selected.",
    )
    renderer: Literal["auto", "chat_template", "role_colon", "plain"] = Field(
        "auto",
        description="How examples become tokens: the tokenizer's `chat_template`, `role_colon` "
        "text (User:/Assistant:), `plain` prompt+completion, or `auto` (chat template if the "
        "tokenizer has one, else role_colon).",
    )
    max_seq_len: int = Field(
        512,
        ge=8,
        le=1_048_576,
        description="Longest token sequence trained on; longer examples are truncated.",
    )


class TrainingConfig(_Section):
    """Optimizer and schedule of each round's training."""

    batch_size: int = Field(8, ge=1, le=65_536, description="Examples per optimizer step.")
    steps_per_round: Annotated[int, Field(ge=1, le=STEPS_MAX)] | Literal["auto"] = Field(
        "auto",
        description='Optimizer steps in each round, or `"auto"`: steps follow the round\'s data, '
        "`passes` over its new examples and one over its replayed ones (a round with nothing "
        "new: `passes` over the replay), at least `min_steps` and at most "
        "`loop.max_steps_per_round`.",
    )
    passes: float = Field(
        1.0,
        gt=0,
        le=20,
        description='`steps_per_round: "auto"`: passes over each round\'s new examples (one '
        "pass over more new examples teaches more per token than several over fewer).",
    )
    min_steps: int = Field(
        4, ge=1, le=STEPS_MAX, description='`steps_per_round: "auto"`: fewest steps a round.'
    )
    lr_probe: bool = Field(
        True,
        description='With `learning_rate: "auto"`: before round 1, train a few steps at each of '
        "`probe_factors` × the heuristic learning rate on 80 % of the training data and keep "
        "the one with the lowest NLL on the other 20 %.",
    )
    probe_factors: Annotated[
        tuple[Annotated[float, Field(gt=0, le=100)], ...], Field(strict=False, min_length=1)
    ] = Field(
        (0.25, 0.5, 1.0),
        description="`lr_probe`: multipliers of the heuristic learning rate to try.",
    )
    probe_steps: int = Field(6, ge=1, le=200, description="`lr_probe`: steps per candidate.")
    learning_rate: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(
        "auto",
        description='Peak learning rate, or `"auto"`: chosen by the trainer from the model size '
        "(hidden size) with the documented LoRA heuristic. The config keeps the literal "
        '`"auto"`; the resolved value is recorded in the run.',
    )
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="Learning-rate shape within a round, after warmup."
    )
    warmup_steps: int = Field(
        0, ge=0, le=STEPS_MAX, description="Linear warmup steps at the start of a round."
    )
    grad_accum: int = Field(
        1,
        ge=1,
        le=4096,
        description="Micro-batches accumulated per optimizer step (memory vs. speed).",
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    grad_clip_norm: float = Field(0.0, ge=0, description="Gradient norm clip; 0 turns it off.")
    seed: int = Field(
        0, ge=0, le=SEED_MAX, description="Seed for adapter init, data order and sampling."
    )
    method: Method = Field(
        "sft",
        description="How a round trains: `sft` (supervised), `rl` (rewards from a grader: see "
        "`rl`), `dpo` (preference pairs: see `dpo`) or `distill` (from a teacher: see "
        "`distill`). A policy (`rl_on_plateau`) may switch it between rounds.",
    )
    methods: Annotated[tuple[Method, ...], Field(strict=False)] = Field(
        (),
        description="A per-round schedule: round k trains with `methods[k-1]`; rounds past its "
        "end use `method` (or what a policy chose). Empty: every round uses `method`.",
    )

    @field_validator("learning_rate", mode="wrap")
    @classmethod
    def _lr(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # One message instead of one per member of the union.
        try:
            return handler(value)
        except ValidationError:
            raise FieldError('a finite number > 0 or "auto"') from None

    @field_validator("steps_per_round", mode="wrap")
    @classmethod
    def _steps(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise FieldError(f'an integer in [1, {STEPS_MAX}] or "auto"') from None


class RLConfig(_Section):
    """`method: rl` rounds: completions sampled from the current weights in groups, rewards
    from a grader, group-relative advantages, Tinker's `importance_sampling` or `ppo` loss."""

    suite: str | None = Field(
        None,
        description="The eval suite whose grader gives the rewards (against each training "
        "example's completion); null: the first target suite with a verifiable grader.",
    )
    group_size: int = Field(8, ge=2, le=256, description="Completions sampled per prompt.")
    prompts_per_step: int = Field(8, ge=1, le=4096, description="Prompts per optimizer step.")
    steps_per_round: Annotated[int, Field(ge=1, le=STEPS_MAX)] | Literal["auto"] = Field(
        "auto",
        description='Steps per RL round, or `"auto"`: one pass over the round\'s prompts (at '
        "least `training.min_steps`).",
    )
    loss: Literal["importance_sampling", "ppo"] = Field(
        "importance_sampling", description="The policy-gradient loss (Tinker's names)."
    )
    temperature: float = Field(1.0, gt=0, le=2, description="Sampling temperature of rollouts.")
    max_tokens: int | None = Field(
        None, ge=1, le=65_536, description="Tokens per completion; null: the reward suite's."
    )
    normalize_advantages: bool = Field(
        False, description="Divide each group's advantages by its standard deviation."
    )
    lr_factor: float = Field(
        0.1,
        gt=0,
        le=100,
        description="An RL round's learning rate: the plan's × this (at the SFT rate, RL's "
        "reward fell on the embedded model; docs/training-methods.md).",
    )


class DPOConfig(_Section):
    """`method: dpo` rounds: preference pairs, DPO's loss against the round's starting weights."""

    pairs: FileList = Field(
        (),
        description="Files of pairs `{prompt, chosen, rejected}` (scored feedback `{prompt, "
        "response, score}` in them becomes pairs too); the run's feedback store "
        "(`evaltune feedback add`) is added to them.",
    )
    beta: float = Field(0.1, gt=0, le=100, description="DPO's β: how far from the reference.")
    steps_per_round: Annotated[int, Field(ge=1, le=STEPS_MAX)] | Literal["auto"] = Field(
        "auto",
        description='Steps per DPO round, or `"auto"`: `training.passes` over the pairs in '
        "batches of `training.batch_size` (at least `training.min_steps`).",
    )
    lr_factor: float = Field(
        0.1,
        gt=0,
        le=100,
        description="A DPO round's learning rate: the plan's × this (at the SFT rate, held-out "
        "accuracy fell while the DPO loss did; docs/training-methods.md).",
    )


class DistillConfig(_Section):
    """`method: distill` rounds: learn from a teacher model the backend loads."""

    teacher: str | None = Field(
        None,
        description="The teacher: a model the backend loads (an alias, a folder, a Hugging "
        "Face id) or a checkpoint path (`tinker://…`).",
    )
    mode: Literal["on_policy", "off_policy"] = Field(
        "on_policy",
        description="`on_policy`: the student samples, the teacher's logprobs of those tokens "
        "give per-token advantages (reverse KL); `off_policy`: the teacher writes completions "
        "for the round's prompts and the student trains on them (SFT).",
    )
    kl_coef: float = Field(1.0, gt=0, le=100, description="On-policy: advantage = −coef × KL.")
    prompts_per_step: int = Field(8, ge=1, le=4096, description="On-policy: prompts per step.")
    max_tokens: int = Field(64, ge=1, le=65_536, description="Tokens per sampled completion.")
    steps_per_round: Annotated[int, Field(ge=1, le=STEPS_MAX)] | Literal["auto"] = Field(
        "auto",
        description='On-policy steps per round, or `"auto"`: one pass over the round\'s '
        "prompts (at least `training.min_steps`).",
    )


class JudgeConfig(_Section):
    """The judge of a `grader: judge` suite: a model behind an OpenAI-compatible endpoint, or a
    model the run's backend loads. The API key is never stored in a config."""

    model: str = Field(
        min_length=1,
        description="The judge model: its name at `base_url`, or, without `base_url`, a model "
        "the backend loads (an alias, a folder, a checkpoint path).",
    )
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint with its version prefix, e.g. "
        "`http://localhost:8000/v1`; null: the run's backend samples the judge.",
    )
    api_key_env: str | None = Field(
        None,
        description="Name of the environment variable holding the endpoint's API key; null: "
        "no Authorization header.",
    )
    rubric: str = Field(
        "correctness",
        min_length=1,
        description="What the judge scores: the criteria in words, or a preset: `correctness`, "
        "`helpfulness`, `socratic`, `safety`.",
    )
    min_score: int = Field(1, description="Lowest score on the judge's scale.")
    max_score: int = Field(10, description="Highest score on the judge's scale.")
    pass_score: float | None = Field(
        None,
        description="Scores at or above this count as correct (`accuracy`); null: `max_score`.",
    )
    max_tokens: int = Field(512, ge=1, le=1_048_576, description="Longest judge reply, in tokens.")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise FieldError(
                "the NAME of an environment variable (letters, digits, _), not the key itself",
                hide_found=True,
            )
        return value

    @field_validator("max_score")
    @classmethod
    def _scale(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_score")
        if low is not None and value <= low:
            raise FieldError(f"an integer above min_score ({low})")
        return value


# -- eval suites: a tagged union over the source ------------------------------------------------

SUITE_SOURCES: tuple[str, ...] = ("file", "benchmark", "bundle", "inspect", "nll")
"""The tags of the suite union (``EvalSuiteConfig``); ``suite_source`` picks one per suite."""

GRADER_SETTINGS: dict[str, str] = {
    "regex": "pattern",
    "python": "function",
    "judge": "judge",
    "openai": "openai_grader",
}
"""The graders that take a suite key of their own, and that key: required with its grader,
rejected with any other. Every other option of a grader goes in ``grader_options``."""

_GRADER_KEYS = ("grader", "pattern", "function", "judge", "openai_grader", "grader_options")
_ONLY_FOR = {
    "data_dir": "no data_dir: only a bundle reads one (use `file` otherwise)",
    "task_args": "no task_args: only an `inspect` task takes them",
}
# A key a suite does not have, given with its empty value, is ignored: every suite had every key
# before the union, so snapshots in older run folders carry them (`bundle: null`, `kind: generate`).
_EMPTY: dict[str, Any] = {
    "kind": "generate",
    "task_args": {},
    "grader_options": {},
    "temperature": 0.0,
}
_MISSING = object()


def suite_source(value: Any) -> str:
    """The tag of a suite: ``nll`` for ``kind: nll``, else the first of ``benchmark``, ``bundle``
    and ``inspect`` that is set, else ``file``. The variant then rejects the keys of any other
    source by name, so two sources, or none, get an error that says so."""
    if isinstance(value, _SuiteConfig):
        return value.source
    if not isinstance(value, dict):
        return "file"  # the variant reports that a mapping was expected
    if value.get("kind") == "nll":
        return "nll"
    for key in ("benchmark", "bundle", "inspect"):
        if value.get(key) is not None:
            return key
    return "file"


def _known_grader(value: str, info: ValidationInfo) -> str:
    _one_of(value, _names(info).graders)
    return value


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise FieldError(f"a valid regular expression ({exc.msg} at position {exc.pos})") from None
    return value


def _inspect_task(value: str, info: ValidationInfo) -> str:
    if not value.strip():
        raise FieldError("an Inspect task: tasks.py, tasks.py@name or a registered name")
    path = value.split("@", 1)[0]
    if path.endswith(".py"):
        _existing_file(path, info)
    return value


def _existing_dir(value: str, info: ValidationInfo) -> str:
    if _context(info).get("check_files") and not Path(value).is_dir():
        raise FieldError("an existing folder")
    return value


GraderName = Annotated[str, AfterValidator(_known_grader)]
Pattern = Annotated[
    Annotated[str, AfterValidator(_compiles)] | None,
    Field(
        description="Regular expression for the `regex` grader (required there, rejected "
        "elsewhere); must compile."
    ),
]
Function = Annotated[
    str | None,
    Field(
        description="The `python` grader's function: `package.module:function` or "
        "`path/to/file.py:function` (relative to the config file). Required there only."
    ),
]
Judge = Annotated[
    JudgeConfig | None,
    Field(description="The `judge` grader's model and rubric. Required there only."),
]
OpenAIGraderSpec = Annotated[
    dict[str, Any] | Annotated[str, Field(min_length=1)] | None,
    Field(
        description="The `openai` grader: an OpenAI grader's JSON object (`string_check`, "
        "`text_similarity`, `python`, `score_model`, `label_model`, `multi`; see "
        "docs/openai-graders.md) or the path of a `.json` file holding one (relative to the "
        "config file). Required there only; `grader_options` may add `base_url` and "
        "`api_key_env` for model graders."
    ),
]
GraderOptions = Annotated[
    dict[str, Any],
    Field(
        description="Further grader options, e.g. `{match: exact}` (gsm8k), `{mode: loose}` "
        "(ifeval), `{timeout: 10, memory_mb: 2048}` (humaneval), `{rel_tol: 0.01}` (numeric)."
    ),
]
MaxTokens = Annotated[
    int | None,
    Field(
        ge=1,
        le=1_048_576,
        description="Longest sampled answer, in tokens; null: 64, or the benchmark's own "
        "(e.g. 512 for gsm8k).",
    ),
]
Temperature = Annotated[float, Field(ge=0, le=10, description="Sampling temperature; 0 is greedy.")]


class _SuiteConfig(_Section):
    """One evaluation suite: what is asked, how answers are graded, and what counts as passing.
    The key that names the source says which kind of suite it is: `benchmark`, `bundle` or
    `inspect` when one is set (only one may be), `kind: nll` for an NLL suite, else `file`, an
    application file. Every suite has the keys below; each kind adds its own (next sections),
    and a key of another kind is an error that says why (`no file with a bundle`)."""

    # A variant says which keys of other variants it rejects and why (``misplaced``, and
    # ``ungraded`` for every grader key), and how to ask for a missing required key
    # (``required``); ``_keys`` reports those together with the rest of the suite's errors.

    source: ClassVar[str]
    misplaced: ClassVar[dict[str, str]] = {}
    ungraded: ClassVar[str | None] = None  # why the grader keys are rejected, if they are
    required: ClassVar[dict[str, str]] = {}

    name: str = Field(
        description="Suite name (letters, digits, `_`, `-`); used in metric keys "
        "(`eval/<name>/<metric>`) and file names. A bundle's suites are named `<name>-<benchmark>`."
    )
    role: Literal["target", "guard"] = Field(
        "target",
        description="`target`: the loop trains until it reaches `threshold`. `guard`: must not "
        "drop more than `tolerance` below the baseline; a candidate that breaks one is never "
        "promoted.",
    )
    metric: str = Field(
        "accuracy",
        description="The metric compared with `threshold`: `accuracy` (default), `nll` (default "
        "for kind: nll), `mean_score`, or a grader's own (`refusal_rate`, `pass@1`, ...).",
    )
    higher_is_better: bool | None = Field(
        None,
        validate_default=True,
        description="Direction of `metric`; null: from its name (lower is better for "
        + ", ".join(f"`{m}`" for m in LOWER_IS_BETTER)
        + ").",
    )
    threshold: float | None = Field(
        None,
        ge=0,
        validate_default=True,
        description="Pass mark for the metric (in [0, 1], except for "
        + ", ".join(f"`{m}`" for m in UNBOUNDED_METRICS)
        + "): reached when at or above it, or at or below for a lower-is-better metric. "
        "Required for a target suite.",
    )
    tolerance: float = Field(
        0.0, ge=0, description="Guards: the allowed change for the worse from the baseline."
    )
    limit: int | None = Field(
        None, ge=1, description="Evaluate only the first N items (null: all)."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _keys(cls, data: Any, handler: ModelWrapValidatorHandler[Any], info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        data, problems = cls._check_keys(dict(data), info)
        if not problems:
            return handler(data)
        seen = {tuple(p["loc"]) for p in problems}
        try:
            handler(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                if tuple(err["loc"]) not in seen:
                    kind = PydanticCustomError(err["type"], err["msg"], err.get("ctx"))
                    problems.append(InitErrorDetails(type=kind, loc=err["loc"], input=err["input"]))
        raise ValidationError.from_exception_data(cls.__name__, problems)

    @classmethod
    def _check_keys(
        cls, data: dict[str, Any], info: ValidationInfo
    ) -> tuple[dict[str, Any], list[InitErrorDetails]]:
        """``data`` without the keys reported here, and the problems: keys of another source,
        a required key missing, a grader's own key missing or misplaced."""
        problems: list[InitErrorDetails] = []

        def report(key: str, expected: str, *, hide: bool = False) -> None:
            error = FieldError(expected, hide_found=hide)
            found = data.pop(key, None)
            problems.append(
                InitErrorDetails(type="value_error", loc=(key,), input=found, ctx={"error": error})
            )

        fields = cls.model_fields
        for key, value in list(data.items()):
            field = fields.get(key)
            if value is None:
                del data[key]  # null: the default (or, for a key this suite lacks, not given)
            elif field is None and _EMPTY.get(key, _MISSING) == value:
                del data[key]
            elif field is None and key == "kind":
                close = did_you_mean(value, ("generate", "nll"))
                report(
                    key, "one of: generate, nll" + (f" (did you mean {close!r}?)" if close else "")
                )
            elif field is None and key in cls.misplaced:
                report(key, cls.misplaced[key], hide=isinstance(value, dict))
            elif field is None and key in _GRADER_KEYS and cls.ungraded:
                report(key, f"no {key}: {cls.ungraded}", hide=isinstance(value, dict))
            elif field is None and key in _ONLY_FOR:
                report(key, _ONLY_FOR[key])
        for key, expected in cls.required.items():
            if key not in data:
                report(key, expected, hide=True)
        if "grader" in fields:
            _grader_settings(data, info, report)
        return data, problems

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", value):
            raise FieldError("a name of letters, digits, '_' and '-' (e.g. 'arithmetic')")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if not value.strip():
            raise FieldError("a metric name such as accuracy")
        return value

    @field_validator("higher_is_better", mode="after")
    @classmethod
    def _direction(cls, value: bool | None, info: ValidationInfo) -> bool:
        if value is None:
            return info.data.get("metric") not in LOWER_IS_BETTER
        return value

    @field_validator("threshold", mode="after")
    @classmethod
    def _threshold(cls, value: float | None, info: ValidationInfo) -> float | None:
        metric = info.data.get("metric")
        if value is None and info.data.get("role") == "target":
            wanted = "a number" if metric in UNBOUNDED_METRICS else "a number in [0, 1]"
            raise FieldError(f"{wanted}: a target suite needs a threshold (or set role: guard)")
        if value is not None and value > 1 and metric not in UNBOUNDED_METRICS:
            raise FieldError("a number in [0, 1] or null")
        return value


def _grader_settings(
    data: dict[str, Any], info: ValidationInfo, report: Callable[..., None]
) -> None:
    """``GRADER_SETTINGS``: a grader's own key is required with it and rejected with any other.
    Not checked when the grader name itself is wrong: its error is the one to fix first."""
    grader = data.get("grader")
    known = _names(info).graders
    if grader is not None and not (isinstance(grader, str) and (known is None or grader in known)):
        return
    for owner, key in GRADER_SETTINGS.items():
        if grader == owner and data.get(key) is None:
            what = {
                "regex": "a regular expression",
                "python": "'module:function' or 'file.py:function'",
                "judge": "a judge",
                "openai": "an OpenAI grader (its JSON object, or a .json file holding it)",
            }[owner]
            report(key, f"{what}: the {owner} grader needs `{key}`", hide=True)
        elif grader != owner and key in data:
            shown = "the default" if grader is None else repr(grader)
            report(
                key,
                f"no {key}: only the {owner} grader uses one (grader is {shown})",
                hide=key != "pattern",
            )


class FileSuiteConfig(_SuiteConfig):
    """An application suite: items from a file (JSONL/JSON/CSV/Parquet), each answer sampled and
    graded (`grader`, default `normalized`)."""

    source: ClassVar[str] = "file"
    required: ClassVar[dict[str, str]] = {
        "file": "a non-empty string: the suite's data file (or set `benchmark`, `bundle` or "
        "`inspect`)"
    }

    file: DataFile = Field(description="The suite's items: JSONL, JSON, CSV or Parquet.")
    grader: GraderName = Field(
        "normalized",
        description="How a response is scored: a grader name (`evaltune suites` lists them; "
        "docs/evaluation.md describes each).",
    )
    pattern: Pattern = None
    function: Function = None
    judge: Judge = None
    openai_grader: OpenAIGraderSpec = None
    grader_options: GraderOptions = Field(default_factory=dict)
    max_tokens: MaxTokens = None
    temperature: Temperature = 0.0


class BenchmarkSuiteConfig(_SuiteConfig):
    """A public benchmark with its canonical prompt and scorer."""

    source: ClassVar[str] = "benchmark"
    misplaced: ClassVar[dict[str, str]] = {
        "bundle": "no bundle together with `benchmark`: set one of them",
        "inspect": "no inspect task together with `benchmark`: set one of them",
    }

    benchmark: str = Field(
        description="A public benchmark format with its canonical prompt and scorer, by name "
        "(`evaltune suites` lists them; docs/evaluation.md describes each). Its data: `file` "
        "in the upstream schema, else the copy a package ships "
        "(humaneval, safety, tutoring, tools), else the Hugging Face hub (needs `datasets` "
        "and network).",
    )
    file: DataFile | None = Field(
        None, description="The benchmark's items in its upstream schema (null: its default source)."
    )
    grader: GraderName | None = Field(
        None,
        description="How a response is scored: a grader name; null: the benchmark's own scorer.",
    )
    pattern: Pattern = None
    function: Function = None
    judge: Judge = None
    openai_grader: OpenAIGraderSpec = None
    grader_options: GraderOptions = Field(default_factory=dict)
    max_tokens: MaxTokens = None
    temperature: Temperature = 0.0

    @field_validator("benchmark")
    @classmethod
    def _benchmark(cls, value: str, info: ValidationInfo) -> str:
        _one_of(value, _names(info).benchmarks)
        return value


class BundleSuiteConfig(_SuiteConfig):
    """Several benchmarks at once, one suite each (`<name>-<benchmark>`), each with this suite's
    role, threshold and tolerance, and each scored by its own scorer."""

    source: ClassVar[str] = "bundle"
    ungraded: ClassVar[str | None] = "a bundle's benchmarks use their own scorers"
    misplaced: ClassVar[dict[str, str]] = {
        "file": "no file with a bundle: put `<benchmark>.jsonl` files in `data_dir` instead",
        "inspect": "no inspect task together with `bundle`: set one of them",
    }

    bundle: str = Field(
        description="A bundle by size (`quick`, `standard`, `comprehensive`) or a template by use "
        "case (`chat`, `code`, `math`, `tools`, `safety`, `tutoring`).",
    )
    data_dir: Annotated[str, AfterValidator(_existing_dir)] | None = Field(
        None,
        description="A folder holding `<benchmark>.jsonl` files in the upstream schema; "
        "benchmarks without a file there use their default source.",
    )
    max_tokens: MaxTokens = None
    temperature: Temperature = 0.0

    @field_validator("bundle")
    @classmethod
    def _bundle(cls, value: str, info: ValidationInfo) -> str:
        _one_of(value, _names(info).bundles)
        return value


class InspectSuiteConfig(_SuiteConfig):
    """An Inspect AI task, run against each round's model through the `evaltune` Inspect
    provider and read back from its log; scored by the task's own scorers (`accuracy`: the
    first scorer's C/I or numeric value). Needs `pip install 'evaltune[inspect]'`."""

    source: ClassVar[str] = "inspect"
    ungraded: ClassVar[str | None] = "an Inspect task scores with its own scorers"
    misplaced: ClassVar[dict[str, str]] = {
        "file": "no file with an `inspect` task: the task brings its own dataset",
    }

    inspect: Annotated[str, AfterValidator(_inspect_task)] = Field(
        description="The task: `tasks.py`, `tasks.py@name` (relative to the config file) or a "
        "registered task such as `inspect_evals/gsm8k`.",
    )
    task_args: dict[str, Any] = Field(
        default_factory=dict, description="Arguments for the task (Inspect's `-T key=value`)."
    )
    max_tokens: MaxTokens = None
    temperature: Temperature = 0.0


class NLLSuiteConfig(_SuiteConfig):
    """`kind: nll`: the negative log-likelihood of each item's completion in `file`; metric
    `nll`, lower is better. Nothing is sampled or graded."""

    source: ClassVar[str] = "nll"
    ungraded: ClassVar[str | None] = "an NLL suite scores likelihoods, not answers"
    misplaced: ClassVar[dict[str, str]] = {
        key: f"no {key}: an NLL suite scores the completions of `file`"
        for key in ("benchmark", "bundle", "inspect")
    } | {
        "max_tokens": "no max_tokens: an NLL suite samples nothing",
        "temperature": "no temperature: an NLL suite samples nothing",
    }
    required: ClassVar[dict[str, str]] = {
        "file": "a non-empty string: the file whose completions an NLL suite scores"
    }

    kind: Literal["nll"] = Field(
        description="`nll` (the other sources sample an answer per item and grade it: "
        "`generate`, the default, which needs no `kind`)."
    )
    file: DataFile = Field(description="The items whose completions are scored.")
    metric: str = Field("nll", description="The metric compared with `threshold` (`nll`).")


EvalSuiteConfig = Annotated[
    Annotated[FileSuiteConfig, Tag("file")]
    | Annotated[BenchmarkSuiteConfig, Tag("benchmark")]
    | Annotated[BundleSuiteConfig, Tag("bundle")]
    | Annotated[InspectSuiteConfig, Tag("inspect")]
    | Annotated[NLLSuiteConfig, Tag("nll")],
    Discriminator(suite_source),
]
"""One eval suite: a ``FileSuiteConfig``, ``BenchmarkSuiteConfig``, ``BundleSuiteConfig``,
``InspectSuiteConfig`` or ``NLLSuiteConfig``, told apart by ``suite_source`` from the key that
names the source: no ``type:`` key, so a config reads as it always has."""


class SynthesisConfig(_Section):
    """A teacher that writes new training examples for a tag when its pool has run dry."""

    generator: str | None = Field(
        None,
        description="A Python function `module:function(tag, n, examples)` returning records "
        "(dicts in any training-data shape, or `Example`s); `examples` are the tag's training "
        "examples, as dicts.",
    )
    model: str | None = Field(
        None,
        description="A teacher model: its name at `base_url`, or, without `base_url`, a model "
        "the backend loads.",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint of the teacher, e.g. `http://host:8000/v1`."
    )
    api_key_env: str | None = Field(
        None, description="Environment variable holding the teacher endpoint's API key."
    )
    per_tag: int = Field(8, ge=1, le=200, description="Examples asked for per tag and round.")
    max_tokens: int = Field(512, ge=16, description="Teacher reply length, tokens.")

    @model_validator(mode="after")
    def _one_teacher(self) -> SynthesisConfig:
        if (self.generator is None) == (self.model is None):
            raise ValueError("synthesis: set exactly one of `generator` or `model`")
        if self.generator is not None and ":" not in self.generator:
            raise ValueError(
                f"synthesis.generator: 'module:function' expected; found {self.generator!r}"
            )
        return self


class SelectionConfig(_Section):
    """Which pool examples join the training data after each round (`data.pool`)."""

    strategy: Literal["auto", "adaptive", "none", "targeted", "random"] = Field(
        "auto",
        description="`adaptive`: a bandit over the target suites' tags spends each round's "
        "budget where accuracy responds, explores untried tags, marks stalled ones, replays "
        "learned ones (see docs/how-the-loop-decides.md); `targeted`: pool items of the weakest "
        "tags and most similar to the failed eval prompts; `random`: a random sample of the "
        "same size (a baseline to compare with); `none`: train on `data.train` only; `auto`: "
        "`adaptive` when `data.pool` is set, else `none`.",
    )
    budget: int = Field(
        32,
        ge=1,
        description="Pool (or generated) examples added per round at most: a ceiling; "
        "`adaptive` adds fewer when fewer would help.",
    )
    replay: float = Field(
        1.0,
        ge=0,
        le=10,
        description="`adaptive`: examples replayed from earlier rounds per new example (tags "
        "that regressed first, then learned ones, stalled ones last); every example of an "
        "under-fitted tag comes on top.",
    )
    stall_rounds: int = Field(
        3,
        ge=1,
        description="`adaptive`: evaluated rounds a tag may take examples without a "
        "significant gain before it is marked stalled.",
    )
    explore: float = Field(
        1.0,
        ge=0,
        description="`adaptive`: weight of a tag with no examples yet, × its headroom.",
    )
    fitted_loss: float | None = Field(
        0.3,
        ge=0,
        description="`adaptive`: mean training loss (nats per token) on a tag's own examples "
        "at or below which they count as fitted. A tag above it has not been learned yet: it is "
        "not marked stalled before `2 × stall_rounds` rounds, and all its examples are replayed "
        "(null: training loss is not consulted).",
    )
    synthesis: SynthesisConfig | None = Field(
        None,
        description="`adaptive`: who writes new examples for a tag whose pool has run dry "
        "(null: nobody).",
    )
    similarity: Literal["auto", "embedding", "tfidf"] = Field(
        "auto",
        description="How failed prompts and pool items are compared: `embedding` "
        "(all-MiniLM-L6-v2, shipped on PyPI), `tfidf`, or `auto` (embedding when installed).",
    )
    tag_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of a pool item's score from its tag's weakness; the rest is its "
        "similarity to failed eval prompts.",
    )


class BudgetConfig(_Section):
    """Hard limits for a whole run; reaching one stops the loop (`stop_reason: budget`)."""

    max_steps: int | None = Field(
        None, ge=1, le=10 * STEPS_MAX, description="Optimizer steps over all rounds."
    )
    max_tokens: int | None = Field(None, ge=1, description="Training tokens over all rounds.")
    max_seconds: float | None = Field(None, gt=0, description="Wall time of the run, seconds.")


class BayesConfig(_Section):
    """The opt-in `bayes` policy: an Optuna TPE search over the learning rate across rounds."""

    lr_min_factor: float = Field(0.2, gt=0, description="Lowest LR tried, × the starting LR.")
    lr_max_factor: float = Field(2.0, gt=0, description="Highest LR tried, × the starting LR.")
    seed: int = Field(
        0, ge=0, le=SEED_MAX, description="Sampler seed, for reproducible suggestions."
    )


class LoopConfig(_Section):
    """When rounds continue, what changes between them, and when they stop."""

    max_rounds: int = Field(
        3, ge=1, le=10_000, description="Training rounds at most (after the baseline)."
    )
    lr_decay: float = Field(
        1.0, gt=0, le=1, description="Learning rate multiplier applied after each round."
    )
    stop_on_target: bool = Field(
        True, description="Stop as soon as every target suite meets its threshold."
    )
    plateau_rounds: int = Field(
        2, ge=0, description="Stop after this many rounds without improvement; 0 turns it off."
    )
    rollback: bool = Field(
        True,
        description="When a round's target score falls significantly below the best round's "
        "(a paired test on the same items), the next round restarts from the best round's "
        "weights and optimizer with the learning rate × `guard_backoff`.",
    )
    significance: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="p-value below which a paired change in a target suite counts as real, not "
        "noise (decisions on small suites need a lenient level).",
    )
    overfit_loss: float = Field(
        0.05,
        ge=0,
        description="A round whose final training loss is below this and whose eval did not "
        "improve has memorised its data: the loop stops unless new data comes next.",
    )
    min_improvement: float = Field(
        0.0, ge=0, description="Smallest gain in a target metric that counts as improvement."
    )
    eval_baseline: bool = Field(
        True, description="Evaluate the base model first (round 0); guards compare against it."
    )
    policies: Annotated[tuple[str, ...], Field(strict=False)] = Field(
        ("lr_decay",),
        description="Hyperparameter policies applied between rounds, in order: `lr_decay` "
        "(× `lr_decay`), `capacity` (double the LoRA rank when its parameters are fewer than the "
        "training completion tokens), `more_steps` (× `steps_growth` while validation loss "
        "falls), `bayes` (Optuna search over the learning rate).",
    )
    steps_growth: float = Field(
        1.5,
        ge=1,
        description="`more_steps`: factor on steps per round while validation loss falls.",
    )
    max_steps_per_round: int = Field(
        200, ge=1, le=STEPS_MAX, description="`more_steps`: ceiling on steps per round."
    )
    max_rank: int = Field(128, ge=1, le=4096, description="`capacity`: ceiling on the LoRA rank.")
    guard_backoff: float = Field(
        0.5,
        gt=0,
        le=1,
        description="After a round breaks a guard: restart from the best round so far with the "
        "learning rate × this factor.",
    )
    selection: SelectionConfig = Field(
        default_factory=SelectionConfig, description="Targeted data selection from the pool."
    )
    budget: BudgetConfig = Field(
        default_factory=BudgetConfig, description="Run-wide limits on steps, tokens and time."
    )
    bayes: BayesConfig = Field(
        default_factory=BayesConfig, description="Settings of the `bayes` policy."
    )

    @field_validator("policies")
    @classmethod
    def _known_policies(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        known = _names(info).policies
        for name in value:
            if known is not None and name not in known:
                hint = did_you_mean(name, known)
                raise ValueError(
                    f"policies from: {', '.join(known)}; {name!r} is not one"
                    + (f" (did you mean {hint!r}?)" if hint else "")
                )
        if len(set(value)) != len(value):
            raise ValueError("each policy at most once")
        return value


class OutputConfig(_Section):
    """Where the run is recorded."""

    workspace: str | None = Field(
        None,
        min_length=1,
        description="Folder holding `runs/<run-id>/` and the model registry; null: the current "
        "directory when the run starts. A relative path is relative to the config file's folder.",
    )
    run_name: str | None = Field(
        None,
        description="Prefix of the run id (null: the loop derives one from the first training "
        "file's name).",
    )


def _no_credentials(value: str | None) -> str | None:
    """A URL without ``user:password@`` (credentials go in environment variables)."""
    if value is not None and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@]*@", value):
        raise FieldError(
            "a URL without credentials (put them in environment variables instead)",
            hide_found=True,
        )
    return value


class RegistryConfig(_Section):
    """The model registry: a SQLite file every finished run registers its best round in."""

    enabled: bool = Field(
        True,
        description="Register each finished run's best round as a `candidate`, with its base "
        "model, LoRA settings, hyperparameters, data, eval results and checkpoint paths (a "
        "registry that cannot be written is reported in one line; the run still finishes).",
    )
    path: str | None = Field(
        None,
        min_length=1,
        description="The registry's SQLite file; null: `registry.sqlite` in the workspace. A "
        "relative path is relative to the config file's folder.",
    )
    name: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The registered model name (one `production` model per name); null: "
        "`output.run_name`, else the first training file's name.",
    )


class MLflowConfig(_Section):
    """The MLflow sink: params, per-step and per-round metrics, the reports, the best model."""

    enabled: bool = Field(False, description="Log each run to MLflow (the `mlflow` extra).")
    tracking_uri: str | None = Field(
        None,
        min_length=1,
        description="An MLflow tracking server or store URI; null: a local store in the "
        "workspace (`mlflow/mlflow.db`, artifacts in `mlflow/artifacts`). Credentials go in "
        "MLflow's environment variables, never in the URI.",
    )
    experiment: str = Field("evaltune", min_length=1, description="The MLflow experiment name.")
    register_model: bool = Field(
        True,
        description="Register the best round's adapter as an MLflow model version (named as "
        "in the registry), its registry status as an alias.",
    )

    @field_validator("tracking_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return _no_credentials(value)


class TrackioConfig(_Section):
    """The trackio sink (local-first experiment tracking)."""

    enabled: bool = Field(False, description="Log each run to trackio (the `trackio` extra).")
    project: str = Field("evaltune", min_length=1, description="The trackio project.")
    dir: str | None = Field(
        None,
        min_length=1,
        description="trackio's local folder (`TRACKIO_DIR`); null: `trackio/` in the workspace, "
        "unless `TRACKIO_DIR` is set.",
    )


class HTTPSinkConfig(_Section):
    """An EvalOps-style HTTP endpoint: each round's results and threshold alerts, as JSON."""

    enabled: bool = Field(
        False,
        description="POST each round's results and alerts to `url` (seed: `evalops_enabled`).",
    )
    url: str | None = Field(
        None,
        min_length=1,
        description="The endpoint (http or https) every JSON document is POSTed to (seed: "
        "`evalops_url`).",
    )
    api_key_env: str = Field(
        "EVALOPS_API_KEY",
        description="Name of the environment variable holding the endpoint's API key, sent as "
        "`Authorization: Bearer` (unset: no header; seed: `evalops_api_key_env`).",
    )
    suite_id: str | None = Field(
        None, description="Sent with every document (seed: `evalops_test_suite_id`)."
    )
    alerts: bool = Field(
        True,
        description="Also POST alerts: target missed after the last round, a guard broken, the "
        "run failed.",
    )
    timeout_s: float = Field(10.0, gt=0, le=600, description="Seconds per attempt.")
    retries: int = Field(3, ge=0, le=20, description="Attempts after the first one fails.")
    backoff_s: float = Field(
        1.0, ge=0, le=600, description="Wait before the first retry, doubled after each."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://", value):
            raise FieldError("an http:// or https:// URL")
        return _no_credentials(value)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise FieldError(
                "the NAME of an environment variable (letters, digits, _), not the key itself",
                hide_found=True,
            )
        return value

    @model_validator(mode="after")
    def _needs_url(self) -> HTTPSinkConfig:
        if self.enabled and self.url is None:
            raise FieldError("a URL when the HTTP sink is enabled", loc=("url",), found=None)
        return self


class TrackingConfig(_Section):
    """Where a run is recorded besides its folder: the registry and the optional sinks. A sink
    never fails a run: one that cannot be reached is reported in one line."""

    registry: RegistryConfig = Field(
        default_factory=RegistryConfig, description="The model registry."
    )
    mlflow: MLflowConfig = Field(default_factory=MLflowConfig, description="The MLflow sink.")
    trackio: TrackioConfig = Field(default_factory=TrackioConfig, description="The trackio sink.")
    http: HTTPSinkConfig = Field(
        default_factory=HTTPSinkConfig, description="The EvalOps-style HTTP sink."
    )


class RunConfig(_Section):
    """A whole run of the evaluation loop (top level of the config file)."""

    base_model: str = Field(
        "gemma-3-270m",
        min_length=1,
        description="Model to fine-tune: a built-in alias, a Hugging Face id, or a local folder "
        "(write it as `./folder` or an absolute path; `./` is relative to the config file).",
    )
    backend: Literal["local", "tinker"] = Field(
        "local",
        description="`local` trains in-process with PyTorch + PEFT; `tinker` uses the Tinker "
        "service (see `tinker`).",
    )
    tinker: TinkerConfig = Field(
        default_factory=TinkerConfig, description="Tinker connection (used when backend: tinker)."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapter shape.")
    data: DataConfig = Field(description="Data files and rendering.")
    training: TrainingConfig = Field(
        default_factory=TrainingConfig, description="Optimizer settings per round."
    )
    rl: RLConfig = Field(default_factory=RLConfig, description="`method: rl` rounds.")
    dpo: DPOConfig = Field(default_factory=DPOConfig, description="`method: dpo` rounds.")
    distill: DistillConfig = Field(
        default_factory=DistillConfig, description="`method: distill` rounds."
    )
    evals: Annotated[tuple[EvalSuiteConfig, ...], Field(strict=False)] = Field(
        min_length=1, description="Evaluation suites: at least one, with unique names."
    )
    loop: LoopConfig = Field(default_factory=LoopConfig, description="Rounds and stop rules.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Where runs go.")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description="The model registry and the optional sinks (MLflow, trackio, HTTP).",
    )
    extras: dict[str, Any] = Field(
        default_factory=dict,
        description="Recorded in the run snapshot but unused: the seed format's `evalops_*` keys "
        "that do not set `tracking.http` land here. Secret-looking keys (api_key, secret, password, *_token) are "
        "rejected.",
    )

    @field_validator("base_model")
    @classmethod
    def _base_model(cls, value: str, info: ValidationInfo) -> str:
        return _model_ref(value, info)

    @field_validator("evals")
    @classmethod
    def _unique_names(cls, suites: tuple[EvalSuiteConfig, ...]) -> tuple[EvalSuiteConfig, ...]:
        problems = duplicate_suite_names([s.name for s in suites])
        if problems:
            raise problems[0]
        return suites

    @field_validator("extras")
    @classmethod
    def _no_secrets(cls, extras: dict[str, Any]) -> dict[str, Any]:
        stack: list[tuple[tuple[str | int, ...], Any]] = [((), extras)]
        while stack:  # at any depth: the snapshot records extras whole
            loc, value = stack.pop()
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(value, dict) and is_secret_key(key):
                    raise FieldError(
                        "a non-secret value (keep secrets in environment variables)",
                        loc=(*loc, key),
                        hide_found=True,
                    )
                if isinstance(item, dict | list):
                    stack.append(((*loc, key), item))
        return extras

    @model_validator(mode="after")
    def _method_inputs(self) -> RunConfig:
        methods = {self.training.method, *self.training.methods}
        if "distill" in methods and self.distill.teacher is None:
            raise FieldError(
                "a teacher model when a round trains with method distill",
                loc=("distill", "teacher"),
                found=None,
            )
        names = [s.name for s in self.evals]
        if self.rl.suite is not None and self.rl.suite not in names:
            hint = did_you_mean(self.rl.suite, names)
            raise FieldError(
                f"the name of one of the eval suites ({', '.join(names)})"
                + (f"; did you mean '{hint}'?" if hint else ""),
                loc=("rl", "suite"),
                found=self.rl.suite,
            )
        return self

    def resolve_paths(self, base_dir: str | Path) -> RunConfig:
        """A copy with every relative path (data, eval files, workspace, ``./`` model) made
        absolute against ``base_dir``; for configs built in code (``load_config`` does this)."""
        data = map_paths(self.model_dump(), Path(base_dir).absolute())
        # Its names were checked when it was built; an empty catalogue keeps the ones a
        # caller's own catalogue allowed.
        return RunConfig.model_validate(data, context={"names": NameCatalog()})


def did_you_mean(value: object, choices: Collection[str]) -> str | None:
    """The choice closest to a typo, if any is close enough."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _is_local_model(value: str) -> bool:
    return value.startswith(("./", "../", "~", "/")) or value in (".", "..")


# Which raw-config values are paths: "file" a path, "files" a path or a list of them, "model" a
# path only when written like one (./x, ../x, ~/x), "pyref" the path in "file.py:function",
# "task" the file in "tasks.py@name" (a registered task name is left alone), [spec] a list whose
# items follow spec.
_PATH_SPEC: dict[str, Any] = {
    "base_model": "model",
    "data": {"train": "files", "validation": "files", "pool": "files"},
    "evals": [
        {
            "file": "file",
            "data_dir": "file",
            "function": "pyref",
            "inspect": "task",
            "openai_grader": "file",
        }
    ],
    "output": {"workspace": "file"},
    "dpo": {"pairs": "files"},
    "distill": {"teacher": "model"},
    "tracking": {"registry": {"path": "file"}, "trackio": {"dir": "file"}},
    "loop": {"selection": {"synthesis": {"generator": "pyref"}}},
}


def _absolute_path(value: str, base_dir: Path) -> str:
    """``value`` with ``~`` expanded, joined to ``base_dir`` when relative, normalised."""
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base_dir / path)


def map_paths(data: Any, base_dir: Path, loc: tuple[str | int, ...] = ()) -> Any:
    """Raw config ``data`` (found at ``loc`` of a whole config) with its relative paths made
    absolute against ``base_dir``. Values of the wrong type are left for validation to report."""
    spec: Any = _PATH_SPEC
    for part in loc:
        if isinstance(spec, dict) and isinstance(part, str):
            spec = spec.get(part)
        elif isinstance(spec, list) and isinstance(part, int):
            spec = spec[0]
        elif spec == "files" and isinstance(part, int):
            spec = "file"
        else:
            return data
    return _map(spec, data, base_dir)


def _map(spec: Any, value: Any, base_dir: Path) -> Any:
    if isinstance(spec, dict) and isinstance(value, dict):
        return {k: _map(spec.get(k), v, base_dir) for k, v in value.items()}
    if isinstance(spec, list) and isinstance(value, list | tuple):
        return [_map(spec[0], item, base_dir) for item in value]
    if spec == "files" and isinstance(value, list | tuple):
        return [_map("file", item, base_dir) for item in value]
    if spec in ("file", "files") and isinstance(value, str) and value:
        return _absolute_path(value, base_dir)
    if spec == "model" and isinstance(value, str) and _is_local_model(value):
        return _absolute_path(value, base_dir)
    if spec == "task" and isinstance(value, str) and value.split("@", 1)[0].endswith(".py"):
        path, at, name = value.partition("@")
        return f"{_absolute_path(path, base_dir)}{at}{name}"
    if spec == "pyref" and isinstance(value, str) and ".py:" in value:
        path, _, name = value.rpartition(":")
        return f"{_absolute_path(path, base_dir)}:{name}"
    return value
