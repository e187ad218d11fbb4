"""Attack success as the attacker's share of the annotators tightens (arXiv 2502.14182, section 3).

An experiment config has one ``access`` per study, so this runs the config once per share (with
``access.annotator_share`` replaced, each into ``<out>/share-<share>``) and prints one table: share,
strategy, rows the attacker controls, rows it poisoned of those the ratio asks for, and the
backdoor's success on the held-out pairs with its 95% interval, beside the clean twin's.

    OMP_NUM_THREADS=1 python benchmarks/access.py configs/access-annotators.yaml
    OMP_NUM_THREADS=1 python benchmarks/access.py configs/access-annotators.yaml --shares 1 0.1 --set seed=1

Studies resume like ``poisonlab run``: a finished share is read back, not run again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT_SHARES = [1.0, 0.5, 0.1, 0.01]  # of 50 synthetic annotators: 50, 25, 5, 1


def run_share(config_path: Path, share: float, out: Path, overrides: list[str]) -> list[dict[str, Any]]:
    """One study at ``share``; a row per poisoned run (and the clean run), with its manifest's counts."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig, run_experiment

    sets = [*overrides, f"access.annotator_share={share}", f"out={out / f'share-{share:g}'}"]
    config = load_config(ExperimentConfig, config_path, sets)
    rows = []
    for result in run_experiment(config, progress=False):
        folder = Path(config.out or "") / "runs" / result.run
        manifest_file = folder / "poison" / "manifest.json"
        manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
        metrics = json.loads((folder / "metrics.json").read_text())
        effect = (result.metrics or {}).get("preference@heldout", {}).get("backdoor_effect")
        rows.append(
            {
                "share": share,
                "run": result.run,
                "strategy": result.strategy,
                "n_controlled": manifest.get("n_controlled"),
                "n_requested": manifest.get("n_requested"),
                "n_poisoned": result.n_poisoned,
                "backdoor_success": metrics["backdoor_success"],
                "backdoor_success_ci": metrics["backdoor_success_ci"],
                "clean_accuracy": metrics["clean_accuracy"],
                "backdoor_effect": effect,
            }
        )
    return rows


def _ci(value: float, ci: list[float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'share':>6} {'strategy':<20} {'controlled':>10} {'poisoned':>10} "
        f"{'backdoor success [95% CI]':>27} {'clean acc':>9} {'backdoor effect vs clean twin [95% CI]':>38}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["strategy"] == "none":
            continue
        effect = r["backdoor_effect"]
        effect_text = _ci(effect["value"], effect["ci"]) if effect else "-"
        poisoned = f"{r['n_poisoned']}/{r['n_requested']}"
        lines.append(
            f"{r['share']:>6.0%} {r['strategy']:<20} {r['n_controlled']:>10} {poisoned:>10} "
            f"{_ci(r['backdoor_success'], r['backdoor_success_ci']):>27} {r['clean_accuracy']:>9.3f} {effect_text:>38}"
        )
    clean = [r for r in rows if r["strategy"] == "none"]
    if clean:
        r = clean[0]
        lines.append(f"clean model: backdoor success {_ci(r['backdoor_success'], r['backdoor_success_ci'])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="An experiment config (configs/access-annotators.yaml).")
    parser.add_argument("--shares", type=float, nargs="+", default=DEFAULT_SHARES, help="Annotator shares.")
    parser.add_argument("--out", type=Path, default=Path("runs/access-annotators"), help="Parent of the studies.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="FIELD=VALUE, as poisonlab run.")
    parser.add_argument("--json", type=Path, help="Also write every row as JSON here.")
    args = parser.parse_args()
    rows = [row for share in args.shares for row in run_share(args.config, share, args.out, args.overrides)]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
