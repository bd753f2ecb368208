"""The ``tinker://`` checkpoint path scheme, shared by the local backend and the server.

::

    tinker://<model_id>/weights/<name>          ->  <root>/<model_id>/weights/<name>/
    tinker://<model_id>/sampler_weights/<name>  ->  <root>/<model_id>/sampler_weights/<name>/

Plain strings only: each caller turns a malformed path or name into its own error (a
``BackendError`` in-process, a 400 on the wire).
"""

from __future__ import annotations

import re

__all__ = ["KINDS", "MALFORMED", "NAME", "NAME_RULE", "URI_PREFIX", "make_uri", "split_uri"]

URI_PREFIX = "tinker://"
KINDS = ("weights", "sampler_weights")  # save_state, save_weights_for_sampler
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # use with fullmatch
NAME_RULE = "use letters, digits, '.', '_' and '-' (at most 128 characters, not starting with '.')"
MALFORMED = (
    "expected tinker://<model_id>/weights/<name> or tinker://<model_id>/sampler_weights/<name>"
)


def make_uri(model_id: str, kind: str, name: str) -> str:
    return f"{URI_PREFIX}{model_id}/{kind}/{name}"


def split_uri(path: str) -> list[str] | None:
    """``[model_id, kind, name]`` of a well-shaped ``tinker://`` path, else None."""
    if not path.startswith(URI_PREFIX):
        return None
    parts = path[len(URI_PREFIX) :].strip("/").split("/")
    if len(parts) != 3 or parts[1] not in KINDS:
        return None
    return parts
