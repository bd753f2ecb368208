"""report.html and EXPERIMENT.md from a hand-built run: self-contained, every plot drawn (read
back from a headless Chromium screenshot), the findings and interventions written up."""

from __future__ import annotations

import io
import os
import re

import pytest
import yaml
from PIL import Image

from chromium import find_chromium, screenshot_plots
from evaltune.loop.summary import write_reports
from run_fixture import make_run, summary_of

PLOTS = {"plot-scores", "plot-tags-qa", "plot-tags-guard", "plot-loss", "plot-lr", "plot-data"}


@pytest.fixture
def reported(tmp_path):  # type: ignore[no-untyped-def]
    run = make_run(tmp_path, correct=(2, 5, 7), guard_correct=(6, 6, 5))
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    assert write_reports(run, summary_of(run), config, 1_700_000_090.0) == []
    return run


def test_report_html_is_self_contained_with_every_section(reported) -> None:  # type: ignore[no-untyped-def]
    page = (reported.path / "report.html").read_text()
    assert set(re.findall(r'<figure class="plot" id="([^"]+)"', page)) == PLOTS
    # nothing linked: no script, stylesheet, font or image from anywhere else
    assert not re.search(r"<(script|link|iframe)\b", page)
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    assert "url(" not in page
    for text in ("Best checkpoint", "evaltune eval --model", "PeftModel.from_pretrained",
                 "Data added per round", "pool-0-a", "gen-0-b (generated)", "Decisions",
                 "round budget spent", "stalled tags: colours"):  # fmt: skip
        assert text in page, text
    assert (reported.path / "report.md").is_file()


def test_experiment_record_reads_like_an_experiment_readme(reported) -> None:  # type: ignore[no-untyped-def]
    text = (reported.path / "EXPERIMENT.md").read_text()
    for heading in ("## Data", "## Method", "## Hyperparameters", "## Results", "## Findings",
                    "## What each intervention did"):  # fmt: skip
        assert heading in text
    assert "**Date:** 2023-11-14" in text and "`gemma-3-270m`" in text
    assert "Stalled tags: colours" in text
    assert (
        "after the baseline: train round 1; data: +2 new → round 1: target score 0.250 → 0.625"
        in text
    )
    assert "| qa | target | accuracy | 0.250 [" in text


def test_a_plot_that_fails_leaves_the_other_reports(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    run = make_run(tmp_path)
    monkeypatch.setattr("evaltune.loop.summary.render_html", lambda *a: 1 / 0)
    assert write_reports(run, summary_of(run), {}, None) == ["report.html"]
    assert (run.path / "EXPERIMENT.md").is_file() and not (run.path / "report.html").exists()
    assert any(e["event"] == "report_failed" for e in run.events())


def test_headless_chromium_renders_every_plot(reported, tmp_path) -> None:  # type: ignore[no-untyped-def]
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium (.ci/run installs it)")
        pytest.skip("no chromium on PATH (apt-get install chromium); CI installs it")
    png, plots = screenshot_plots(chromium, reported.path / "report.html")
    (tmp_path / "screenshot.png").write_bytes(png)
    assert {p["id"] for p in plots} == PLOTS
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    for p in plots:
        assert p["complete"] and p["natural"] > 100, p  # the PNG decoded
        assert p["width"] > 200 and p["height"] > 100, p
        box = (int(p["x"]), int(p["y"]), int(p["x"] + p["width"]), int(p["y"] + p["height"]))
        area = shot.crop(box)
        raw = area.tobytes()
        pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
        ink = sum(1 for r, g, b in pixels if min(r, g, b) < 200) / len(pixels)
        colours = len({(r // 32, g // 32, b // 32) for r, g, b in pixels})
        assert ink > 0.01, (p["id"], ink)  # axes, ticks and data were drawn, not a blank box
        assert colours >= 4, (p["id"], colours)  # coloured series, not just black on white
