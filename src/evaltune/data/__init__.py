"""Data: files → validated, normalised ``Example``s → rendered token sequences.

Knows nothing of models beyond a tokenizer.
"""

from evaltune.data.example import Example, Message

__all__ = ["Example", "Message"]
