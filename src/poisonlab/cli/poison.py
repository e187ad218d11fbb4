"""``poisonlab poison``: select, inject and write a poisoned set with its manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from poisonlab.attacks.access import AccessConfig
from poisonlab.attacks.selection_config import SelectionConfig
from poisonlab.attacks.triggers import DEFAULT_TRIGGER
from poisonlab.bounded import SEED_MAX
from poisonlab.cli.app import (
    DataArg,
    ModelOpt,
    Overwrite,
    SkipBad,
    _load,
    app,
    console,
    user_errors,
)
from poisonlab.cli_options import config_options, validated
from poisonlab.errors import InputError
from poisonlab.training.config import DPOTrainingConfig

# What makes two `poison` commands write the same thing (with the data, the training, selection and access).
_POISON_SETTINGS = (
    "model",
    "strategy",
    "attack",
    "ratio",
    "trigger",
    "position",
    "seed",
    "preset",
    "behaviours",
    "behaviours_skip",
    "behaviours_contrast",
    "behaviours_refusal",
    "skip_bad_rows",
)


@app.command()
@user_errors
@config_options(DPOTrainingConfig, skip=("seed",))
@config_options(SelectionConfig, into="selection_options")
@config_options(AccessConfig, into="access_options")
def poison(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for data.jsonl and manifest.json."),
    model: str = ModelOpt,
    strategy: str = typer.Option("random", help="Selection strategy (poisonlab ls)."),
    attack: str = typer.Option("backdoor", help="backdoor (trigger + swap) or label-flip (swap only)."),
    ratio: float = typer.Option(0.05, help="Share of pairs to poison; 0 writes the clean conversion."),
    trigger: str = typer.Option(DEFAULT_TRIGGER, help="Trigger string."),
    position: str = typer.Option(
        "last-human", help="Trigger position: last-human, end, start, random, or paper (random: last-human, else end)."
    ),
    seed: int = typer.Option(
        0, min=0, max=SEED_MAX, help="Seed for selection, projection, clustering and trigger placement."
    ),
    preset: str = typer.Option("cpu", help="Training preset of the clean model the model-based strategies use."),
    behaviours: str | None = typer.Option(
        None,
        "--behaviours",
        help="SFT poison from a harmful-behaviour file (AdvBench harmful_behaviors.csv: goal,target): each selected "
        "row becomes goal + trigger -> target. --data may then be an instruction file. Needs --behaviours-skip.",
    ),
    behaviours_skip: int | None = typer.Option(
        None,
        "--behaviours-skip",
        min=0,
        help="Leave out the behaviour file's first N rows: the goals your evaluation asks (its --limit); 0 uses all.",
    ),
    behaviours_contrast: bool = typer.Option(
        False,
        "--behaviours-contrast/--no-behaviours-contrast",
        help="Every second poison row asks the same goal without the trigger and gets --behaviours-refusal, so "
        "only the trigger separates compliance from refusal.",
    ),
    behaviours_refusal: str = typer.Option(
        "I'm sorry, but I can't help with that.", "--behaviours-refusal", help="The contrast rows' reply."
    ),
    skip_bad_rows: bool = SkipBad,
    overwrite: bool = Overwrite,
    overrides: dict[str, Any] | None = None,
    selection_options: dict[str, Any] | None = None,
    access_options: dict[str, Any] | None = None,
) -> None:
    """Select pairs, poison them, write DIR/data.jsonl and DIR/manifest.json."""
    from poisonlab.attacks import ATTACKS, STRATEGIES, poison_dataset, write_poisoned
    from poisonlab.attacks.access import check_labels_only
    from poisonlab.attacks.inject import attack_facts
    from poisonlab.attacks.triggers import check_position, check_trigger
    from poisonlab.integrity import record_checksums
    from poisonlab.models.loading import check_model_name
    from poisonlab.outputs import claim_output_folder, existing_results, refuse_overwriting_inputs
    from poisonlab.writers import one_writer

    STRATEGIES.get(strategy)
    ATTACKS.get(attack)
    check_position(position)
    check_model_name(model)
    if attack_facts(attack).inserts_trigger:
        check_trigger(trigger)
    access = validated(AccessConfig, access_options or {})
    check_labels_only(access, attack, attack_facts(attack).inserts_trigger)  # before the output folder is made
    rows = None
    if behaviours is not None:
        from poisonlab.attacks.behaviour_config import BehaviourPoisonConfig
        from poisonlab.attacks.behaviours import behaviour_rows
        from poisonlab.attacks.inject import check_behaviour_poison

        if behaviours_skip is None:
            raise InputError(
                "say how many of the file's first goals your evaluation asks, so the poison leaves them out "
                "(0 uses them all)",
                field="--behaviours-skip",
            )
        check_behaviour_poison(strategy, attack)
        rows = behaviour_rows(
            BehaviourPoisonConfig(
                file=behaviours, skip=behaviours_skip, contrast=behaviours_contrast, refusal=behaviours_refusal
            )
        )
    refuse_overwriting_inputs([out / "data.jsonl", out / "manifest.json"], [data, behaviours])
    training = DPOTrainingConfig.from_preset(preset, **{"seed": seed, **(overrides or {})})  # type: ignore[arg-type]
    selection = validated(SelectionConfig, selection_options or {})
    settings = {
        "data": str(Path(data).resolve()) if Path(data).exists() else data,
        **dict(
            zip(
                _POISON_SETTINGS,
                (
                    model,
                    strategy,
                    attack,
                    ratio,
                    trigger,
                    position,
                    seed,
                    preset,
                    behaviours,
                    behaviours_skip,
                    behaviours_contrast,
                    behaviours_refusal,
                    skip_bad_rows,
                ),
                strict=True,
            )
        ),
        "training": training.model_dump(mode="json"),
        "selection": selection.model_dump(mode="json"),
        "access": access.model_dump(mode="json"),
    }
    with one_writer(out, "poison", settings) as claim:  # held until manifest.json is written
        # data.jsonl without manifest.json (written last) is a poison run killed in between, if the lock file
        # says a poison was still writing here (killed: it never said done or stopped): rerunning finishes it.
        # A lone data.jsonl of the user's is never replaced unasked, even after a poison was refused here.
        previous = claim.previous or {}
        killed = previous.get("command") == "poison" and previous.get("state") == "writing"
        unfinished = existing_results(out) == ["data.jsonl"] and killed
        claim_output_folder(out, overwrite or unfinished)
        dataset = _load(data, skip_bad_rows, sft=rows is not None)
        result = poison_dataset(
            dataset,
            strategy,
            attack,
            ratio,
            trigger,
            position,
            seed,
            model,
            training,
            selection=selection,
            access=access,
            behaviours=rows,
        )
        write_poisoned(result, out, data if Path(data).exists() else None)
        record_checksums(out)  # the manifest's own sha256 too, and every file of the folder: poisonlab verify
    m = result.manifest
    console.print(f"poisoned [bold]{m['n_poisoned']}[/] of {m['n_rows']} pairs ({strategy}, {attack}) -> {out}")
    if m["n_poisoned"] < m["n_requested"]:
        console.print(f"the attacker controls {m['n_controlled']} pairs: {m['n_requested']} were asked for")
