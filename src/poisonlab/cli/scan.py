"""``poisonlab scan``: vet a preference set as a defender would."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from poisonlab.bounded import SEED_MAX
from poisonlab.cli.app import (
    DataArg,
    ModelOpt,
    SkipBad,
    _adapter_settings,
    _load,
    _refuse_overwriting_inputs,
    app,
    console,
    user_errors,
)
from poisonlab.cli_options import config_options, validated
from poisonlab.defenses.config import DefenseConfig
from poisonlab.errors import InputError
from poisonlab.training.config import DPOTrainingConfig


@app.command()
@user_errors
@config_options(DefenseConfig)
def scan(
    data: str = DataArg,
    out: Path = typer.Option(
        ...,
        "--out",
        help="Folder for scores.csv (scores only), kept-DETECTOR.jsonl, scan.json and, judged against a "
        "manifest, detection.json.",
    ),
    detector: Optional[list[str]] = typer.Option(  # noqa: UP045
        None,
        "--detector",
        help="Detector, optionally with its features: spectral-signature:reply-embeddings. Repeatable. Default: "
        "trigger-mining-reply (with --sft: trigger-mining-demo), which flagged no clean pair of the synthetic set "
        "or HH-RLHF (README, Defenses).",
        show_default=False,
    ),
    manifest: Optional[Path] = typer.Option(  # noqa: UP045
        None, help="The poison manifest, to judge the detectors (default: manifest.json beside --data)."
    ),
    model: str = ModelOpt,
    adapter: Optional[Path] = typer.Option(  # noqa: UP045
        None,
        help="LoRA DPO adapter to score with, normally trained on --data (a run's adapter/), used as it is. "
        "Without one, one is trained on --data (cpu preset) and cached.",
    ),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Seed of the projection, the clustering and any training."),
    sft: bool = typer.Option(
        False,
        "--sft/--no-sft",
        help="The data is SFT data (instruction rows, or preference rows read as prompt -> chosen): vet its "
        "demonstrations with trigger-mining-demo (or spectral-signature/clustering:prompt-embeddings).",
    ),
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Vet preference (or, with --sft, SFT) data: score every row for suspicion with each detector, and keep what
    it does not flag."""
    from poisonlab.data.poison_manifest import OLD_IDS_NOTE, manifest_version, read_poison_manifest
    from poisonlab.defenses import scan as scan_data
    from poisonlab.defenses import write_scan
    from poisonlab.defenses.scan import DETECTION_FILE, check_reads_demonstrations, kept_file_name, parse_spec
    from poisonlab.reports import scan_table

    detector = detector or ["trigger-mining-demo" if sft else "trigger-mining-reply"]
    specs = [(spec, *parse_spec(spec)) for spec in detector]
    if sft:
        check_reads_demonstrations(specs)
    written = [out / n for n in ("scores.csv", "scan.json", DETECTION_FILE)] + [
        out / kept_file_name(s) for s in detector
    ]
    _refuse_overwriting_inputs(written, [data, manifest])
    config = validated(DefenseConfig, overrides or {})
    training = DPOTrainingConfig(seed=seed)
    if adapter is not None:
        saved_model, saved_training = _adapter_settings(adapter)
        if saved_model is not None and saved_model != model:
            raise InputError(f"the adapter was trained on {saved_model!r}; pass --model {saved_model}", field="--model")
        training = saved_training or training
    beside = Path(data).parent / "manifest.json"
    manifest = manifest or (beside if Path(data).is_file() and beside.exists() else None)
    poisoned = None
    if manifest:
        values = read_poison_manifest(manifest, data)
        poisoned = list(values["poisoned_ids"])
        if manifest_version(values) < 2:
            console.print(f"[yellow]note:[/] {manifest} was {OLD_IDS_NOTE}", highlight=False)
    dataset = _load(data, skip_bad_rows, sft=sft)
    result = scan_data(dataset, detector, model, training, config, seed, adapter, poisoned, sft=sft)
    write_scan(result, out, manifest=manifest)
    budget = config.budget(len(dataset))
    if budget is not None:
        console.print(scan_table(result, budget))
    elif result.metrics:
        from poisonlab.reports.vetting import judged_table

        console.print(judged_table(result))
    if result.metrics:
        console.print("AUROC: how well the scores rank poison above clean pairs (0.5 = chance).")
    from poisonlab.defenses.scan import vetting_report
    from poisonlab.reports.vetting import vetting_tables

    for table in vetting_tables(vetting_report(result), {p.id: p.prompt for p in dataset}):
        console.print(table)
    console.print(
        f"ranked list: {out / 'suspicious.csv'}; the data without any flagged pair: {out / 'filtered.jsonl'} "
        f"(what was removed and why: {out / 'removed.json'}); scores: {out / 'scores.csv'}"
        + (f"; judged against the manifest: {out / DETECTION_FILE}" if result.metrics else "")
    )
