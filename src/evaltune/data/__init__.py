"""Data: files → validated, normalised ``Example``s → rendered token sequences.

Knows nothing of models beyond a tokenizer. Where things live:

- ``example``: the ``Example`` and ``Message`` types every loader produces;
- ``records``: one raw record (any accepted shape) → an ``Example``, with per-field problems;
- ``load``: JSONL / JSON / CSV / Parquet files → ``Example``s, all problems in one ``DataError``;
- ``dedup``: exact and normalised duplicates; training examples overlapping an eval set;
- ``renderers``: ``Example`` → tokens + loss weights (``chat_template``, ``role_colon``, ``plain``);
- ``stats``: token counts of a data set as a renderer sees it.
"""

from evaltune.data.dedup import (
    DedupReport,
    Dropped,
    OverlapReport,
    dedupe,
    normalise_text,
    remove_overlap,
)
from evaltune.data.example import Example, Message
from evaltune.data.load import SUPPORTED_SUFFIXES, load_examples, load_many
from evaltune.data.records import parse_record
from evaltune.data.renderers import (
    RENDERERS,
    RenderedExample,
    Renderer,
    get_renderer,
    to_datum,
)
from evaltune.data.stats import TokenStats, token_stats

__all__ = [
    "RENDERERS",
    "SUPPORTED_SUFFIXES",
    "DedupReport",
    "Dropped",
    "Example",
    "Message",
    "OverlapReport",
    "RenderedExample",
    "Renderer",
    "TokenStats",
    "dedupe",
    "get_renderer",
    "load_examples",
    "load_many",
    "normalise_text",
    "parse_record",
    "remove_overlap",
    "to_datum",
    "token_stats",
]
