"""The ``poisonlab`` app, its command groups, the options several commands share, and the error handling.

Each command parses flags, calls one documented function, and prints. Bad
input exits with status 2 and a one-line message naming file, line and field.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from poisonlab.errors import InputError
from poisonlab.training.config import DPOTrainingConfig

app = typer.Typer(
    help="Study and defend against poisoning of LLM preference data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's wrapped lines read as one paragraph in --help
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
SkipBad = typer.Option(
    False, "--skip-bad-rows/--no-skip-bad-rows", help="Leave out and count malformed rows instead of stopping."
)
Overwrite = typer.Option(False, "--overwrite/--no-overwrite", help="Replace the results already in the output folder.")
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


InitOpt = typer.Option(
    [],
    "--init",
    help="Adapter to start from (an SFT adapter), merged into --model before training; for DPO the model it "
    "makes is also the reference. Repeatable, in order; the new adapter records the chain.",
)
