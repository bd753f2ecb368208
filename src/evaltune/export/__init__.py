"""``evaltune export``: a trained adapter as what a deployment uses (a PEFT adapter, vLLM-ready
with ``--vllm``; a merged Hugging Face folder; GGUF with an Ollama ``Modelfile``), with a
``manifest.json`` and a self-check of greedy outputs against the adapter's.

``source`` resolves what to export (a run's best round, a ``tinker://`` path, an adapter
folder), ``formats`` writes and checks it, ``templates`` spells the run's prompt format for
Hugging Face and Ollama, ``manifest`` records it all. No torch here: the model work is
``evaltune.engine.export``'s.
"""

from evaltune.export.formats import FORMATS, GGUF_TYPES, CheckResult, ExportReport, export_model
from evaltune.export.manifest import MANIFEST
from evaltune.export.source import ExportSource, describe, resolve_source, run_adapters

__all__ = [
    "FORMATS",
    "GGUF_TYPES",
    "MANIFEST",
    "CheckResult",
    "ExportReport",
    "ExportSource",
    "describe",
    "export_model",
    "resolve_source",
    "run_adapters",
]
