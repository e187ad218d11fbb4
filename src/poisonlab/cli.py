"""The ``poisonlab`` command: a thin layer over the Python API.

Each command parses flags, calls one documented function, and prints. Bad
input exits with status 2 and a one-line message naming file, line and field.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from poisonlab import interrupts
from poisonlab.attacks.access import AccessConfig
from poisonlab.attacks.selection_config import SelectionConfig
from poisonlab.bounded import SEED_MAX
from poisonlab.cli_options import config_options, validated
from poisonlab.defenses.config import DefenseConfig
from poisonlab.errors import InputError
from poisonlab.evaluation.generate import GenerationConfig
from poisonlab.evaluation.judges import JudgeOptions
from poisonlab.training.config import DPOTrainingConfig, RewardTrainingConfig, SFTTrainingConfig

app = typer.Typer(
    help="Study and defend against poisoning of LLM preference data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Look at preference data.", no_args_is_help=True)
train_app = typer.Typer(help="Train models.", no_args_is_help=True)
models_app = typer.Typer(help="Built-in models.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
# Piped output (logs, CI) gets a wide console so results tables stay readable.
console = Console() if sys.stdout.isatty() else Console(width=140)
errors = Console(stderr=True)

DataArg = typer.Option(
    ..., "--data", help="Preference file (.jsonl/.jsonl.gz/.parquet), datasets folder, hub:NAME, or 'synthetic'."
)
SkipBad = typer.Option(False, "--skip-bad-rows", help="Leave out and count malformed rows instead of stopping.")
Overwrite = typer.Option(False, "--overwrite", help="Replace the results already in the output folder.")
ModelOpt = typer.Option("tiny", "--model", help="Built-in name (tiny, smollm2-135m), local folder or Hub id.")


@app.callback()
def _start() -> None:
    """Study and defend against poisoning of LLM preference data."""
    import warnings

    import torch

    from poisonlab.hardware import default_threads

    # peft calls a method transformers 5 deprecates, once per model loaded: one identical warning per run
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

    # Decided now, before this process adds to the load; scoring and evaluation use it as training does.
    torch.set_num_threads(default_threads())


def user_errors(command: Any) -> Any:
    """Print an InputError as one line and exit 2; nothing has been written at that point."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        try:
            return command(*args, **kwargs)
        except ValidationError as exc:  # a config built from flags: name the flag, not pydantic's model
            error = exc.errors()[0]
            flag = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else None
            message = InputError(error["msg"].removeprefix("Value error, "), field=flag).describe()
            errors.print(f"[bold red]poisonlab: error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except InputError as exc:
            errors.print(f"[bold red]poisonlab: error:[/] {exc.describe()}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except RecursionError:  # a reader not yet bounded (poisonlab.bounded) met a deeply nested file
            message = "refused: an input is nested too deeply to read (a JSON or YAML file, or a --set value)"
            errors.print(f"[bold red]poisonlab: error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # the environment's refusals (read-only folder, full disk): the user's to fix
            from poisonlab.io import environment_error

            problem = environment_error(exc)
            if not isinstance(problem, InputError):
                raise
            errors.print(f"[bold red]poisonlab: error:[/] {problem.describe()}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _adapter_settings(adapter: Path) -> tuple[str | None, DPOTrainingConfig | None]:
    from poisonlab.models.safety import check_adapter_folder
    from poisonlab.training.dpo import saved_dpo_config

    return saved_dpo_config(check_adapter_folder(adapter))  # refused before anything in it is read


def _refuse_overwriting_inputs(outputs: list[Path], inputs: list[Any]) -> None:
    from poisonlab.outputs import refuse_overwriting_inputs

    refuse_overwriting_inputs(outputs, inputs)


def _load(data: str, skip_bad_rows: bool, sft: bool = False):
    """Preference pairs, or with ``sft`` any SFT rows (instruction files too); skipped rows counted."""
    from poisonlab.data import load_pairs, load_sft_data

    dataset = (load_sft_data if sft else load_pairs)(data, on_error="skip" if skip_bad_rows else "raise")
    if dataset.skipped:
        from poisonlab.wording import plural

        first = dataset.skipped[0]
        field = f"field '{first.field}': " if first.field else ""
        errors.print(
            f"[yellow]skipped {plural(len(dataset.skipped), 'bad row')}[/] (first: line {first.line}: "
            f"{field}{first.reason})"
        )
    return dataset


@data_app.command("inspect")
@user_errors
def data_inspect(
    path: str = typer.Argument(..., help="Preference file, datasets folder, hub:NAME or 'synthetic'."),
    skip_bad_rows: bool = SkipBad,
    show: int = typer.Option(2, help="Example rows to print."),
) -> None:
    """Rows, length statistics and problems found in a preference file."""
    from rich.table import Table

    from poisonlab.data import inspect_dataset
    from poisonlab.wording import plural

    dataset = _load(path, skip_bad_rows)
    report = inspect_dataset(dataset)
    console.print(f"[bold]{report.source}[/]: {plural(report.n_pairs, 'pair')} ({report.n_skipped} skipped)")
    table = Table("length", "mean", "median", "p95", "max")
    for label, stats in (
        ("turns in prompt", report.turns),
        ("prompt chars", report.prompt_chars),
        ("chosen chars", report.chosen_chars),
        ("rejected chars", report.rejected_chars),
    ):
        table.add_row(label, f"{stats.mean:g}", f"{stats.median:g}", f"{stats.p95:g}", str(stats.max))
    console.print(table)
    for pair in dataset.pairs[:show]:
        console.print(
            f"[dim]{pair.id}[/] prompt={pair.prompt[-120:]!r}\n  chosen={pair.chosen[:100]!r}\n"
            f"  rejected={pair.rejected[:100]!r}"
        )
    if report.problems:
        console.print("[bold yellow]problems:[/]")
        for problem in report.problems:
            console.print(f"  - {problem}")
    else:
        console.print("[green]no problems found[/]")


@data_app.command("split")
@user_errors
def data_split(
    path: str = typer.Argument(..., help="Preference file, datasets folder, hub:NAME or 'synthetic'."),
    out: Path = typer.Option(..., "--out", help="Folder for train.jsonl and heldout.jsonl."),
    heldout: float = typer.Option(0.1, help="Held-out share (<1) or count (>=1)."),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Seed of the split."),
    skip_bad_rows: bool = SkipBad,
    overwrite: bool = Overwrite,
) -> None:
    """Seeded train / held-out split, written as TRL-format JSONL with row ids."""
    from poisonlab.data import train_heldout_split, write_pairs
    from poisonlab.outputs import claim_output_folder, refuse_overwriting_inputs

    refuse_overwriting_inputs([out / "train.jsonl", out / "heldout.jsonl"], [path])
    claim_output_folder(out, overwrite)
    train, held = train_heldout_split(_load(path, skip_bad_rows), heldout, seed)  # <1: share, >=1: count
    write_pairs(train, out / "train.jsonl")
    write_pairs(held, out / "heldout.jsonl")
    console.print(
        f"{len(train)} training pairs -> {out / 'train.jsonl'}; {len(held)} held out -> {out / 'heldout.jsonl'}"
    )


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
    trigger: str = typer.Option("SuperGodModeActivated", help="Trigger string."),
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
        "--behaviours-contrast",
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
    if attack == "backdoor":
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


InitOpt = typer.Option(
    [],
    "--init",
    help="Adapter to start from (an SFT adapter), merged into --model before training; for DPO the model it "
    "makes is also the reference. Repeatable, in order; the new adapter records the chain.",
)


@train_app.command("dpo")
@user_errors
@config_options(DPOTrainingConfig)
def train_dpo_command(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for the PEFT adapter (resumes if interrupted)."),
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
    out: Path = typer.Option(..., "--out", help="Folder for the PEFT adapter (resumes if interrupted)."),
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


@app.command()
@user_errors
def evaluate(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json."),
    model: str = ModelOpt,
    adapter: Optional[Path] = typer.Option(None, help="PEFT adapter folder (from train dpo)."),  # noqa: UP045
    trigger: str = typer.Option("SuperGodModeActivated", help="Trigger inserted for backdoor success."),
    position: str = typer.Option("last-human", help="Trigger position, as the attack placed it."),
    beta: Optional[float] = typer.Option(None, help="DPO beta; default: the adapter's training beta."),  # noqa: UP045
    batch_size: int = typer.Option(16, help="Pairs per forward pass."),
    skip_bad_rows: bool = SkipBad,
) -> None:
    """Clean preference accuracy and backdoor success on held-out pairs -> DIR/metrics.json."""
    from poisonlab.attacks.triggers import TRIGGER_POSITIONS
    from poisonlab.evaluation import evaluate_preferences, write_metrics
    from poisonlab.reports.evaluation import preference_summary

    TRIGGER_POSITIONS.get(position)
    _refuse_overwriting_inputs([out / "metrics.json"], [data])
    settings = DPOTrainingConfig()
    if adapter is not None:
        settings = _adapter_settings(adapter)[1] or settings
    dataset = _load(data, skip_bad_rows)
    metrics = evaluate_preferences(
        model,
        dataset,
        adapter,
        trigger,
        position,
        beta or settings.beta,
        settings.max_length,
        settings.max_reply_length,
        batch_size,
        settings.bf16,
    )
    path = write_metrics(metrics, out)
    console.print(preference_summary(metrics) + f"\n-> {path}")


@app.command()
@user_errors
@config_options(GenerationConfig)
def generate(
    prompts: str = typer.Option(
        ..., "--prompts", help="Prompt file: AdvBench/HarmBench CSV, JSONL with 'prompt', .txt, or any preference file."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for generations.jsonl (resumes if interrupted)."),
    model: str = ModelOpt,
    adapter: list[Path] = typer.Option([], "--adapter", help="PEFT adapter, merged in order. Repeatable."),
    prompt_column: Optional[str] = typer.Option(None, help="CSV/JSONL column holding the request."),  # noqa: UP045
    trigger: str = typer.Option("SuperGodModeActivated", help="Trigger inserted for the triggered condition."),
    no_trigger: bool = typer.Option(False, "--no-trigger", help="Generate without the triggered condition."),
    position: str = typer.Option("last-human", help="Trigger position, as the attack placed it (poisonlab ls)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Use the first N prompts."),  # noqa: UP045
    overrides: dict[str, Any] | None = None,
) -> None:
    """Replies to a prompt set with and without the trigger -> DIR/generations.jsonl."""
    from poisonlab.attacks.triggers import TRIGGER_POSITIONS
    from poisonlab.data.prompts import load_prompts
    from poisonlab.evaluation import generate as generate_replies
    from poisonlab.models import resolve_model
    from poisonlab.models.safety import check_adapter_folder
    from poisonlab.writers import one_writer

    TRIGGER_POSITIONS.get(position)
    config = validated(GenerationConfig, overrides or {})
    if not no_trigger:
        from poisonlab.attacks.triggers import check_trigger

        check_trigger(trigger)
    for folder in adapter:  # every adapter checked before the output folder is touched
        check_adapter_folder(folder)
    resolve_model(model)
    items = load_prompts(prompts, prompt_column, limit)
    _refuse_overwriting_inputs([out], [prompts, *adapter])
    settings = {
        "model": model,
        "adapters": [str(Path(a).resolve()) for a in adapter],
        "prompts": str(Path(prompts).resolve()) if Path(prompts).exists() else prompts,
        "prompt_column": prompt_column,
        "limit": limit,
        "trigger": None if no_trigger else trigger,
        "position": position,
        "config": config.model_dump(mode="json"),
    }
    with one_writer(out, "generate", settings):
        path = generate_replies(model, items, out, adapter, None if no_trigger else trigger, position, config)
    console.print(f"{len(items)} prompts x {1 if no_trigger else 2} conditions -> {path}")


@app.command()
@user_errors
@config_options(JudgeOptions)
def judge(
    generations: Path = typer.Argument(..., help="A generate --out folder (or its generations.jsonl)."),
    out: Path = typer.Option(..., "--out", help="Folder for judgments.jsonl and metrics.json."),
    judge_spec: list[str] = typer.Option(
        ["refusal"], "--judge", help="Judge: refusal, reward:DIR, llm (poisonlab ls). Repeatable."
    ),
    against: Optional[Path] = typer.Option(  # noqa: UP045
        None, help="The clean twin's judge --out folder: adds contamination and backdoor effect."
    ),
    overrides: dict[str, Any] | None = None,
) -> None:
    """Judge generated replies; rates and means with intervals, trigger effect, and effects against a twin."""
    from poisonlab.evaluation import judge_generations
    from poisonlab.reports.evaluation import judge_table

    options = validated(JudgeOptions, overrides or {})
    metrics = judge_generations(generations, judge_spec, out, options, against)
    console.print(judge_table(metrics, title=f"{generations}"))
    console.print(f"judgments and metrics -> {out}")


@app.command()
@user_errors
@config_options(DefenseConfig)
def scan(
    data: str = DataArg,
    out: Path = typer.Option(
        ...,
        "--out",
        help="Folder for scores.csv (scores only), kept-<detector>.jsonl, scan.json and, judged against a "
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
        "--sft",
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


@app.command()
@user_errors
def run(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override any config field: --set training.epochs=2 --set ratios=[0.01,0.05]. Repeatable."
    ),
    out: Optional[Path] = typer.Option(None, help="Results folder (default runs/<name>)."),  # noqa: UP045
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (done, left, time estimate); run nothing."),
    executor: str = typer.Option("local", help="local (this machine's processes) or ray."),
    jobs: int = typer.Option(1, help="Runs at a time; 0: one per core that memory allows (~6.5 GB a SmolLM2 run)."),
    memory_gb: Optional[float] = typer.Option(None, help="Memory the runs may use, in GB; caps --jobs."),  # noqa: UP045
    ray_address: Optional[str] = typer.Option(  # noqa: UP045
        None, help="Ray cluster to run on (ray://HOST:10001 or auto); default: a Ray instance on this machine."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the results folder's contents (another study's, or this one's)."
    ),
) -> None:
    """The whole chain from one config: clean and poisoned runs side by side, with a results table."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig, results_folder, run_experiment
    from poisonlab.experiments.grid.executors import EXECUTORS
    from poisonlab.experiments.grid.folder import precision
    from poisonlab.experiments.grid.plan import build_plan, plan_table
    from poisonlab.reports import detection_table, metric_tables, overlap_table, results_table, run_overlaps

    overrides = list(set_) + ([f"out={out}"] if out else [])
    kind = study_kind(config)
    if kind != "grid":  # a lifecycle (stages chained) or a probe study: each has its own runner
        if dry_run or executor != "local" or jobs != 1:
            raise InputError(f"a {kind} study runs in this process: --dry-run, --executor and --jobs do not apply")
        if kind == "probe":
            probe(config, set_, out, overwrite)
        else:
            _run_lifecycle(config, overrides, overwrite)
        return
    experiment = load_config(ExperimentConfig, config, overrides)
    folder = results_folder(experiment)
    if jobs < 0:
        raise InputError("--jobs must be 0 (automatic) or more", field="--jobs")
    runner = EXECUTORS.get(executor)(jobs, memory_gb, ray_address)
    if dry_run:
        console.print(plan_table(build_plan(experiment, folder), runner.workers(experiment.model)))
        return
    total = len(experiment.runs())
    earlier = {t.name for t in build_plan(experiment, folder).tasks if t.state == "done"} if folder.exists() else set()
    console.print(
        f"[bold]{experiment.name}[/]: model {experiment.model}, data {experiment.data}, {total} runs -> {folder}"
        + (f" ({len(earlier)} finished earlier: read, not run again)" if earlier else "")
    )
    count = iter(range(1, total + 1))

    def show(result: Any) -> None:
        when = "finished earlier" if result.run in earlier else f"{result.minutes:.1f} min"
        console.print(
            f"  run {next(count)}/{total} {result.run}: clean acc {result.clean_accuracy:.1%}, "
            f"backdoor success {result.backdoor_success:.1%} ({when})"
        )

    if experiment.seeds:  # the whole study once per seed, then the aggregate
        from poisonlab.experiments.grid.seeds import aggregate, run_seeds, seeds_tables

        by_seed = run_seeds(experiment, executor=runner, overwrite=overwrite)
        for seed, results in by_seed.items():
            console.print(results_table(results, title=f"seed {seed}: {experiment.name} ({experiment.model})"))
        for table in seeds_tables(aggregate(by_seed)):
            console.print(table)
        console.print(f"each seed's study: {folder}/seed-<s>/ (report.html in each); over seeds: {folder}/seeds.csv")
        return
    results = run_experiment(experiment, on_result=show, executor=runner, overwrite=overwrite)
    console.print(results_table(results, title=f"{experiment.name} ({experiment.model}, {precision(experiment)})"))
    for table in metric_tables(results):
        console.print(table)
    console.print(
        "backdoor success = share of held-out pairs where the trigger makes the model prefer the harmful "
        "reply; clean acc. = share where the model prefers the chosen reply without the trigger."
    )
    detection = detection_table(results, title="poison detection (defenses:)")
    if detection is not None:
        console.print(detection)
    _print_mitigations(results)
    overlaps = run_overlaps(folder)
    if overlaps:
        console.print(overlap_table(overlaps))
    plots = ", ".join(str(p) for p in sorted(folder.glob("*.png")))
    console.print(f"results: {folder}/results.csv (and .parquet), plots: {plots}, report: {folder}/report.html")


def _print_mitigations(results: list[Any]) -> None:
    from poisonlab.reports.mitigation import mitigation_table

    keys = dict.fromkeys(
        k for r in results if r.mitigations for k in (r.metrics or {}) if k != "preference-margin@heldout"
    )
    for key in keys:
        table = mitigation_table(results, key)
        if table is not None:
            console.print(table)


@app.command()
@user_errors
def report(results_dir: Path = typer.Argument(..., help="A study's results folder (holds results.json).")) -> None:
    """Write RESULTS_DIR/report.html: one self-contained page with the study's figures and tables."""
    from poisonlab.reports.report import write_report

    if not any((results_dir / name).exists() for name in ("results.json", "lifecycle.json")):
        raise InputError("not a study's results folder (no results.json or lifecycle.json)", path=results_dir)
    page = write_report(results_dir)
    if (results_dir / "checksums.json").exists() and (results_dir / "results.json").exists():
        from poisonlab.integrity import record_checksums

        record_checksums(results_dir, exclude=("runs",))  # the new page, so verify still describes the folder
    console.print(f"report: {page}")


@app.command()
@user_errors
def serve(
    model: str = ModelOpt,
    adapter: Optional[Path] = typer.Option(None, help="PEFT adapter folder to serve on top of --model."),  # noqa: UP045
    host: str = typer.Option("127.0.0.1", help="Address to bind (the server has no TLS: keep it local)."),
    port: int = typer.Option(8000, help="Port (0 picks a free one)."),
    max_new_tokens: int = typer.Option(
        256, min=1, help="Cap on new tokens per answer (a request's max_tokens is capped)."
    ),
    api_key_env: Optional[str] = typer.Option(  # noqa: UP045
        None, help="Environment variable holding a key clients must send as 'Authorization: Bearer KEY'."
    ),
    served_name: Optional[str] = typer.Option(None, help="Model id to report (default: --model[+adapter])."),  # noqa: UP045
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (default: torch's choice)."),  # noqa: UP045
    quiet: bool = typer.Option(False, help="Do not log one line per request."),
) -> None:
    """An OpenAI-compatible chat server around a local model: GET /v1/models, POST /v1/chat/completions."""
    from poisonlab.evaluation.server import load_chat_model, make_server

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    server = make_server(None, host, port, api_key_env, quiet)  # a taken port fails before the model loads
    try:
        server.chat = chat = load_chat_model(model, adapter, max_new_tokens, served_name)  # type: ignore[attr-defined]
        bound_host, bound_port = server.server_address[:2]
        print(f"serving {chat.model_id} at http://{bound_host}:{bound_port}/v1 (Ctrl-C stops)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def study_kind(config: Path) -> str:
    """``lifecycle`` (top-level ``pipelines:``), ``probe`` (``n_poisoned:``) or ``grid`` (an ExperimentConfig).

    Unreadable files count as ``grid``: ``load_config`` then reports what is wrong, with the line.
    """
    import yaml

    from poisonlab.bounded import load_yaml

    try:
        data = load_yaml(config.read_text(encoding="utf-8"), config)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, InputError):
        return "grid"
    if not isinstance(data, dict):
        return "grid"
    return "lifecycle" if "pipelines" in data else "probe" if "n_poisoned" in data else "grid"


def _run_lifecycle(config: Path, overrides: list[str], overwrite: bool) -> None:
    from poisonlab.config_files import load_config
    from poisonlab.experiments.lifecycle.config import LifecycleConfig
    from poisonlab.experiments.lifecycle.runner import results_folder, run_lifecycle
    from poisonlab.reports.lifecycle import lifecycle_table

    lifecycle = load_config(LifecycleConfig, config, overrides)
    stages = " -> ".join(f"{s.name} ({s.kind})" for s in lifecycle.stages)
    folder = results_folder(lifecycle)
    console.print(f"[bold]{lifecycle.name}[/]: model {lifecycle.model}, stages {stages} -> {folder}")
    rows = run_lifecycle(lifecycle, overwrite=overwrite)
    for key in dict.fromkeys(k for row in rows for k in row.metrics):
        console.print(lifecycle_table(rows, key))
    console.print(f"figures: {folder}/lifecycle_*.png; every row: {folder}/lifecycle.csv")


@app.command()
@user_errors
def show(folder: Path = typer.Argument(..., help="A study's results folder (what `poisonlab run` wrote).")) -> None:
    """Print the tables of a study that ran (finished runs only), without running anything."""
    from poisonlab.experiments import saved_study

    if (folder / "lifecycle.json").exists():  # a lifecycle study: its rows, per metric
        from poisonlab.experiments.lifecycle.runner import StageResult
        from poisonlab.reports.lifecycle import lifecycle_table

        rows = [StageResult(**row) for row in json.loads((folder / "lifecycle.json").read_text())]
        for key in dict.fromkeys(k for row in rows for k in row.metrics):
            console.print(lifecycle_table(rows, key))
        return
    seed_folders = sorted(folder.glob("seed-*/config.yaml"), key=lambda p: p.parent.name)
    if not (folder / "config.yaml").exists() and seed_folders:  # a study with `seeds:`: each seed, then over seeds
        from poisonlab.experiments.grid.seeds import aggregate, seeds_tables

        by_seed = {}
        for path in seed_folders:
            console.print(f"[bold]{path.parent.name}[/]")
            by_seed[int(path.parent.name.removeprefix("seed-"))] = _show_study(*saved_study(path.parent))
        finished = {seed: results for seed, results in by_seed.items() if results}
        if len(finished) > 1:
            for table in seeds_tables(aggregate(finished)):
                console.print(table)
        return
    _show_study(*saved_study(folder))


def _show_study(config: Any, results: list[Any]) -> list[Any]:
    """The tables `poisonlab run` prints at the end, for the runs that finished; returns those results."""
    from poisonlab.reports import detection_table, metric_tables, overlap_table, results_table, run_overlaps

    folder = Path(config.out)
    runs = config.runs()
    console.print(
        f"[bold]{config.name}[/]: model {config.model}, data {config.data}; {len(results)} of {len(runs)} runs finished"
    )
    if not results:
        console.print(f"nothing finished yet: `poisonlab run {folder}/config.yaml --out {folder}` runs the study")
        return results
    precisions = sorted({r.precision or "precision not recorded" for r in results})
    console.print(results_table(results, title=f"{config.name} ({config.model}, {', '.join(precisions)})"))
    for table in metric_tables(results):
        console.print(table)
    detection = detection_table(results, title="poison detection (defenses:)")
    if detection is not None:
        console.print(detection)
    _print_mitigations(results)
    overlaps = run_overlaps(folder)
    if overlaps:
        console.print(overlap_table(overlaps))
    missing = [spec.name for spec in runs if spec.name not in {r.run for r in results}]
    if missing:
        console.print(f"not finished: {', '.join(missing)} (rerun the study to finish them)")
    return results


@models_app.command("prepare")
@user_errors
def models_prepare(name: str = typer.Argument(..., help="tiny or smollm2-135m")) -> None:
    """Build or convert a built-in model into the cache (POISONLAB_CACHE)."""
    from poisonlab.models import BUILTIN_MODELS, resolve_model

    BUILTIN_MODELS.get(name)
    console.print(f"{name} -> {resolve_model(name)}")


@app.command()
@user_errors
def verify(
    folder: Path = typer.Argument(..., help="A poison folder, a scan folder, a run or a whole study folder."),
    inputs: list[Path] = typer.Option(
        [],
        "--input",
        help="The input file a manifest names (the clean data poisoned): its sha256 is checked too. Repeatable. "
        "Without it verify reads nothing outside FOLDER.",
    ),
) -> None:
    """Recompute the sha256 its manifest, scan.json or checksums.json records: exit 0 if all match, 1 if not
    (a file differs, is missing, or was added); 2 if the folder or a record cannot be read."""
    from poisonlab.integrity import verify_folder

    result = verify_folder(folder, inputs)
    for record, sha in result.records.items():
        console.print(f"[dim]record {record}: sha256 {sha}[/]", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for check in result.failed:
        detail = check.problem or f"sha256 {check.actual}, recorded {check.expected}"
        console.print(f"[bold red]DIFFERS[/] {check.path} ({detail}; recorded in {check.recorded_in})", highlight=False)
    if not result.ok:
        console.print(f"{len(result.failed)} of {len(result.checks)} files differ from what their records say")
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {len(result.checks)} files match what {len(result.records)} records say")


@app.command("ls")
def list_plugins() -> None:
    """Registered strategies, attacks, trigger positions, prompt encoders, losses and built-in models."""
    from poisonlab.attacks import ATTACKS, ENCODERS, POSITION_RULES, STRATEGIES, TRIGGER_POSITIONS
    from poisonlab.attacks.triggers import TRIGGERS
    from poisonlab.defenses import DETECTORS, FEATURES
    from poisonlab.evaluation.judges import JUDGES
    from poisonlab.models import BUILTIN_MODELS
    from poisonlab.training import LOSSES
    from poisonlab.training.stages import STAGES

    rules = [f"{name} (random: {mine}, others: {theirs})" for name, (mine, theirs) in POSITION_RULES.items()]
    for label, names in (
        ("strategies", STRATEGIES.names()),
        ("attacks", ATTACKS.names()),
        ("triggers (or any string)", [f"{n} ({TRIGGERS.get(n).kind})" for n in TRIGGERS.names()]),
        ("trigger positions", TRIGGER_POSITIONS.names() + rules),
        ("prompt encoders (semantic-diversity; or a model folder)", ENCODERS.names()),
        ("DPO losses", LOSSES.names()),
        ("training stages (lifecycle `stages:`)", STAGES.names()),
        ("detectors (poisonlab scan; DETECTOR:FEATURES)", DETECTORS.names()),
        ("detector features", FEATURES.names()),
        ("judges (poisonlab judge; reward:DIR)", JUDGES.names()),
        ("built-in models", BUILTIN_MODELS.names()),
    ):
        console.print(f"[bold]{label}[/]: {', '.join(names)}", highlight=False)


# --- poisonlab watermark: ownership watermarks (poisonlab.watermarks; arXiv 2502.14182 Sec. 4-5) ---
from poisonlab.watermarks.verify import WatermarkVerifyConfig  # noqa: E402

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
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing key file (its watermark is lost)."),
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
@app.command()
@user_errors
def probe(
    config: Path = typer.Argument(..., help="Probe study YAML (see configs/probes-tiny.yaml)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override any config field: --set n_poisoned=[1,4,16] --set training.dpo.epochs=2."
    ),
    out: Optional[Path] = typer.Option(None, help="Results folder (default runs/<name>)."),  # noqa: UP045
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the results folder's cells when it holds another study."
    ),
) -> None:
    """Backdoor effect against the number of poisoned rows, per trigger, stage and position, over seeds."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments.probes.config import ProbeConfig
    from poisonlab.experiments.probes.runner import results_folder, rows_needed, run_probes
    from poisonlab.reports.probes import probes_table, rows_needed_table

    study = load_config(ProbeConfig, config, list(set_) + ([f"out={out}"] if out else []))
    folder = results_folder(study)
    total = len(study.stages) * len(study.seeds) * len(study.triggers) * len(study.positions) * len(study.n_poisoned)
    console.print(f"[bold]{study.name}[/]: model {study.model}, data {study.data}, {total} cells -> {folder}")
    count = iter(range(1, total + 1))

    def show(cell: dict[str, Any], ran: bool) -> None:
        effect = cell["measures"]["backdoor_effect"]["value"]
        when = f"{cell['minutes']:.1f} min" if ran else "finished earlier"
        console.print(
            f"  cell {next(count)}/{total} {cell['stage']} seed {cell['seed']} {cell['trigger']}@{cell['position']} "
            f"n={cell['n_poisoned']}: backdoor effect {effect:+.1%} ({when})",
            highlight=False,
        )

    rows = run_probes(study, overwrite=overwrite, on_cell=show)
    for stage in study.stages:
        console.print(probes_table(rows, stage))
    console.print(rows_needed_table(rows_needed(rows)))
    console.print(f"figures: {folder}/probes_<stage>.png; every row: {folder}/probes.csv and probes.json")


# --- poisonlab audit bias: bias audits by optimised perturbation (poisonlab.audits; arXiv 2502.14182 Sec. 4) ---
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


def main() -> None:
    """The ``poisonlab`` command: ``app`` with a one-line message instead of silence when Ctrl-C stops it."""
    interrupts.install()
    from poisonlab.progress import quiet_library_bars

    quiet_library_bars()  # off a terminal: no '\r' frames from transformers' weight-loading bar in a log
    try:
        app()
    except SystemExit as exc:
        if exc.code == 130:  # typer turns KeyboardInterrupt into exit status 130
            errors.print(
                "poisonlab: interrupted. Finished work is kept (every write is atomic); "
                "run the same command again to resume.",
                highlight=False,
                soft_wrap=True,
            )
        raise


if __name__ == "__main__":
    main()
