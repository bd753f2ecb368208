"""The loop: baseline → train → save → evaluate → analyse → decide, round after round.

It owns the order of a run and nothing else; every step is a plain function call on plain
data in the layers below.
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
