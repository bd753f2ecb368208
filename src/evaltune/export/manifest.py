"""``manifest.json``: what an export folder holds and where it came from: source run, round,
eval scores, base model, format, the self-check's result, the evaltune version and the
sha256 and size of every file written (the manifest itself excepted)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaltune import __version__
from evaltune.tracking import write_json_atomic

__all__ = ["MANIFEST", "file_digests", "sha256_of", "write_manifest"]

MANIFEST = "manifest.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(out: Path) -> dict[str, dict[str, Any]]:
    """``relative path → {sha256, bytes}`` for every file under ``out`` but the manifest."""
    return {
        str(p.relative_to(out)): {"sha256": sha256_of(p), "bytes": p.stat().st_size}
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def write_manifest(out: Path, fields: dict[str, Any]) -> Path:
    manifest = {
        "evaltune_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **fields,
        "files": file_digests(out),
    }
    path = out / MANIFEST
    write_json_atomic(path, manifest)
    return path
