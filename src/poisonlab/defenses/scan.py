"""Run detectors over a preference dataset, judge them against a manifest, and write what they keep.

A detector is named alone (``loss``) or with the features it should look at
(``spectral-signature:reply-embeddings``), so one scan can compare several.
With the manifest ``poisonlab poison`` wrote, each detector is judged: of the
pairs it flags, how many are poison (precision), how many of the poison it
finds (recall), and how well its scores rank poison above clean pairs (AUROC,
0.5 = chance), which judges the ranking apart from where the flagging budget
cuts it. The judgement goes to ``detection.json``, never beside the scores:
``scores.csv`` holds the detectors' scores only, so nobody who reads it as
detector output is handed the answer.

Without a manifest it is a data team's tool (:func:`vetting_report`): a ranked
list of the flagged pairs with each one's reason (the suspected trigger, where a
detector names one), an estimated poison share, and the data without the flagged
pairs plus a manifest of what was removed (rows, ids, reasons, sha256 of each
removed row and of the input and output).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from poisonlab.data.pairs import PreferenceDataset, PreferencePair
from poisonlab.data.poison_manifest import read_poison_manifest
from poisonlab.data.writer import write_pairs
from poisonlab.defenses.config import DefenseConfig
from poisonlab.defenses.detectors import DETECTORS, Detection, DetectionContext, DetectorFacts
from poisonlab.defenses.features import FEATURES
from poisonlab.errors import InputError
from poisonlab.io import atomic_write_json, atomic_write_text, sha256_file
from poisonlab.training.config import DPOTrainingConfig

DETECTION_FILE = "detection.json"  # the scan judged against the manifest (ground truth): never in scores.csv


@dataclass
class DetectionMetrics:
    n_pairs: int
    n_poison: int
    n_flagged: int
    true_positives: int
    precision: float | None  # None when nothing is flagged
    recall: float | None  # None when there is no poison
    auroc: float | None  # None unless there are both poison and clean pairs


@dataclass
class ScanResult:
    dataset: PreferenceDataset
    detections: list[Detection]
    metrics: dict[str, DetectionMetrics] | None  # by detector spec, when the poisoned ids are known

    def kept(self, detector: str) -> PreferenceDataset:
        """The dataset without the pairs ``detector`` flagged, in the original order."""
        flagged = set(next(d for d in self.detections if d.detector == detector).flagged)
        return PreferenceDataset([p for p in self.dataset if p.id not in flagged], self.dataset.source)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``name`` or ``name:features`` -> (name, features); unknown names fail with the closest ones."""
    name, _, features = spec.partition(":")
    DETECTORS.get(name)
    if features:
        FEATURES.get(features)
    return name, features or None


def check_reads_demonstrations(specs: Sequence[tuple[str, str, str | None]]) -> None:
    """Refuse a detector that needs preference pairs (a rejected reply, a DPO model) on SFT rows."""
    for spec, name, features in specs:
        facts = DETECTORS.facts(name) or DetectorFacts()
        if facts.demonstrations or (facts.features and features == "prompt-embeddings"):
            continue
        readers = sorted(n for n in DETECTORS.names() if (DETECTORS.facts(n) or DetectorFacts()).demonstrations)
        raise InputError(
            f"{spec!r} needs preference pairs (a rejected reply, or a DPO model's scores); SFT rows take "
            f"{', '.join(readers)}, or spectral-signature/clustering with :prompt-embeddings",
            field="--detector",
        )


def kept_file_name(spec: str) -> str:
    """The file ``write_scan`` writes the pairs ``spec`` does not flag to."""
    return f"kept-{spec.replace(':', '-')}.jsonl"


def detection_metrics(detection: Detection, poisoned_ids: Sequence[str]) -> DetectionMetrics:
    from sklearn.metrics import roc_auc_score

    poison = set(poisoned_ids)
    ids = list(detection.scores)
    labels = [pid in poison for pid in ids]
    hits = sum(pid in poison for pid in detection.flagged)
    n_flagged, n_poison = len(detection.flagged), sum(labels)
    auroc = None
    if 0 < n_poison < len(ids):
        auroc = float(roc_auc_score(labels, [detection.scores[pid] for pid in ids]))
    return DetectionMetrics(
        len(ids),
        n_poison,
        n_flagged,
        hits,
        hits / n_flagged if n_flagged else None,
        hits / n_poison if n_poison else None,
        auroc,
    )


