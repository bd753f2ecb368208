"""The loop: baseline → train → save → evaluate → analyse → decide, round after round.

It owns the run: the persisted state machine (``runner``, ``state``), the builders that turn a
config into plain objects (``context``), and the decisions between rounds: stop rules and the
best round (``decide``), paired noise checks (``noise``), hyperparameter policies
(``policies``), the learning-rate probe (``probe``) and each round's data (``select``;
``adaptive`` with ``allocate`` and ``synthesis``), with failure analysis and the report
(``analysis``, ``summary``). Training and evaluation are plain calls into the layers below.
"""

from evaltune.loop.decide import Decision, SuiteRule, choose_best, decide_next, targets_met
from evaltune.loop.reporter import NullReporter, Reporter
from evaltune.loop.runner import resume_run, run_loop, start_run

__all__ = [
    "Decision",
    "NullReporter",
    "Reporter",
    "SuiteRule",
    "choose_best",
    "decide_next",
    "resume_run",
    "run_loop",
    "start_run",
    "targets_met",
]
