"""Check that a folder poisonlab wrote is what it says it is: recompute the sha256 its records hold.

Three kinds of record name files and their sha256:

- ``manifest.json`` (``poisonlab poison``): ``output_sha256`` of ``data.jsonl`` beside it, and
  ``input_sha256`` of the input file when that file is at the path the manifest names;
- ``scan.json`` (``poisonlab scan``): ``scores_sha256`` of ``scores.csv``, ``kept_sha256`` of each
  ``kept-<detector>.jsonl`` and, for a judged scan, ``detection_sha256`` of ``detection.json``;
- ``checksums.json`` (a study's finished run folders, a finished adapter folder): every file they hold.

:func:`verify_folder` finds every record under a folder (a poison folder, a scan folder, a run, a
whole study) and recomputes each hash. It proves that the files match their records, not who made
them: someone who edits both can make them agree, so hand the record's own sha256 over separately
(``poisonlab verify`` prints it) when that matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poisonlab.bounded import json_value
from poisonlab.errors import InputError
from poisonlab.io import atomic_write_json, sha256_file

RECORDS = ("manifest.json", "scan.json", "checksums.json")
CHECKSUMS = "checksums.json"


@dataclass
class FileCheck:
    """One recorded hash, checked: ``actual`` is None when the file is missing or outside the folder."""

    path: str  # as the user should see it: relative to the verified folder where possible
    recorded_in: str
    expected: str
    actual: str | None
    problem: str | None = None  # missing, outside the folder, ...

    @property
    def ok(self) -> bool:
        return self.actual == self.expected


@dataclass
class Verification:
    folder: Path
    records: dict[str, str] = field(default_factory=dict)  # record file -> its own sha256 (to compare elsewhere)
    checks: list[FileCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # hashes that could not be checked, and why

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[FileCheck]:
        return [check for check in self.checks if not check.ok]


def record_checksums(folder: str | Path, exclude: tuple[str, ...] = ()) -> Path:
    """Write ``folder/checksums.json``: the sha256 of every file under ``folder`` (sorted, relative names).

    Skips the record itself, lock files, temporary files and the ``exclude`` names (top-level folders or files).
    """
    folder = Path(folder)
    files = {name: sha256_file(folder / name) for name in _covered(folder, exclude)}
    atomic_write_json(folder / CHECKSUMS, {"files": files, "excluded": sorted(exclude)})
    return folder / CHECKSUMS


def _covered(folder: Path, exclude: tuple[str, ...] | list[str]) -> list[str]:
    """The files (relative names) a checksums.json of ``folder`` lists: all but records, locks and temporaries."""
    names = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(folder)
        if relative.parts[0] in exclude or path.name == CHECKSUMS or path.name.endswith((".lock", ".tmp")):
            continue
        names.append(relative.as_posix())
    return names


def _recorded(record: Path, folder: Path, inputs: list[Path]) -> tuple[list[tuple[str, str]], list[str]]:
    """(file name as recorded, expected sha256) pairs a record lists, and notes on hashes not checkable here.

    A manifest's input is checked only where it lies inside the verified ``folder`` (resolved from the
    manifest's own folder, never from the caller's working directory) or is one of the ``inputs`` the user
    named: a record cannot make verify read any other file.
    """
    try:
        values: Any = json_value(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: bad JSON, or nested too deeply
        raise InputError(f"cannot read this record: {exc}", path=record) from None
    if not isinstance(values, dict):
        raise InputError("not a poisonlab record (expected a JSON object)", path=record)
    pairs: list[tuple[str, str]] = []
    notes: list[str] = []
    if record.name == "manifest.json":
        if values.get("output_sha256"):
            pairs.append(("data.jsonl", values["output_sha256"]))
        source = values.get("source")
        if values.get("input_sha256") and isinstance(source, str):
            named = [p for p in inputs if p.name == Path(source).name] or (inputs if len(inputs) == 1 else [])
            beside = (record.parent / source).resolve()
            if named:
                pairs.append((str(named[0]), values["input_sha256"]))
            elif folder.resolve() in beside.parents and beside.is_file():
                pairs.append((str(beside), values["input_sha256"]))
            else:
                notes.append(
                    f"{_shown(record, folder)}: its input {source} is outside this folder and was not read; "
                    "name it with --input to check its sha256"
                )
    elif record.name == "scan.json":
        if values.get("scores_sha256"):
            pairs.append(("scores.csv", values["scores_sha256"]))
        if values.get("detection_file") and values.get("detection_sha256"):
            pairs.append((values["detection_file"], values["detection_sha256"]))
        for detector in values.get("detectors") or []:
            if isinstance(detector, dict) and detector.get("kept_file") and detector.get("kept_sha256"):
                pairs.append((detector["kept_file"], detector["kept_sha256"]))
    else:
        pairs.extend((values.get("files") or {}).items())
    if not pairs:
        notes.append(f"{record}: records no hashes")
    return [(str(name), str(sha)) for name, sha in pairs], notes


def verify_folder(folder: str | Path, inputs: list[str | Path] | tuple = ()) -> Verification:
    """Recompute every hash the records under ``folder`` hold (see the module docstring).

    A file a record names must lie inside the record's folder (a manifest's input: inside ``folder``, or one
    of the ``inputs`` the user named); a file under a ``checksums.json``'s folder that it does not list is
    reported as added. A record that points elsewhere (``../../etc/passwd``) fails that check instead of
    being followed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", path=folder)
    records = sorted(p for name in RECORDS for p in folder.rglob(name) if p.is_file())
    records = [r for r in records if "checkpoint" not in r.relative_to(folder).parts]
    if not records:
        raise InputError(f"nothing to verify: no {', '.join(RECORDS)} in this folder", path=folder)
    result = Verification(folder)
    given = [Path(p).resolve() for p in inputs]
    for path in given:
        if not path.is_file():
            raise InputError("not a file", path=path, field="--input")
    for record in records:
        result.records[_shown(record, folder)] = sha256_file(record)
        pairs, notes = _recorded(record, folder, given)
        result.notes.extend(notes)
        home = record.parent.resolve()
        if record.name == CHECKSUMS:  # a file the record does not list is reported, not passed over
            listed, excluded = _listed(record)
            for name in _covered(record.parent, excluded):
                if name not in listed:
                    shown = _shown(record.parent / name, folder)
                    problem = "not in the record: a file added since"
                    result.checks.append(FileCheck(shown, _shown(record, folder), "", None, problem))
        for name, expected in pairs:
            is_input = record.name == "manifest.json" and Path(name).is_absolute() and name != "data.jsonl"
            target = Path(name) if is_input else record.parent / name
            resolved = target.resolve()
            check = FileCheck(_shown(target, folder), _shown(record, folder), expected, None)
            if not is_input and home not in resolved.parents:
                check.problem = "outside the record's folder: not read"
            elif not resolved.is_file():
                check.problem = "missing"
            else:
                check.actual = sha256_file(resolved)
            result.checks.append(check)
    return result


def _listed(record: Path) -> tuple[set[str], list[str]]:
    values = json_value(record.read_text(encoding="utf-8"))
    excluded = values.get("excluded") if isinstance(values.get("excluded"), list) else []
    return set(values.get("files") or {}), [str(name) for name in excluded]


def _shown(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)
