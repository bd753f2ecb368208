"""Tracking: the run folder on disk (config snapshot, state, events, rounds, reports)."""

from evaltune.tracking.run_dir import RunDir, write_json_atomic, write_text_atomic

__all__ = ["RunDir", "write_json_atomic", "write_text_atomic"]
