"""Flags behave as users of typer/click CLIs expect: every boolean is --flag/--no-flag."""

from __future__ import annotations

import click
import typer.main
from typer.testing import CliRunner

from poisonlab.cli import app

NEGATIVE_BY_NAME = {"--no-trigger"}  # a flag whose name already says "no"


def _commands(group: click.Command, path: str = "") -> list[tuple[str, click.Command]]:
    if isinstance(group, click.Group):
        found = []
        for name, command in group.commands.items():
            found += _commands(command, f"{path} {name}".strip())
        return found
    return [(path, group)]


def test_every_boolean_flag_of_every_command_has_its_no_form():
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            flag = isinstance(param, click.Option) and param.is_bool_flag and "--help" not in param.opts
            if flag and not param.secondary_opts and not set(param.opts) & NEGATIVE_BY_NAME:
                missing.append(f"{path} {param.opts[0]}")
    assert missing == []


def test_a_boolean_flag_and_its_no_form_both_parse(tmp_path):
    runner = CliRunner()
    for flag in ("--skip-bad-rows", "--no-skip-bad-rows"):
        result = runner.invoke(app, ["data", "inspect", "synthetic", flag])
        assert result.exit_code == 0, result.output