def poisoned_ids_from_manifest(manifest_path: str | Path, data_path: str | Path | None = None) -> list[str]:
    """The poisoned ids a manifest lists, after checking it describes ``data_path`` (its output sha256)."""
    return list(read_poison_manifest(manifest_path, data_path)["poisoned_ids"])


def scan(
    dataset: PreferenceDataset,
    detectors: Sequence[str] = ("loss", "spectral-signature", "clustering"),
    model: str = "tiny",
    training: DPOTrainingConfig | None = None,
    config: DefenseConfig | None = None,
    seed: int = 0,
    adapter: str | Path | None = None,
    poisoned_ids: Sequence[str] | None = None,
    progress: bool = True,
    sft: bool = False,
) -> ScanResult:
    """Run ``detectors`` on ``dataset``; judge them if ``poisoned_ids`` (the ground truth) is given.

    ``model``, ``training`` and ``adapter`` matter to the ``loss`` detector and the ``gradients``
    features: the model they score with is ``adapter`` on ``model``, or, without an adapter, one
    trained here on ``dataset`` with ``training`` (cached). With ``sft`` the rows are SFT demonstrations
    (prompt -> reply; a rejected reply, where a row has one, is ignored): only detectors that read them run.
    """
    specs = [(spec, *parse_spec(spec)) for spec in detectors]  # check every name before any work
    if sft:
        check_reads_demonstrations(specs)
    config = config or DefenseConfig()
    detections = []
    for spec, name, features in specs:
        options = config.model_copy(update={"features": features}) if features else config
        ctx = DetectionContext(
            dataset, model, training or DPOTrainingConfig(), options, seed, Path(adapter) if adapter else None, progress
        )
        detection = DETECTORS.get(name)().detect(ctx)
        detection.detector = spec
        detections.append(detection)
    metrics = None
    if poisoned_ids is not None:
        metrics = {d.detector: detection_metrics(d, poisoned_ids) for d in detections}
    return ScanResult(dataset, detections, metrics)


def write_scan(result: ScanResult, out: str | Path, *, manifest: str | Path | None = None) -> Path:
    """Write ``scores.csv`` (a column per detector, scores only), ``kept-<detector>.jsonl``, the vetting files,
    ``detection.json`` (each detector judged against ``manifest``, when the scan was judged) and ``scan.json`` last.

    Each file is written atomically and ``scan.json`` only after the others, so its presence means complete.
    """
    out = Path(out)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = [d.detector for d in result.detections]
    writer.writerow(["id", *names])
    for pair in result.dataset:
        writer.writerow([pair.id, *(f"{d.scores[pair.id]:.6g}" for d in result.detections)])
    atomic_write_text(out / "scores.csv", buffer.getvalue())
    scores_sha = sha256_file(out / "scores.csv")
    summary = []
    for detection in result.detections:
        kept_file = out / kept_file_name(detection.detector)
        sha = write_pairs(result.kept(detection.detector), kept_file)
        summary.append(
            {
                "detector": detection.detector,
                "flagged": detection.flagged,
                "details": detection.details,
                "kept_file": kept_file.name,
                "kept_sha256": sha,
            }
        )
    vetting = vetting_report(result)
    write_vetting(result, vetting, out)
    judged = write_detection(result, out, scores_sha, manifest) if result.metrics is not None else None
    if judged is None:
        (out / DETECTION_FILE).unlink(missing_ok=True)  # an earlier judged scan's, now stale
    report = {
        "source": result.dataset.source,
        "n_pairs": len(result.dataset),
        "scores_sha256": scores_sha,  # poisonlab verify checks it
        "detection_file": judged.name if judged else None,
        "detection_sha256": sha256_file(judged) if judged else None,
        "estimated_poison_share": vetting["estimated_poison_share"],
        "suspected_triggers": vetting["suspected_triggers"],
        "detectors": summary,
    }
    atomic_write_json(out / "scan.json", report)
    return out


