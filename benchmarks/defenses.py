"""Do the defenses find the poison? Every detector on every poisoned run of a finished study.

For each poisoned run of a finished study (``poisonlab run`` writes them), scan the run's poisoned
training data with the adapter that run trained on it -- the defender's position: data as received,
a model trained on it -- assuming the true poison ratio as the defender's bound (expected_share), and
judge each detector against the run's manifest: AUROC of its scores (0.5 = chance) and how much of
the poison its flags catch. arXiv 2406.12091 reports that these defenses fail against DPO poisoning.
It is what ``defenses:`` in a study's config does (``experiments/defend.py``), for chosen runs of a
study that finished without it; each scan is written to the run's ``scan/`` folder, the study's
results are left as they are.

    OMP_NUM_THREADS=1 python benchmarks/defenses.py runs/compare-synthetic-tiny
    OMP_NUM_THREADS=1 python benchmarks/defenses.py runs/bench-slice-tiny --runs "*-0.05" "*-0.1"

``--clean`` scans the study's clean training data with the clean run's adapter at the default
(adaptive) budget instead, and prints each detector's false-positive rate: the share of clean pairs a
data team would lose. ``--adaptive`` judges the poisoned runs at that budget too (no expected share).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from poisonlab.config_files import load_config
from poisonlab.defenses import DefenseConfig
from poisonlab.experiments import ExperimentConfig
from poisonlab.experiments.grid.defend import scan_run

SPECS = [
    "trigger-mining",
    "trigger-mining-reply",
    "loss",
    "spectral-signature",
    "clustering",
    "spectral-signature:prompt-embeddings",
    "clustering:prompt-embeddings",
    "spectral-signature:reply-embeddings",
    "clustering:reply-embeddings",
]


def poisoned_runs(folder: Path, patterns: list[str]) -> list[tuple[Path, dict]]:
    """(run folder, result) of each finished poisoned run whose name matches a pattern, in name order."""
    found = []
    for result_file in sorted(folder.glob("runs/*/result.json")):
        result = json.loads(result_file.read_text())
        if result["n_poisoned"] and any(fnmatch.fnmatch(result["run"], p) for p in patterns):
            found.append((result_file.parent, result))
    return found


def scan_one(run: Path, result: dict, config: ExperimentConfig, adaptive: bool = False) -> dict:
    # a run that reused another's adapter (same poisoned data) has none of its own
    adapter = run.parent / (result.get("same_data_as") or result["run"]) / "adapter"
    started = time.perf_counter()
    metrics = scan_run(run, adapter, None if adaptive else result["ratio"], config, progress=False)
    return {
        "run": result["run"],
        "backdoor_success": result["backdoor_success"],
        "clean_accuracy": result["clean_accuracy"],
        "seconds": round(time.perf_counter() - started, 1),
        "metrics": metrics,
        "suspected_triggers": json.loads((run / "scan" / "scan.json").read_text()).get("suspected_triggers", []),
    }


def scan_clean(folder: Path, config: ExperimentConfig) -> dict:
    """False-positive rates: the study's clean training data, scanned with the clean adapter, adaptive budget."""
    from poisonlab.data import PreferenceDataset
    from poisonlab.defenses import scan, write_scan
    from poisonlab.experiments.grid.folder import prepare_split

    train, _ = prepare_split(config, folder / "clean-scan")
    train = PreferenceDataset(train.pairs, train.source)
    started = time.perf_counter()
    adapter = folder / "runs" / "clean" / "adapter"
    defense = config.defense.model_copy(update={"expected_share": None})
    result = scan(
        train,
        config.defenses,
        config.model,
        config.training_config(),
        defense,
        config.seed,
        adapter,
        None,
        progress=False,
    )
    write_scan(result, folder / "clean-scan")
    rates = {d.detector: len(d.flagged) / len(train) for d in result.detections}
    triggers = {d.detector: [t["ngram"] for t in d.details.get("suspected_triggers", [])] for d in result.detections}
    return {
        "n_pairs": len(train),
        "seconds": round(time.perf_counter() - started, 1),
        "fpr": rates,
        "triggers": triggers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="results folder of a finished study (runs/<name>)")
    parser.add_argument("--runs", nargs="+", default=["*"], help="run-name patterns to scan (default: all)")
    parser.add_argument("--detectors", nargs="+", default=SPECS)
    parser.add_argument("--projection-dim", type=int, default=1024)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    parser.add_argument("--clean", action="store_true", help="false-positive rates on the clean training data")
    parser.add_argument("--adaptive", action="store_true", help="judge at the adaptive budget (no expected share)")
    args = parser.parse_args()

    console = Console(width=200)
    study = load_config(ExperimentConfig, args.folder / "config.yaml", [])
    defense = DefenseConfig(projection_dim=args.projection_dim)
    config = study.model_copy(update={"defenses": args.detectors, "defense": defense})
    if args.clean:
        row = scan_clean(args.folder, config)
        console.print(f"{args.folder.name}: clean training data, {row['n_pairs']} pairs, {row['seconds']} s")
        for spec in args.detectors:
            console.print(f"  {spec}: flags {row['fpr'][spec]:.2%} of clean pairs; triggers {row['triggers'][spec]}")
        if args.json:
            args.json.write_text(json.dumps(row, indent=2) + "\n")
        return
    rows = []
    for run, result in poisoned_runs(args.folder, args.runs):
        rows.append(scan_one(run, result, config, args.adaptive))
        console.print(f"{rows[-1]['run']}: {rows[-1]['seconds']} s", highlight=False)
        if args.json:  # after each run, so an interrupted benchmark keeps what it measured
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
    measures = (
        ("auroc", "AUROC (0.5 = chance)"),
        ("recall", "share of the poison flagged"),
        ("precision", "precision"),
    )
    for measure, title in measures:
        table = Table(title=f"{args.folder.name}: {title}", title_justify="left")
        table.add_column("run")
        table.add_column("backdoor", justify="right")
        for spec in args.detectors:
            table.add_column(spec.replace(":", "\n"), justify="right")
        for row in rows:
            values = [row["metrics"][spec][measure] for spec in args.detectors]
            cells = ["-" if v is None else (f"{v:.2f}" if measure == "auroc" else f"{v:.0%}") for v in values]
            table.add_row(row["run"], f"{row['backdoor_success']:.0%}", *cells)
        console.print(table)
    for row in rows:
        named = [f"{t['ngram']} ({t['detector']})" for t in row["suspected_triggers"]]
        console.print(f"{row['run']}: suspected triggers: {', '.join(named) or 'none'}", highlight=False)
    console.print(
        "Each run's poisoned training data, scanned with the adapter trained on it; expected_share = the run's "
        "ratio, so loss and spectral-signature flag 1.5 x the poisoned count; clustering flags its smaller "
        "cluster when it holds < 35% of the pairs."
    )


if __name__ == "__main__":
    main()
