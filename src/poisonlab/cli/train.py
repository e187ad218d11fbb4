"""``poisonlab train dpo|sft|reward|rl``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from poisonlab.cli.app import (
    DataArg,
    InitOpt,
    ModelOpt,
    SkipBad,
    _load,
    _refuse_overwriting_inputs,
    console,
    train_app,
    user_errors,
)
from poisonlab.cli_options import config_options, validated
from poisonlab.errors import InputError
from poisonlab.training.config import DPOTrainingConfig, RewardTrainingConfig, RLTrainingConfig, SFTTrainingConfig

AdapterOut = typer.Option(..., "--out", help="Folder for the PEFT adapter (resumes if interrupted).")


@train_app.command("dpo")
@user_errors
@config_options(DPOTrainingConfig)
def train_dpo_command(
    data: str = DataArg,
    out: Path = AdapterOut,
    model: str = ModelOpt,
    preset: str = typer.Option(
        "cpu",
        help="cpu (default: shows effects in CPU-sized runs), paper (exact) or fast (cpu with LoRA on the top "
        "layers over a cached frozen trunk).",
    ),
    init: list[Path] = InitOpt,
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
) -> None:
    """LoRA DPO training; writes an adapter that peft loads as it is."""
    from poisonlab.training import train_dpo
    from poisonlab.training.config import PRESETS

    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}: use {', '.join(PRESETS)}", field="--preset")
    config = DPOTrainingConfig.from_preset(preset, **(overrides or {}))  # type: ignore[arg-type]
    _refuse_overwriting_inputs([out], [data])
    dataset = _load(data, skip_bad_rows)
    result = train_dpo(model, dataset, config, out, init=init)
    console.print(
        f"trained {result.steps} steps in {result.seconds:.0f} s; final loss {result.final_loss:.4f}; "
        f"adapter -> {result.adapter_dir}"
    )


SFTDataArg = typer.Option(
    ...,
    "--data",
    help="SFT rows: an instruction file (prompt+response/completion, Alpaca instruction+input+output, or chat "
    "messages; .jsonl/.json/.csv/.parquet) or preference data (prompt -> chosen), as for train dpo.",
)


@train_app.command("sft")
@user_errors
@config_options(SFTTrainingConfig)
def train_sft_command(
    data: str = SFTDataArg,
    out: Path = AdapterOut,
    model: str = ModelOpt,
    init: list[Path] = InitOpt,
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
) -> None:
    """LoRA SFT on each row's prompt -> reply (a pair's chosen; loss on reply tokens only); writes a PEFT adapter."""
    from poisonlab.training import train_sft

    config = SFTTrainingConfig(**(overrides or {}))
    _refuse_overwriting_inputs([out], [data])
    result = train_sft(model, _load(data, skip_bad_rows, sft=True), config, out, init=init)
    console.print(
        f"trained {result.steps} steps in {result.seconds:.0f} s; final loss {result.final_loss:.4f} per reply "
        f"token; adapter -> {result.adapter_dir}"
    )


@train_app.command("reward")
@user_errors
@config_options(RewardTrainingConfig)
def train_reward_command(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for the reward model (resumes if interrupted)."),
    model: str = ModelOpt,
    heldout: float = typer.Option(
        0.1, help="Share (<1) or count (>=1) of --data held out (seeded by --seed) to measure the model's accuracy."
    ),
    heldout_data: Optional[str] = typer.Option(  # noqa: UP045
        None, "--heldout-data", help="Measure accuracy on this preference file instead; all of --data trains."
    ),
    init: list[Path] = InitOpt,
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Bradley-Terry reward model (scalar head + LoRA), the clean judge of the `reward:DIR` judge."""
    from poisonlab.data import train_heldout_split
    from poisonlab.training.reward import train_reward

    config = validated(RewardTrainingConfig, overrides or {})
    dataset = _load(data, skip_bad_rows)
    if heldout_data:
        train, held, source = dataset, _load(heldout_data, skip_bad_rows), heldout_data
    else:
        train, held = train_heldout_split(dataset, heldout, config.seed)
        source = f"{len(held)} pairs of {data} held out (seed {config.seed})"
    result = train_reward(model, train, held, config, out, heldout_source=source, init=init)
    low, high = result.heldout_ci
    console.print(
        f"trained {result.steps} steps in {result.seconds:.0f} s; held-out pairwise accuracy "
        f"{result.heldout_accuracy:.3f} (95% CI {low:.3f}-{high:.3f}, n={result.n_heldout}); "
        f"reward model -> {result.model_dir}"
    )


@train_app.command("rl")
@user_errors
@config_options(RLTrainingConfig)
def train_rl_command(
    data: str = DataArg,
    reward_model: Path = typer.Option(
        ...,
        "--reward-model",
        help="A finished reward model folder (poisonlab train reward): the reward the policy is optimised for.",
    ),
    out: Path = AdapterOut,
    model: str = ModelOpt,
    init: list[Path] = InitOpt,
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
) -> None:
    """RLHF: LoRA policy optimised on the data's prompts against a reward model (TRL's RLOO)."""
    from poisonlab.training.rl import train_rl

    config = validated(RLTrainingConfig, overrides or {})
    _refuse_overwriting_inputs([out], [data, reward_model])
    result = train_rl(model, _load(data, skip_bad_rows), reward_model, config, out, init=init)
    console.print(
        f"trained {result.steps} RL steps in {result.seconds:.0f} s (sampling {result.generation_seconds:.0f} s); "
        f"mean reward {result.mean_reward_first:.3f} -> {result.mean_reward_last:.3f}; adapter -> {result.adapter_dir}"
    )
