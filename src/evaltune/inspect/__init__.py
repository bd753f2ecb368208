"""Inspect AI integration: the ``evaltune/<model-or-checkpoint>`` model provider and Inspect
tasks as evaltune suites.

- ``provider``: ``EvaltuneModelAPI``, Inspect's model provider on a SamplingClient (registered
  through the ``inspect_ai`` entry point in ``registry``); concurrent requests decode as one
  batch on the local engine;
- ``task``: ``evaluate_task`` runs a task against a SamplingClient and reads its log back;
  ``InspectSuite`` is a config's ``inspect:`` suite as the loop holds it;
- ``logs``: ``result_from_log`` turns an Inspect eval log into an ``EvalResult``.

Importing this package does not import ``inspect_ai`` (the provider module does, and only
Inspect or ``evaluate_task`` loads it), so ``import evaltune`` stays fast and Inspect stays an
optional extra (``pip install 'evaltune[inspect]'``).
"""

from evaltune.inspect.logs import result_from_log, score_value
from evaltune.inspect.task import INSTALL_HINT, InspectSuite, evaluate_task, import_inspect

__all__ = [
    "INSTALL_HINT",
    "InspectSuite",
    "evaluate_task",
    "import_inspect",
    "result_from_log",
    "score_value",
]
