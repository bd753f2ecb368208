"""The embedded demo: data and config for `evaltune demo` and `evaltune init` (package data)."""

from pathlib import Path

DEMO_DIR = Path(__file__).parent
DEMO_CONFIG = DEMO_DIR / "config.yaml"

__all__ = ["DEMO_CONFIG", "DEMO_DIR"]
