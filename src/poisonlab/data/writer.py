"""Write pairs as TRL-format JSONL, atomically."""

from __future__ import annotations

from pathlib import Path

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.io import atomic_write_json, atomic_write_jsonl, sha256_file, sha256_path
from poisonlab.outputs import refuse_overwriting_inputs


def write_pairs(dataset: PreferenceDataset, path: str | Path) -> str:
    """Write ``{"id", "prompt", "chosen", "rejected"}`` lines; return the file's sha256."""
    atomic_write_jsonl(path, (pair.to_row() for pair in dataset))
    return sha256_file(path)


def write_with_manifest(
    dataset: PreferenceDataset, manifest: dict, out_dir: str | Path, input_path: str | Path | None
) -> Path:
    """Write ``out_dir/data.jsonl`` then ``manifest.json`` (last: its presence means the folder is complete).

    The manifest gains the input's and the output's sha256 (``poisonlab verify`` checks them); neither file may
    replace the input. Shared by poisoned data (attacks) and watermarked data (watermarks).
    """
    out = Path(out_dir)
    refuse_overwriting_inputs([out / "data.jsonl", out / "manifest.json"], [input_path])
    manifest = dict(manifest)
    manifest["input_sha256"] = sha256_path(input_path) if input_path and Path(input_path).exists() else None
    manifest["output_sha256"] = write_pairs(dataset, out / "data.jsonl")
    atomic_write_json(out / "manifest.json", manifest)
    return out
