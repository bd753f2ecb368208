"""Which config keys look like secrets, and their values masked for messages.

One rule for the schema (``extras`` refuses such keys), the override echo and every value a
config error shows: a key naming a password, secret, token, key or credential holds something
no message may repeat. ``max_tokens`` and ``api_key_env`` (a variable's name) are not secrets,
but masking ``api_key_env`` in an echo costs nothing, so the rule stays simple.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "is_secret_key", "mask_secrets"]

MASK = "…"

# "token" only as a whole word (not "max_tokens"); "key" only at the end of a name or as
# "api_key"/"apikey" (not "keyword", "keep_keys").
_SECRET_KEY = re.compile(
    r"api_?key|secret|passw(or)?d|passphrase|credential|(^|[_.-])(token|key|auth|pwd)$",
    re.IGNORECASE,
)


def is_secret_key(name: object) -> bool:
    """Whether a key (``db_password``, ``extras.hf_token``, ``apiKey``) names a secret."""
    return bool(_SECRET_KEY.search(str(name)))


def mask_secrets(value: Any) -> Any:
    """``value`` with the value under every secret-looking key (at any depth) masked."""
    if isinstance(value, dict):
        return {k: MASK if is_secret_key(k) else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(item) for item in value]
    return value
