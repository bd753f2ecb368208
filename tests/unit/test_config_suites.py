"""Eval suite config keys (kind, benchmark, bundle, grader settings, metric direction): what
validates, what errors say, the names config checks against the catalogues of the layers that own
them, lower-is-better rules in the loop's decisions, and the loop's suite building from a
config."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from evaltune.config import NameCatalog, load_config, registered_names
from evaltune.config.schema import (
    LOWER_IS_BETTER,
    BenchmarkSuiteConfig,
    BundleSuiteConfig,
    FileSuiteConfig,
    NLLSuiteConfig,
)
from evaltune.errors import ConfigError
from evaltune.evals import GRADER_NAMES, GeneratedSuite, NLLSuite
from evaltune.evals import LOWER_IS_BETTER as EVALS_LOWER_IS_BETTER
from evaltune.evals.benchmarks import BENCHMARKS, BUNDLES, TEMPLATES
from evaltune.loop.context import CONFIG_NAMES, build_suites
from evaltune.loop.decide import SuiteRule, guards_hold, target_score, targets_met
from evaltune.loop.policies import POLICIES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"
HEAD = "data:\n  train: train.jsonl\nevals:\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for name in ("train.jsonl", "qa.jsonl", "val.jsonl"):
        (tmp_path / name).write_text('{"prompt": "2+2?", "completion": "4"}\n')
    (tmp_path / "gsm8k.jsonl").write_text((FIXTURES / "gsm8k.jsonl").read_text())
    (tmp_path / "graders.py").write_text("def ok(response):\n    return True\n")
    return tmp_path


def load(workdir: Path, suites: str) -> object:
    path = workdir / "run.yaml"
    path.write_text(HEAD + suites)
    return load_config(path)


def error(workdir: Path, suites: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(workdir, suites)
    return str(info.value)


def test_config_mirrors_the_lower_is_better_metrics() -> None:
    # A metric rule the schema needs for its `higher_is_better` default, not a name family.
    assert set(LOWER_IS_BETTER) == set(EVALS_LOWER_IS_BETTER)


def test_config_checks_names_against_the_owners_catalogues() -> None:
    assert registered_names() == CONFIG_NAMES
    assert CONFIG_NAMES.graders is GRADER_NAMES
    assert CONFIG_NAMES.benchmarks == tuple(BENCHMARKS)
    assert CONFIG_NAMES.bundles == (*BUNDLES, *TEMPLATES)
    assert CONFIG_NAMES.policies == tuple(POLICIES)


def test_unknown_names_of_every_family_are_reported_at_once(workdir: Path) -> None:
    path = workdir / "run.yaml"
    path.write_text(
        HEAD + "  - {name: a, file: qa.jsonl, grader: exat, threshold: 0.5}\n"
        "  - {name: b, benchmark: gsm9k, threshold: 0.5}\n"
        "  - {name: c, bundle: quik, threshold: 0.5}\n"
        "loop:\n  policies: [lr_decay, capacty]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    # (a suite whose source name is unknown also reports its missing `file`)
    for line in [
        f"  {path}:4: evals.0.grader: expected one of: {', '.join(GRADER_NAMES)} "
        "(did you mean 'exact'?); found \"exat\"",
        f"  {path}:5: evals.1.benchmark: expected one of: {', '.join(BENCHMARKS)} "
        "(did you mean 'gsm8k'?); found \"gsm9k\"",
        f"  {path}:6: evals.2.bundle: expected one of: {', '.join([*BUNDLES, *TEMPLATES])} "
        "(did you mean 'quick'?); found \"quik\"",
        f"  {path}:8: loop.policies: expected policies from: {', '.join(POLICIES)}; 'capacty' "
        'is not one (did you mean \'capacity\'?); found ["lr_decay", "capacty"]',
    ]:
        assert line in lines


def test_a_callers_catalogue_replaces_the_registered_one(workdir: Path) -> None:
    path = workdir / "run.yaml"
    path.write_text(HEAD + "  - {name: a, file: qa.jsonl, grader: mine, threshold: 0.5}\n")
    names = NameCatalog(graders=("exact", "mine"))
    assert load_config(path, names=names).evals[0].grader == "mine"
    path.write_text(HEAD + "  - {name: a, file: qa.jsonl, grader: f1, threshold: 0.5}\n")
    with pytest.raises(ConfigError, match=r"evals\.0\.grader: expected one of: exact, mine; found"):
        load_config(path, names=names)


def test_a_family_without_a_catalogue_is_left_to_the_builder(workdir: Path) -> None:
    path = workdir / "run.yaml"
    path.write_text(HEAD + "  - {name: a, bundle: nonesuch, threshold: 0.5}\n")
    assert load_config(path, names=NameCatalog()).evals[0].bundle == "nonesuch"


def test_defaults_resolve_per_kind(workdir: Path) -> None:
    cfg = load(
        workdir,
        "  - {name: qa, file: qa.jsonl, threshold: 0.5}\n"
        "  - {name: val, kind: nll, file: val.jsonl, threshold: 2.5}\n"
        "  - {name: gsm, benchmark: gsm8k, file: gsm8k.jsonl, role: guard}\n"
        "  - {name: general, bundle: quick, role: guard, tolerance: 0.05}\n",
    )
    qa, val, gsm, general = cfg.evals
    assert isinstance(qa, FileSuiteConfig) and isinstance(val, NLLSuiteConfig)
    assert isinstance(gsm, BenchmarkSuiteConfig) and isinstance(general, BundleSuiteConfig)
    assert (qa.grader, qa.metric, qa.higher_is_better, qa.max_tokens) == (
        "normalized", "accuracy", True, None)  # fmt: skip
    assert (val.metric, val.higher_is_better, val.threshold) == ("nll", False, 2.5)
    assert (gsm.grader, gsm.file) == (None, str(workdir / "gsm8k.jsonl"))
    assert (general.bundle, general.data_dir) == ("quick", None)


def test_grader_settings_and_paths(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load(
        workdir,
        "  - name: py\n    file: qa.jsonl\n    grader: python\n    function: graders.py:ok\n"
        "    threshold: 0.5\n"
        "  - name: judged\n    file: qa.jsonl\n    grader: judge\n    role: guard\n"
        "    judge: {model: gpt-judge, base_url: 'http://127.0.0.1:9/v1', api_key_env: JUDGE_KEY,"
        " rubric: helpfulness, pass_score: 8}\n"
        "  - {name: safe, benchmark: safety, metric: engagement_rate, threshold: 0.1}\n",
    )
    py, judged, safe = cfg.evals
    assert py.function == f"{workdir / 'graders.py'}:ok"  # relative to the config file
    assert judged.judge is not None and judged.judge.pass_score == 8
    assert (safe.higher_is_better, safe.threshold) == (False, 0.1)


@pytest.mark.parametrize(
    ("suites", "expected"),
    [
        ("  - {name: a, threshold: 0.5}\n",
         "evals.0.file: expected a non-empty string: the suite's data file (or set `benchmark`"),
        ("  - {name: a, benchmark: gsm9k, threshold: 0.5}\n",
         "evals.0.benchmark: expected one of: gsm8k, math, mmlu, ifeval, humaneval, safety, "
         "tutoring, tools (did you mean 'gsm8k'?)"),
        ("  - {name: a, bundle: quick, benchmark: gsm8k, threshold: 0.5}\n",
         "evals.0.bundle: expected no bundle together with `benchmark`"),
        ("  - {name: a, bundle: quick, file: qa.jsonl, threshold: 0.5}\n",
         "evals.0.file: expected no file with a bundle"),
        ("  - {name: a, kind: nll, benchmark: gsm8k, threshold: 2}\n",
         "evals.0.benchmark: expected no benchmark: an NLL suite scores the completions"),
        ("  - {name: a, kind: nll, file: val.jsonl, grader: exact, threshold: 2}\n",
         "evals.0.grader: expected no grader: an NLL suite scores likelihoods"),
        ("  - {name: a, bundle: chat, grader: exact, threshold: 0.5}\n",
         "evals.0.grader: expected no grader: a bundle's benchmarks use their own scorers"),
        ("  - {name: a, bundle: quick, grader_options: {match: exact}, threshold: 0.5}\n",
         "evals.0.grader_options: expected no grader_options: a bundle's benchmarks use their own"),
        ("  - {name: a, file: qa.jsonl, data_dir: ., threshold: 0.5}\n",
         "evals.0.data_dir: expected no data_dir: only a bundle reads one"),
        ("  - {name: a, bundle: quick, data_dir: nowhere, threshold: 0.5}\n",
         "evals.0.data_dir: expected an existing folder"),
        ("  - {name: a, file: qa.jsonl, grader: python, threshold: 0.5}\n",
         "evals.0.function: expected 'module:function' or 'file.py:function': the python grader"),
        ("  - {name: a, file: qa.jsonl, function: 'm:f', threshold: 0.5}\n",
         "evals.0.function: expected no function: only the python grader uses one"),
        ("  - {name: a, file: qa.jsonl, grader: judge, threshold: 0.5}\n",
         "evals.0.judge: expected a judge: the judge grader needs `judge`"),
        ("  - {name: a, file: qa.jsonl, grader: judge, threshold: 0.5,"
         " judge: {model: m, min_score: 5, max_score: 5}}\n",
         "evals.0.judge.max_score: expected an integer above min_score (5)"),
        ("  - {name: a, file: qa.jsonl, grader: judge, threshold: 0.5,"
         " judge: {model: m, api_key_env: 'sk-123 secret'}}\n",
         "evals.0.judge.api_key_env: expected the NAME of an environment variable"),
        ("  - {name: a, kind: nll, file: val.jsonl}\n",
         "evals.0.threshold: expected a number: a target suite needs a threshold"),
        ("  - {name: a, file: qa.jsonl, threshold: 3}\n",
         "evals.0.threshold: expected a number in [0, 1] or null; found 3"),
    ],
)  # fmt: skip
def test_suite_errors_name_the_key(workdir: Path, suites: str, expected: str) -> None:
    assert expected in error(workdir, suites)


def test_unbounded_metrics_take_large_thresholds(workdir: Path) -> None:
    cfg = load(workdir, "  - {name: j, benchmark: tutoring, metric: judge_score, threshold: 7}\n")
    assert cfg.evals[0].threshold == 7 and cfg.evals[0].higher_is_better


# -- lower-is-better in the loop's decisions --------------------------------------------------------
NLL = SuiteRule("val", "nll", "target", threshold=2.0, higher_is_better=False)
ENGAGE = SuiteRule("safe", "engagement_rate", "guard", tolerance=0.1, higher_is_better=False)


def rnd(k: int, **metrics: dict[str, float]) -> dict:
    return {"round": k, "evals": {s: {"metrics": m} for s, m in metrics.items()}}


def test_lower_is_better_targets_and_guards() -> None:
    assert targets_met(rnd(1, val={"nll": 1.9}), [NLL])
    assert targets_met(rnd(1, val={"nll": 2.0}), [NLL])
    assert not targets_met(rnd(1, val={"nll": 2.1}), [NLL])
    base = rnd(0, safe={"engagement_rate": 0.2})
    assert guards_hold(rnd(1, safe={"engagement_rate": 0.3}), base, [ENGAGE])  # within tolerance
    assert guards_hold(rnd(1, safe={"engagement_rate": 0.0}), base, [ENGAGE])  # better
    assert not guards_hold(rnd(1, safe={"engagement_rate": 0.31}), base, [ENGAGE])
    assert target_score(rnd(1, val={"nll": 1.5}), [NLL]) > target_score(rnd(2, val={"nll": 1.8}),
                                                                         [NLL])  # fmt: skip


# -- the loop's suites from a config ----------------------------------------------------------------
def test_build_suites_expands_bundles_and_builds_graders(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # never the hub in a test
    (workdir / "data").mkdir()
    (workdir / "data" / "gsm8k.jsonl").write_text((FIXTURES / "gsm8k.jsonl").read_text())
    (workdir / "data" / "ifeval.jsonl").write_text((FIXTURES / "ifeval.jsonl").read_text())
    cfg = load(
        workdir,
        "  - {name: qa, file: qa.jsonl, grader: regex, pattern: '4', threshold: 0.5}\n"
        "  - {name: val, kind: nll, file: val.jsonl, threshold: 3}\n"
        "  - {name: m, bundle: math, data_dir: data, role: guard, limit: 2}\n"
        "  - name: j\n    file: qa.jsonl\n    grader: judge\n    role: guard\n"
        "    judge: {model: jm, base_url: 'http://127.0.0.1:9/v1'}\n",
    )
    with pytest.raises(ConfigError, match=r"evals\[2\] \(m\): .*hf://HuggingFaceH4/MATH-500"):
        build_suites(cfg, SimpleNamespace(name="role_colon"))  # math.jsonl is not in data/
    (workdir / "data" / "math.jsonl").write_text((FIXTURES / "math.jsonl").read_text())
    pairs = build_suites(cfg, SimpleNamespace(name="role_colon"))
    assert [s.name for s, _ in pairs] == ["qa", "val", "m-gsm8k", "m-math", "j"]
    (qa, _), (val, val_rule), (m_gsm, m_gsm_rule), (m_math, _), (judged, _) = pairs
    assert isinstance(qa, GeneratedSuite) and qa.grader("4", "4", qa.examples[0]).score == 1.0
    assert isinstance(val, NLLSuite) and val.kind == "nll"
    assert (val_rule.higher_is_better, val_rule.metric) == (False, "nll")
    assert isinstance(m_gsm, GeneratedSuite)
    assert len(m_gsm.examples) == 2 and m_gsm.max_tokens == 512
    assert m_gsm_rule == SuiteRule("m-gsm8k", "accuracy", "guard", None, 0.0, True)
    assert isinstance(m_math, GeneratedSuite) and m_math.provenance["grader"] == "math"
    assert isinstance(judged, GeneratedSuite)
    assert (
        judged.provenance["grader_options"]["backend"]
        == "<EndpointChat jm at http://127.0.0.1:9/v1>"
    )
    assert len({s.suite_hash for s, _ in pairs if isinstance(s, GeneratedSuite | NLLSuite)}) == 5


def test_build_suites_rejects_clashing_bundle_names(workdir: Path) -> None:
    cfg = load(
        workdir,
        "  - {name: s, benchmark: safety, role: guard}\n"
        "  - {name: s-safety-x, file: qa.jsonl, role: guard}\n"
        "  - {name: s-safety, file: qa.jsonl, role: guard}\n",
    )
    assert [s.name for s, _ in build_suites(cfg, SimpleNamespace(name="r"))][:2] == [
        "s",
        "s-safety-x",
    ]
    clash = load(
        workdir,
        "  - {name: t, bundle: safety, role: guard}\n"
        "  - {name: t-safety, file: qa.jsonl, role: guard}\n",
    )
    with pytest.raises(ConfigError, match=r"suite names \['t-safety'\] appear twice"):
        build_suites(clash, SimpleNamespace(name="r"))


def test_snapshot_of_a_suite_config_reloads(workdir: Path) -> None:
    from evaltune.config import dump_config

    cfg = load(workdir, "  - {name: val, kind: nll, file: val.jsonl, threshold: 2.5}\n")
    path = workdir / "snap.yaml"
    path.write_text(dump_config(cfg))
    again = load_config(path)
    assert again.evals == cfg.evals
    assert json.loads(json.dumps(again.model_dump(mode="json")))["evals"][0]["metric"] == "nll"


def test_a_judge_on_the_runs_backend(
    workdir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from evaltune.backends.local import ServiceClient
    from evaltune.data.example import Message
    from evaltune.errors import EvalError
    from evaltune.evals import SamplerChat

    cfg = load(
        workdir,
        "  - name: j\n    file: qa.jsonl\n    grader: judge\n    role: guard\n"
        f"    judge: {{model: '{tiny_model_dir}', max_tokens: 4}}\n",
    )
    service = ServiceClient(checkpoint_dir=tmp_path_factory.mktemp("judge-ckpt"))
    ((suite, _),) = build_suites(cfg, SimpleNamespace(name="role_colon"), service)
    assert isinstance(suite, GeneratedSuite) and isinstance(suite.grader.backend, SamplerChat)
    (reply,) = suite.grader.backend.complete_many([[Message("user", "Score this: 4")]])
    assert isinstance(reply, str)  # the tiny model's judgement: sampled through the backend
    # the judge prompt does not fit the tiny model's 256-token context: said, with the judge
    with pytest.raises(EvalError, match=r"\(backend\): sampling failed: .*context of 256"):
        suite.grader("4", "4", suite.examples[0])
    with pytest.raises(ConfigError, match="needs the run's backend"):
        build_suites(cfg, SimpleNamespace(name="role_colon"))


# -- the suite union: which kind a suite is, and what each kind rejects ---------------------------
def test_the_source_key_picks_the_kind_of_suite(workdir: Path) -> None:
    cfg = load(
        workdir,
        "  - {name: a, file: qa.jsonl, threshold: 0.5}\n"
        "  - {name: b, benchmark: gsm8k, threshold: 0.5}\n"
        "  - {name: c, bundle: quick, role: guard}\n"
        "  - {name: d, kind: nll, file: val.jsonl, threshold: 2}\n"
        "  - {name: e, kind: generate, file: qa.jsonl, threshold: 0.5}\n",
    )
    assert [type(s).__name__ for s in cfg.evals] == [
        "FileSuiteConfig", "BenchmarkSuiteConfig", "BundleSuiteConfig", "NLLSuiteConfig",
        "FileSuiteConfig"]  # fmt: skip


def test_two_sources_none_and_misplaced_keys_are_all_reported_at_once(workdir: Path) -> None:
    path = workdir / "run.yaml"
    path.write_text(
        HEAD + "  - {name: a, bundle: quick, benchmark: gsm8k, threshold: 0.5}\n"
        "  - {name: b, threshold: 0.5}\n"
        "  - {name: c, file: qa.jsonl, grader: regex, threshold: 2}\n"
        "  - {name: d, kind: nll, file: val.jsonl, temperature: 0.5, threshold: 2}\n"
        "  - {name: e, kind: ppl, file: qa.jsonl, role: guard}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines == [
        f"6 problems in {path}:",
        f"  {path}:4: evals.0.bundle: expected no bundle together with `benchmark`: set one of "
        'them; found "quick"',
        f"  {path}:5: evals.1.file: expected a non-empty string: the suite's data file (or set "
        "`benchmark`, `bundle` or `inspect`)",
        f"  {path}:6: evals.2.pattern: expected a regular expression: the regex grader needs "
        "`pattern`",
        f"  {path}:6: evals.2.threshold: expected a number in [0, 1] or null; found 2",
        f"  {path}:7: evals.3.temperature: expected no temperature: an NLL suite samples "
        "nothing; found 0.5",
        f'  {path}:8: evals.4.kind: expected one of: generate, nll; found "ppl"',
    ]


def test_an_unknown_key_of_a_suite_suggests_from_its_own_kind(workdir: Path) -> None:
    message = error(workdir, "  - {name: a, bundle: quick, limt: 3, role: guard}\n")
    assert "evals.0.limt: unknown field; did you mean 'limit'?" in message


def test_a_snapshot_from_before_the_union_still_loads(workdir: Path) -> None:
    # every suite once had every key; a run folder's config.yaml of then must still resume
    old = {
        "kind": "generate", "benchmark": None, "bundle": None, "inspect": None, "task_args": {},
        "file": None, "data_dir": None, "role": "target", "grader": None, "pattern": None,
        "function": None, "judge": None, "grader_options": {}, "metric": "accuracy",
        "higher_is_better": True, "threshold": 0.5, "tolerance": 0.0, "max_tokens": None,
        "temperature": 0.0, "limit": None,
    }  # fmt: skip
    suites = [
        {**old, "name": "qa", "file": str(workdir / "qa.jsonl"), "grader": "normalized"},
        {**old, "name": "val", "kind": "nll", "file": str(workdir / "val.jsonl"), "metric": "nll",
         "higher_is_better": False, "threshold": 2.5},
        {**old, "name": "g", "bundle": "quick", "role": "guard", "threshold": None},
    ]  # fmt: skip
    path = workdir / "snapshot.yaml"
    path.write_text(json.dumps({"data": {"train": str(workdir / "train.jsonl")}, "evals": suites}))
    qa, val, g = load_config(path).evals
    assert isinstance(qa, FileSuiteConfig) and qa.grader == "normalized"
    assert isinstance(val, NLLSuiteConfig) and not val.higher_is_better
    assert isinstance(g, BundleSuiteConfig) and g.bundle == "quick"


def test_an_override_reaches_a_key_of_the_suites_kind(workdir: Path) -> None:
    path = workdir / "run.yaml"
    path.write_text(
        HEAD + "  - {name: a, file: qa.jsonl, grader: regex, pattern: x, threshold: 0.5}\n"
    )
    assert load_config(path, ["evals.0.pattern=y+"]).evals[0].pattern == "y+"
    with pytest.raises(ConfigError, match=r"override 'evals\.0\.data_dir=\.': evals\.0\.data_dir: "
                       "expected no data_dir: only a bundle reads one"):  # fmt: skip
        load_config(path, ["evals.0.data_dir=."])
