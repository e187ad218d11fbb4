"""Property-based tests: malformed and adversarial preference files and configs, for every reader.

Each generated case is either read correctly or refused with an InputError that names the file,
the line (or row) of the first bad row, and the field; the CLI then exits 2 and writes nothing.
The number of cases per test comes from the hypothesis profile (tests/conftest.py: ``ci`` by
default, ``POISONLAB_FUZZ=thorough`` for many more).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from fuzz_cases import COLUMN_CONTAINERS, LINE_CONTAINERS, Unwritable, cases, check_case
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.config_files import load_config
from poisonlab.errors import InputError
from poisonlab.experiments import ExperimentConfig

runner = CliRunner()


def _check(case) -> None:
    with tempfile.TemporaryDirectory() as folder:
        try:
            check_case(case, Path(folder))
        except Unwritable:
            assume(False)


@given(cases(LINE_CONTAINERS))
def test_json_lines_and_arrays_are_read_or_refused_naming_file_line_and_field(case):
    _check(case)


@given(cases(COLUMN_CONTAINERS))
def test_parquet_and_datasets_folders_are_read_or_refused_naming_file_row_and_field(case):
    _check(case)


@given(cases(("jsonl", "jsonl.gz", "json-array", "gz-damaged", "parquet")))
def test_the_cli_exits_2_with_one_line_and_writes_nothing_on_bad_data(case):
    from fuzz_cases import write_case

    with tempfile.TemporaryDirectory() as folder:
        try:
            path, _ = write_case(case, Path(folder) / "in")
        except Unwritable:
            assume(False)
        out = Path(folder) / "out"
        result = runner.invoke(app, ["data", "split", str(path), "--out", str(out), "--heldout", "1"])
        assert result.exit_code in (0, 2), result.output
        if result.exit_code == 2:
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("poisonlab: error: "), result.output
            assert str(path) in lines[0] or "held-out size" in lines[0], result.output  # a 1-pair file cannot split
            assert not out.exists()
        else:
            assert (out / "train.jsonl").exists() and (out / "heldout.jsonl").exists()


FIELDS = sorted(ExperimentConfig.model_fields)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=12))
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)
YAML_SNIPPETS = st.sampled_from(
    [
        "!!python/object/apply:os.system ['true']",
        "!!python/name:os.system",
        "&a [*a]",
        "*missing",
        "? [a, b]\n: 1",
        "{a: 1, a: 2}",
        "---\na: 1\n---\nb: 2",
        "[unclosed",
        "\t- tab",
        "'quote",
        "\ufeffname: bom",
        "name: x\r\nseed: 1\r\n",
        "training:\n  beta: !!binary aGk=",
        "ratios: .nan",
        "seed: 0x10",
        "heldout: -1",
        "seed: -1",
        "seed: 18446744073709551616",
        # anchors and aliases: shared, repeated, and a "billion laughs" that must be refused, not expanded
        "base: &b {beta: 0.2}\ntraining: *b",
        "x: &x [1, 2]\ny: [*x, *x, *x]",
        "a: &a [l, l, l, l, l, l, l, l, l, l]\n"
        + "\n".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i > 1 else '*a'] * 10)}]" for i in range(1, 9)),
        # depth: under and far over the limit, flow and block
        "training: " + "[" * 50 + "]" * 50,
        "training: " + "[" * 5000 + "]" * 5000,
        "".join(" " * i + f"k{i}:\n" for i in range(300)),
    ]
)


@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), VALUES, max_size=5))
def test_configs_are_read_or_refused_naming_file_line_and_field(values):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "study.yaml"
        text = yaml.safe_dump(values, sort_keys=False, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        try:
            config = load_config(ExperimentConfig, path)
        except InputError as exc:
            assert exc.path == str(path)
            if exc.field and exc.field.split(".")[0] in values:
                assert exc.line is not None and 1 <= exc.line <= len(text.splitlines()), exc.describe()
            return
        assert isinstance(config, ExperimentConfig)


@given(
    st.lists(YAML_SNIPPETS | st.text(max_size=30), min_size=1, max_size=3),
    st.lists(st.text(max_size=20) | st.sampled_from(["seed=[", "name=: x", "=1", "training.beta=0.2"]), max_size=2),
)
def test_any_yaml_text_and_any_set_override_is_read_or_refused(snippets, overrides):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "study.yaml"
        path.write_bytes("\n".join(snippets).encode("utf-8", "surrogatepass"))
        try:
            load_config(ExperimentConfig, path, overrides)
        except InputError as exc:
            assert exc.path in (str(path), None)
            assert exc.path or (exc.field or "").startswith("--set"), exc.describe()
