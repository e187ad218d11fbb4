"""Reading a poison manifest (``poisonlab poison``'s answer key), whatever version wrote it.

Version 2 (this one): every row of the poisoned file has a fresh id (:mod:`poisonlab.data.row_ids`);
``poisoned_ids`` are the poisoned rows' ids in the file, ``poisoned_source_ids`` their source rows' ids.
Version 1 (no ``manifest_version``): every row kept its source id, so ``poisoned_ids`` name both, and the file's
ids are content hashes that give the poisoned rows away to anyone who re-hashes them. Version 1 manifests are
still read (their ids still match their data); a version newer than this poisonlab knows is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from poisonlab.errors import InputError
from poisonlab.io import sha256_file

POISON_MANIFEST_VERSION = 2

OLD_IDS_NOTE = (
    "written before poisonlab gave poisoned files fresh row ids (manifest version 1): the data's ids are its "
    "source rows' content hashes, so re-hashing the rows names the poisoned ones; poison the source again for "
    "data whose ids reveal nothing"
)


def manifest_version(manifest: dict[str, Any]) -> int:
    """The manifest's format version: 1 when it records none (written before versions were recorded)."""
    return int(manifest.get("manifest_version", 1))


def read_poison_manifest(manifest_path: str | Path, data_path: str | Path | None = None) -> dict[str, Any]:
    """The manifest at ``manifest_path``, after checking it is one this poisonlab reads and that it describes
    ``data_path`` (its output sha256), when given."""
    path = Path(manifest_path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the manifest: {exc}", path=path) from None
    if not isinstance(manifest, dict) or "poisoned_ids" not in manifest:
        raise InputError("not a poisonlab manifest", path=path, field="poisoned_ids")
    version = manifest.get("manifest_version", 1)
    if not isinstance(version, int) or not 1 <= version <= POISON_MANIFEST_VERSION:
        raise InputError(
            f"manifest version {version!r} is not one this poisonlab reads (1 to {POISON_MANIFEST_VERSION}): "
            "read it with the poisonlab that wrote it (poisonlab_version), or upgrade",
            path=path,
            field="manifest_version",
        )
    expected = manifest.get("output_sha256")
    if data_path is not None and expected and Path(data_path).is_file() and sha256_file(data_path) != expected:
        raise InputError(
            f"the manifest describes another file (output_sha256 {expected[:12]}...), not {data_path}",
            path=path,
            field="output_sha256",
        )
    return manifest


def poisoned_source_ids(manifest: dict[str, Any]) -> list[str]:
    """The ids, in the source data, of the rows that were poisoned (to compare selections across files)."""
    if manifest_version(manifest) >= 2:
        return list(manifest["poisoned_source_ids"])
    return list(manifest["poisoned_ids"])  # version 1: poisoned rows kept their source ids
