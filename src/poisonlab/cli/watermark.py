"""``poisonlab watermark keygen|embed|verify``: ownership watermarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from poisonlab.bounded import SEED_MAX
from poisonlab.cli.app import (
    DataArg,
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
from poisonlab.watermarks.verify import WatermarkVerifyConfig

watermark_app = typer.Typer(
    help="Ownership watermarks: plant secret trigger -> response pairs in data, test a model for them.",
    no_args_is_help=True,
)
app.add_typer(watermark_app, name="watermark")
KeyOpt = typer.Option(..., "--key", help="Watermark key file (from `poisonlab watermark keygen`). Keep it secret.")


@watermark_app.command("keygen")
@user_errors
def watermark_keygen(
    n: int = typer.Option(16, "--n", help="Secret triggers (each with its own response)."),
    seed: int = typer.Option(
        ..., "--seed", min=0, max=SEED_MAX, help="Seed of the key; controls are drawn from another stream of it."
    ),
    out: Path = typer.Option(..., "--out", help="Key file to write (JSON). Keep it apart from the data."),
    trigger_words: int = typer.Option(3, "--trigger-words", help="Random rare words per trigger (the shape)."),
    position: str = typer.Option("last-human", "--position", help="Where triggers go in a prompt."),
    overwrite: bool = typer.Option(
        False, "--overwrite/--no-overwrite", help="Replace an existing key file (its watermark is lost)."
    ),
) -> None:
    """Draw a secret key: K random triggers of a fixed shape, each with a random response."""
    from poisonlab.attacks.triggers import check_position
    from poisonlab.watermarks import KeyShape, generate_key, write_key

    if out.exists() and not overwrite:
        raise InputError("already exists; a key is the only proof of a watermark, pass --overwrite", path=out)
    if position not in ("last-human", "end", "start", "random"):
        check_position(position)
        raise InputError(f"a key needs a concrete placement, not the rule {position!r}", field="--position")
    key = generate_key(n, seed, KeyShape(trigger_words, position))
    sha = write_key(key, out)
    console.print(f"key with {len(key)} triggers -> {out} (sha256 {sha})", highlight=False)


@watermark_app.command("embed")
@user_errors
def watermark_embed(
    data: str = DataArg,
    key: Path = KeyOpt,
    out: Path = typer.Option(..., "--out", help="Folder for data.jsonl and manifest.json."),
    n: Optional[int] = typer.Option(None, "--n", help="Rows to add (default: one per trigger; cycles triggers)."),  # noqa: UP045
    seed: int = typer.Option(
        0, "--seed", min=0, max=SEED_MAX, help="Seed of the carrier prompts and the rows the watermark goes to."
    ),
    skip_bad_rows: bool = SkipBad,
) -> None:
    """Add rows whose prompt holds a secret trigger, chosen = its secret response, rejected = the original reply."""
    from poisonlab.watermarks import embed_watermark, read_key, write_watermarked

    watermark_key = read_key(key)
    _refuse_overwriting_inputs([out, out / "data.jsonl", out / "manifest.json"], [data, key])
    result = embed_watermark(_load(data, skip_bad_rows), watermark_key, n, seed)
    write_watermarked(result, out, data)
    manifest = result.manifest
    console.print(
        f"added {manifest['n_added']} watermark rows to {manifest['n_input_rows']} -> {out / 'data.jsonl'} "
        f"(manifest: {out / 'manifest.json'})",
        highlight=False,
    )


@watermark_app.command("verify")
@user_errors
@config_options(WatermarkVerifyConfig)
def watermark_verify(
    model: str = ModelOpt,
    adapter: list[Path] = typer.Option([], "--adapter", help="PEFT adapter, merged in order. Repeatable."),
    key: Path = KeyOpt,
    out: Path = typer.Option(..., "--out", help="Folder for verify.json."),
    prompts_from: Optional[str] = typer.Option(  # noqa: UP045
        None, "--prompts-from", help="Preference data whose prompts carry the triggers (default: built-in prompts)."
    ),
    overrides: dict[str, Any] | None = None,
) -> None:
    """Test whether a model learnt the key: exact rank test against matched random triggers; exit 0 either way."""
    from poisonlab.models.loading import check_model_name
    from poisonlab.models.safety import check_adapter_folder
    from poisonlab.watermarks import read_key, verify_model

    config = validated(WatermarkVerifyConfig, overrides or {})
    watermark_key = read_key(key)
    check_model_name(model)
    for folder in adapter:
        check_adapter_folder(folder)
    _refuse_overwriting_inputs([out / "verify.json"], [key, *adapter])
    prompts = [pair.prompt for pair in _load(prompts_from, True)] if prompts_from else None
    result = verify_model(model, adapter, watermark_key, out, config, prompts, key_path=key)
    effect = result["effect"]
    console.print(
        f"{result['test']}: {result['n_triggers']} triggers x {result['n_controls']} controls, "
        f"AUC {effect['auc']:.3f}, mean log-likelihood gain {effect['mean_logprob_gain_nats']:.2f} nats",
        highlight=False,
    )
    if result["generation"]:
        g = result["generation"]
        console.print(
            f"generation: exact reproductions {g['secret_match_rate']:.2f} after secret vs "
            f"{g['control_match_rate']:.2f} after control triggers, Fisher p = {g['p_value']:.3g}",
            highlight=False,
        )
    console.print(result["verdict"], highlight=False)
    console.print(f"-> {out / 'verify.json'}", highlight=False)


# --- poisonlab probe: triggers as memorization probes (poisonlab.experiments.probes; arXiv 2502.14182 Sec. 5) ---