def write_detection(result: ScanResult, out: Path, scores_sha256: str, manifest: str | Path | None) -> Path:
    """``detection.json``: each detector's precision, recall and AUROC against the manifest (the ground truth),
    kept apart from ``scores.csv`` so that the scores carry no answer."""
    metrics = result.metrics or {}
    first = next(iter(metrics.values()), None)
    values = {
        "judged_against": os.path.relpath(manifest, out) if manifest is not None else None,  # from this folder
        "manifest_sha256": sha256_file(manifest) if manifest is not None and Path(manifest).is_file() else None,
        "scores_sha256": scores_sha256,
        "n_pairs": len(result.dataset),
        "n_poison": first.n_poison if first else None,
        "detectors": {spec: asdict(m) for spec, m in metrics.items()},
    }
    atomic_write_json(out / DETECTION_FILE, values)
    return out / DETECTION_FILE


def vetting_report(result: ScanResult) -> dict:
    """The flagged pairs of every detector, most suspicious first, with reasons, and the poison share estimate.

    A pair flagged by several detectors is listed once, with every detector's reason; the order is by the
    number of detectors that flag it, then by its best rank among them. The estimated poison share is the
    share of pairs flagged by any detector (each detector flags only what it finds significant unless the
    defender gave an expected share).
    """
    rank: dict[str, list[int]] = {}
    reasons: dict[str, list[str]] = {}
    for detection in result.detections:
        for position, pid in enumerate(detection.flagged):
            rank.setdefault(pid, []).append(position)
            why = detection.reasons.get(pid, "flagged")
            reasons.setdefault(pid, []).append(f"{detection.detector}: {why}")
    rows = {pair.id: index for index, pair in enumerate(result.dataset)}
    ordered = sorted(rank, key=lambda pid: (-len(rank[pid]), min(rank[pid]), rows[pid]))
    triggers = []
    for detection in result.detections:
        facts = DETECTORS.facts(parse_spec(detection.detector)[0]) or DetectorFacts()
        if facts.names_trigger:
            triggers += [{"detector": detection.detector, **t} for t in detection.details.get("suspected_triggers", [])]
    n = len(result.dataset)
    return {
        "n_pairs": n,
        "n_flagged": len(ordered),
        "estimated_poison_share": len(ordered) / n if n else 0.0,
        "suspected_triggers": triggers,
        "flagged": [
            {"rank": i + 1, "id": pid, "row": rows[pid], "detectors": len(rank[pid]), "reasons": reasons[pid]}
            for i, pid in enumerate(ordered)
        ],
    }


def _row_sha256(pair: PreferencePair) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(pair.to_row(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def write_vetting(result: ScanResult, vetting: dict, out: Path) -> None:
    """``suspicious.csv`` (the ranked list), ``filtered.jsonl`` (the data without any flagged pair) and
    ``removed.json`` (what was removed and why, with hashes)."""
    by_id = {pair.id: pair for pair in result.dataset}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "id", "row", "detectors", "reasons", "prompt_end"])
    for item in vetting["flagged"]:
        prompt = by_id[item["id"]].prompt.strip().replace("\n", " ")
        writer.writerow(
            [item["rank"], item["id"], item["row"], item["detectors"], " | ".join(item["reasons"]), prompt[-160:]]
        )
    atomic_write_text(out / "suspicious.csv", buffer.getvalue())
    removed = {item["id"] for item in vetting["flagged"]}
    filtered = PreferenceDataset([p for p in result.dataset if p.id not in removed], result.dataset.source)
    sha = write_pairs(filtered, out / "filtered.jsonl")
    manifest = {
        "source": result.dataset.source,
        "input_content_sha256": result.dataset.content_hash(),
        "detectors": [d.detector for d in result.detections],
        "n_input": len(result.dataset),
        "n_removed": len(removed),
        "n_kept": len(filtered),
        "estimated_poison_share": vetting["estimated_poison_share"],
        "suspected_triggers": vetting["suspected_triggers"],
        "output_file": "filtered.jsonl",
        "output_sha256": sha,
        "removed": [{**item, "row_sha256": _row_sha256(by_id[item["id"]])} for item in vetting["flagged"]],
    }
    atomic_write_json(out / "removed.json", manifest)
