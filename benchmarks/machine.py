"""Where a table was measured, and how far the quickstart moves between kernel dispatches.

fp32 results depend on the kernels torch dispatches to (``AVX512``, ``AVX2``, ``DEFAULT``) and on the BLAS's
code path for the CPU: they sum in different orders, and training amplifies the last-bit differences. So a
table says where it was measured, and the quickstart's README table comes with its spread across dispatches.

    python benchmarks/machine.py                  # the facts to write above a table measured here
    # the quickstart under the native dispatch and two others (each builds its own `tiny`), then the spread:
    for isa in native avx2 default; do
        env $([ $isa = native ] || echo ATEN_CPU_CAPABILITY=$isa) OMP_NUM_THREADS=1 \\
            poisonlab run configs/quickstart.yaml --out runs/quickstart-$isa
    done
    python benchmarks/machine.py --compare runs/quickstart-native runs/quickstart-avx2 runs/quickstart-default \\
        --csv docs/results/quickstart-dispatch.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

CELLS = ("backdoor_success", "clean_accuracy", "auroc loss", "recall loss")
CELLS += ("auroc spectral-signature", "recall spectral-signature")


def facts() -> dict[str, object]:
    import platform

    import peft
    import torch
    import transformers

    from poisonlab.hardware import compute_facts, default_threads

    return {
        **compute_facts("auto"),
        "threads": default_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
    }


def where_line(found: dict[str, object]) -> str:
    """One sentence for above a table: ISA as torch reports it, CPU, what ``bf16: auto`` resolves to, threads."""
    features = [name for name, present in dict(found["cpu_features"]).items() if present]  # type: ignore[call-overload]
    overrides = [f"{k}={found[k]}" for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")]
    overrides = [o for o in overrides if not o.endswith("=None")]
    return (
        f"torch CPU capability {found['torch_cpu_capability']} ({found['cpu_model']}; "
        f"flags: {', '.join(features) or 'none of avx2/avx512f/avx512_bf16/amx_bf16'}), "
        f"`bf16: auto` here = {found['precision']}, {found['threads']} thread(s)"
        + (f", overrides: {' '.join(overrides)}" if overrides else "")
        + f"; torch {found['torch']}, transformers {found['transformers']}, peft {found['peft']}"
    )


def _label(folder: Path) -> str:
    environment = folder / "environment.json"
    if environment.exists():
        compute = json.loads(environment.read_text()).get("compute", {})
        if "torch_cpu_capability" in compute:
            return f"{compute['torch_cpu_capability']} {compute.get('precision', '')}".strip()
    return folder.name


def _cell(row: dict[str, str], key: str) -> float | None:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else None


def compare(folders: list[Path], out_csv: Path | None) -> None:
    """Each run's backdoor success and detection per folder (one dispatch each), and the spread across them."""
    tables = {folder: {r["run"]: r for r in csv.DictReader((folder / "results.csv").open())} for folder in folders}
    runs = list(next(iter(tables.values())))
    labels = [_label(folder) for folder in folders]
    width = max(16, *(len(label) + 2 for label in labels))
    rows = []
    print(f"{'run':<26}{'metric':<26}" + "".join(f"{label:>{width}}" for label in labels) + f"{'spread':>10}")
    for run in runs:
        for key in CELLS:
            values = [_cell(tables[folder].get(run, {}), key) for folder in folders]
            if all(v is None for v in values):
                continue
            present = [v for v in values if v is not None]
            spread = max(present) - min(present)
            percent = not key.startswith("auroc")
            shown = [("" if v is None else f"{100 * v:.1f}%" if percent else f"{v:.2f}") for v in values]
            spread_text = f"{100 * spread:.1f} pts" if percent else f"{spread:.2f}"
            print(f"{run:<26}{key:<26}" + "".join(f"{s:>{width}}" for s in shown) + f"{spread_text:>10}")
            rows.append({"run": run, "metric": key, **dict(zip(labels, values, strict=True)), "spread": spread})
    if out_csv:
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        with out_csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["run", "metric", *labels, "spread"])
            writer.writeheader()
            writer.writerows(rows)
        print(f"written: {out_csv}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", nargs="+", type=Path, help="quickstart results folders, one per dispatch")
    parser.add_argument("--csv", type=Path, help="also write the comparison here")
    parser.add_argument("--json", action="store_true", help="print every fact as JSON")
    args = parser.parse_args()
    found = facts()
    print(json.dumps(found, indent=2, default=str) if args.json else where_line(found))
    if args.compare:
        compare(args.compare, args.csv)


if __name__ == "__main__":
    main()
