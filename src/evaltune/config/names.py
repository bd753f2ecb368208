"""The hook through which a config checks its pluggable names: graders, benchmarks, bundles and
policies.

Config imports no other layer, so it does not list those names: each family's catalogue is
owned by the layer that implements it (``evals.GRADER_NAMES``, ``evals.benchmarks.BENCHMARKS``,
its ``BUNDLES`` and ``TEMPLATES``, ``loop.policies.POLICIES``). The layer that joins config to
them, ``loop.context``, gathers those catalogues into a ``NameCatalog`` and installs it with
``register_names``; validation then checks every name against it, and an unknown one is an
error at its file and line, listing the valid names (``load_config`` may be given a catalogue
of its own instead). A family no catalogue names (``None``) is not checked here: nothing above
config has been imported, or a caller chose so, and the builder rejects an unknown name when
the run is built.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NameCatalog", "register_names", "registered_names"]


@dataclass(frozen=True)
class NameCatalog:
    """The names a config may use, per family, in the order an error lists them."""

    graders: tuple[str, ...] | None = None
    benchmarks: tuple[str, ...] | None = None
    bundles: tuple[str, ...] | None = None  # bundles and use-case templates
    policies: tuple[str, ...] | None = None


_registered = NameCatalog()


def register_names(catalog: NameCatalog) -> None:
    """Make ``catalog`` what configs are validated against when no other is given."""
    global _registered
    _registered = catalog


def registered_names() -> NameCatalog:
    """The catalogue ``register_names`` installed (an empty one, checking nothing, before)."""
    return _registered
