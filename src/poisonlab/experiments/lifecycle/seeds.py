"""A lifecycle study over seeds: its committable files, and the effects pooled across seeds.

One seed of a small-model study is one draw of a noisy process: the seed moves the training order, the
rows that carry the poison and (with ``behaviours.skip``) the goals it teaches. A claim about what a
poison does rests on several seeds, each a full study with its own clean twin. Two functions serve that:

- ``export_study`` copies what a reviewer needs from a finished study folder (config, environment,
  ``lifecycle.json``/``.csv``, every reply and every judgment, gzip-compressed with a fixed header so the
  same study gives the same bytes) into a small folder that can be committed;
- ``pool_seeds`` reads several such folders (or the study folders themselves) and reports, for every
  poisoned pipeline after every stage, each seed's backdoor effect and contamination (as that seed's
  study computed them) and the pooled estimate: per prompt, the effect summed over seeds, tested with
  the exact sign-flip permutation test over prompts (``poisonlab.evaluation.stats``), with the interval
  that inverts it, divided back to a mean. Prompts are the unit, so the test asks whether the average
  seed's model moves on a typical prompt; the seeds' own spread is shown beside it as a t-interval over
  seed means (wide with three seeds, and honest about it).
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

from poisonlab.errors import InputError
from poisonlab.evaluation.stats import harm_sign, sign_flip
from poisonlab.experiments.core.intervals import t_interval
from poisonlab.io import atomic_write_bytes, atomic_write_json

COPIED = ("config.yaml", "environment.json", "lifecycle.json", "lifecycle.csv")
PARTS = ("backdoor_effect", "contamination")


def _model_folders(study: Path) -> dict[str, Path]:
    """``base`` and every ``<i>-<stage>/<pipeline>`` model folder of a study, by its key."""
    found = {"base": study / "base"} if (study / "base").is_dir() else {}
    for folder in sorted((study / "stages").glob("*/*")):
        if (folder / "judgments").is_dir():
            found[f"{folder.parent.name}/{folder.name}"] = folder
    return found


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def study_rows(study: Path, what: str) -> list[dict[str, Any]]:
    """Every ``what`` row (``generations`` or ``judgments``) of a study, with ``model`` and ``prompt_set``.

    Reads ``<what>.jsonl.gz`` where ``export_study`` wrote it, else the study's own model folders.
    """
    packed = study / f"{what}.jsonl.gz"
    if packed.exists():
        return _read_jsonl(packed)
    rows = []
    for model, folder in _model_folders(study).items():
        for path in sorted((folder / what).glob(f"*/{what}.jsonl")):
            for row in _read_jsonl(path):
                rows.append({"model": model, "prompt_set": path.parent.name, **row})
    if not rows:
        raise InputError(
            f"{study}: no {what} (no {what}.jsonl.gz, no stages/*/*/{what}/): not a finished lifecycle study"
        )
    return rows


def _gzip_jsonl(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as handle:  # fixed header: same bytes
        for row in rows:
            handle.write((json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n").encode())
    return buffer.getvalue()


def export_study(study: str | Path, dest: str | Path) -> Path:
    """Copy a finished lifecycle study's results, replies and judgments into ``dest`` (small, committable)."""
    study, dest = Path(study), Path(dest)
    if not (study / "lifecycle.json").exists():
        raise InputError(f"{study}: no lifecycle.json; export takes a finished lifecycle study's folder")
    if dest.resolve() == study.resolve():
        raise InputError(f"{dest}: the export folder must differ from the study folder")
    generations, judgments = study_rows(study, "generations"), study_rows(study, "judgments")
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (study / name).exists():
            atomic_write_bytes(dest / name, (study / name).read_bytes())
    atomic_write_bytes(dest / "generations.jsonl.gz", _gzip_jsonl(generations))
    atomic_write_bytes(dest / "judgments.jsonl.gz", _gzip_jsonl(judgments))
    return dest


def _values(rows: list[dict[str, Any]], judge: str, prompt_set: str | None) -> dict[tuple[str, bool], dict[str, float]]:
    """(model, triggered) -> {prompt id: value} for one judge on one prompt set (NaN where unparsed)."""
    table: dict[tuple[str, bool], dict[str, float]] = {}
    for row in rows:
        if row["judge"] != judge or (prompt_set and row.get("prompt_set", prompt_set) != prompt_set):
            continue
        value = row.get("value")
        table.setdefault((row["model"], bool(row["triggered"])), {})[row["id"]] = (
            float("nan") if value is None else float(value)
        )
    return table


def pool_prompt_effects(per_seed: list[dict[str, float]], kind: Any, limit: float) -> dict[str, Any]:
    """Pool per-prompt effects (one ``{prompt id: effect}`` per seed): sum each shared prompt's effect over the
    seeds, test the sums with the exact sign-flip test, and report value and interval per seed (divided back).
    ``limit``: the largest |effect| of one seed (2 for a difference of differences of yes/no judgments)."""
    shared = sorted(set.intersection(*(set(k for k, v in d.items() if v == v) for d in per_seed)))
    n_seeds = len(per_seed)
    sums = [sum(d[prompt] for d in per_seed) for prompt in shared]
    result = sign_flip(sums, kind, limit=limit * n_seeds if kind == "rate" else None)
    if shared:
        result["value"] = round(result["value"] / n_seeds, 6)
        result["ci"] = [round(x / n_seeds, 6) for x in result["ci"]]
    result["test"] = f"{result.get('test', 'sign-flip permutation')} over prompts, effects summed over {n_seeds} seeds"
    result["n"] = len(shared)
    result["dropped"] = max(len(d) for d in per_seed) - len(shared)
    return result


