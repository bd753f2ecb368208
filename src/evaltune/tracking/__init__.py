"""Tracking: the run folder on disk and where a run is reported besides it.

- ``run_dir``: ``RunDir``, the run folder (config snapshot, state, events, rounds, reports);
  ``runs``: the runs of a workspace (``evaltune runs``).
- ``html`` with ``plots``: ``report.html`` (plots embedded); ``experiment``: ``EXPERIMENT.md``.
- ``sinks``: the ``Sink`` protocol, the fan-out that never fails a run, the EvalOps-style HTTP
  sink; ``mlflow_sink`` and ``trackio_sink`` (optional extras, imported when built).
"""

from evaltune.tracking.run_dir import RunDir, write_json_atomic, write_text_atomic

__all__ = ["RunDir", "write_json_atomic", "write_text_atomic"]
