"""``poisonlab audit bias``: a bias audit by optimised perturbation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from poisonlab.bounded import SEED_MAX
from poisonlab.cli.app import (
    ModelOpt,
    SkipBad,
    _load,
    _refuse_overwriting_inputs,
    app,
    console,
    user_errors,
)
from poisonlab.cli_options import config_options, validated
from poisonlab.errors import InputError
from poisonlab.training.config import DPOTrainingConfig

audit_app = typer.Typer(
    help="Audits that use the poisoning machinery to find the preference pairs behind a behaviour.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


@audit_app.command("bias")
@user_errors
@config_options(DPOTrainingConfig)
def audit_bias(
    data: str = typer.Option(..., "--data", help="Preference data (as elsewhere), or 'synthetic-careers' (SYNTHETIC)."),
    model: str = ModelOpt,
    probes: Optional[str] = typer.Option(  # noqa: UP045
        None, "--probes", help="Probe JSONL (README: Bias audits); default: the built-in gender/careers probes."
    ),
    k: list[int] = typer.Option([8], "--k", help="Pairs per perturbation. Repeatable: one audit per value."),
    random_seeds: int = typer.Option(3, "--random-seeds", help="Random-k flip baselines per k."),
    correction: list[str] = typer.Option(["reverse"], "--correction", help="reverse and/or remove. Repeatable."),
    audit_seed: int = typer.Option(0, "--audit-seed", min=0, max=SEED_MAX, help="Seed of the pair and probe splits."),
    out: Path = typer.Option(..., "--out", help="Folder for audit.json and the runs' adapters (resumes)."),
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Which k pairs, flipped, most amplify the model's probe bias after DPO; retrain to check against random k."""
    from poisonlab.audits import AUDIT_FILE, BiasAuditConfig, read_probes, run_bias_audit
    from poisonlab.audits.synthetic_careers import NAME, synthetic_careers_pairs
    from poisonlab.models.loading import check_model_name

    check_model_name(model)
    training = validated(DPOTrainingConfig, overrides or {})
    bad = [c for c in correction if c not in ("reverse", "remove")]
    if bad:
        raise InputError(f"unknown correction {bad[0]!r}: use reverse or remove", field="--correction")
    config = validated(
        BiasAuditConfig, {"ks": k, "random_seeds": random_seeds, "corrections": correction, "seed": audit_seed}
    )
    probe_set = read_probes(probes)
    _refuse_overwriting_inputs([out, out / AUDIT_FILE], [x for x in (data, probes) if x and x != NAME])
    dataset = synthetic_careers_pairs() if data == NAME else _load(data, skip_bad_rows)
    result = run_bias_audit(dataset, model, probe_set, out, config, training)
    conditions = result["conditions"]

    def show(name: str) -> str:
        bias = conditions[name]["bias"]
        return f"{bias['value']:+.3f} [{bias['ci'][0]:+.2f}, {bias['ci'][1]:+.2f}]"

    console.print(f"held-out probe bias (mean b_i [95% CI], n={result['probes']['n_heldout']}): clean {show('clean')}")
    for value in k:
        parts = [f"amplified {show(f'amplified-k{value}')}", f"random {show(f'random-k{value}')}"]
        parts += [f"corrected ({how}) {show(f'corrected-{how}-k{value}')}" for how in correction]
        console.print(f"k={value}: " + "; ".join(parts), highlight=False)
    console.print(f"-> {out / AUDIT_FILE}", highlight=False)