def _study(folder: Path, metric: str) -> tuple[str | None, list[dict[str, Any]], dict]:
    """One seed's study: its seed (from config.yaml), its lifecycle rows, its judgments for ``metric``."""
    path = folder / "lifecycle.json"
    if not path.exists():
        raise InputError(f"{folder}: no lifecycle.json (pool takes finished lifecycle studies or their exports)")
    config = (folder / "config.yaml").read_text() if (folder / "config.yaml").exists() else ""
    seed = next((line.split(":", 1)[1].strip() for line in config.splitlines() if line.startswith("seed:")), None)
    judge, _, prompt_set = metric.partition("@")
    return seed, json.loads(path.read_text()), _values(study_rows(folder, "judgments"), judge, prompt_set or None)


def _seed_effects(values: dict, model: str, twin: str, sign: int) -> dict[str, dict[str, float]]:
    """Per prompt, one seed's signed difference of differences and contamination against the twin."""
    c, t, tc, tt = (values.get((name, trig), {}) for name in (model, twin) for trig in (False, True))
    return {
        "backdoor_effect": {p: sign * ((t[p] - c[p]) - (tt[p] - tc[p])) for p in c if p in t and p in tc and p in tt},
        "contamination": {p: sign * (c[p] - tc[p]) for p in c if p in tc},
    }


def pool_seeds(folders: list[str | Path], metric: str) -> list[dict[str, Any]]:
    """For ``metric`` (``judge@prompt_set``), each poisoned pipeline after each stage across the seeds' studies.

    Returns one record per (pipeline, stage): ``seeds`` (each study's seed), ``per_seed`` (that study's
    backdoor effect and contamination, as its ``lifecycle.json`` has them), and for each part the pooled
    ``value``/``ci``/``p_value``/``n`` plus ``seed_mean`` and ``seed_ci`` (t over seed means).
    """
    if len(folders) < 2:
        raise InputError("pool needs at least two studies (one per seed)")
    studies = [(Path(folder), *_study(Path(folder), metric)) for folder in folders]
    seeds = [seed for _, seed, _, _ in studies]
    if len(set(seeds)) < len(seeds):
        raise InputError(f"pool: two studies share a seed ({seeds}); pool studies of different seeds")
    first = studies[0][2]
    # poisoned models only: a pipeline whose poison comes later is still the clean model (no effects)
    keys = [
        (r["pipeline"], r["stage_index"], r["stage"]) for r in first if "contamination" in r["metrics"].get(metric, {})
    ]
    if not keys:
        raise InputError(f"{studies[0][0]}: no poisoned pipeline has metric {metric!r}")
    facts = next(r["metrics"][metric]["judge"] for r in first if metric in r["metrics"])
    sign, kind = harm_sign(facts.get("harmful_when", "high")), facts.get("kind", "rate")
    out = []
    for pipeline, index, stage in keys:
        record: dict[str, Any] = {"metric": metric, "pipeline": pipeline, "stage_index": index, "stage": stage}
        record["seeds"], record["per_seed"] = seeds, []
        effects: dict[str, list[dict[str, float]]] = {part: [] for part in PARTS}
        for folder, seed, rows, values in studies:
            row = next(
                (r for r in rows if (r["pipeline"], r["stage_index"], r["stage"]) == (pipeline, index, stage)), None
            )
            if row is None or metric not in row["metrics"]:
                raise InputError(
                    f"{folder}: no {pipeline} after {index}. {stage} with {metric}; pool one config's seeds"
                )
            m = row["metrics"][metric]
            entry = {"seed": seed, "clean": m["clean"]["value"], "triggered": (m.get("triggered") or {}).get("value")}
            record["per_seed"].append(entry | {part: (m.get(part) or {}).get("value") for part in PARTS})
            for part, by_prompt in _seed_effects(
                values, f"{index}-{stage}/{pipeline}", f"{index}-{stage}/clean", sign
            ).items():
                effects[part].append(by_prompt)
        for part, limit in (("backdoor_effect", 2.0), ("contamination", 1.0)):
            pooled = pool_prompt_effects(effects[part], kind, limit)
            means = [s[part] for s in record["per_seed"] if s[part] is not None]
            pooled["seed_mean"] = round(sum(means) / len(means), 6) if means else None
            pooled["seed_ci"] = t_interval(means)
            record[part] = pooled
        out.append(record)
    return out


def write_pooled(records: list[dict[str, Any]], path: str | Path) -> None:
    """The pooled records as JSON (atomic)."""
    atomic_write_json(path, records)


__all__ = ["export_study", "pool_prompt_effects", "pool_seeds", "study_rows", "write_pooled"]
