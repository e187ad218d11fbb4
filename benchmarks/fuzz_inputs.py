"""Bad data at scale: how many malformed preference files and configs poisonlab was tried on, and what users saw.

Runs the generators of ``tests/fuzz_cases.py`` (every reader: JSON lines, gzip, JSON arrays,
Parquet, datasets folders; plus configs and ``--set`` overrides) for many more cases than CI does,
checks the same oracle (read correctly, or refused naming file, line/row and field), and prints
the number of cases, how many were read or refused, and the distinct messages users see
(file, numbers and quoted values taken out). Any crash or wrong line stops it with the failing case.

    python benchmarks/fuzz_inputs.py                 # 1,500 files + 500 configs, a few minutes on one core
    python benchmarks/fuzz_inputs.py --files 5000 --configs 2000 --show 40
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_cases import CONTAINERS, Unwritable, cases, check_case, message_template

from poisonlab.config_files import load_config
from poisonlab.errors import InputError
from poisonlab.experiments import ExperimentConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1500, help="Preference files to generate.")
    parser.add_argument("--configs", type=int, default=500, help="Configs to generate.")
    parser.add_argument("--show", type=int, default=25, help="Distinct messages to print.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    common = dict(
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    by_container: collections.Counter[str] = collections.Counter()
    refused: collections.Counter[str] = collections.Counter()
    templates: collections.Counter[str] = collections.Counter()
    mutations: collections.Counter[str] = collections.Counter()

    @settings(max_examples=args.files, **common)
    @given(cases(CONTAINERS))
    def files(case) -> None:
        with tempfile.TemporaryDirectory() as folder:
            try:
                outcome = check_case(case, Path(folder))
            except Unwritable:
                assume(False)
        by_container[case.container] += 1
        mutations.update(r.mutation.split("-")[0] for r in case.rows)
        if outcome.refused:
            refused[case.container] += 1
            templates[message_template(outcome.message)] += 1

    fields = sorted(ExperimentConfig.model_fields)
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    )
    config_counts: collections.Counter[str] = collections.Counter()

    @settings(max_examples=args.configs, **common)
    @given(
        st.dictionaries(st.sampled_from(fields) | st.text(max_size=10), values, max_size=5),
        st.just([]) | st.lists(st.text(max_size=20), max_size=2),  # --set overrides, in half the cases
    )
    def configs(data, overrides) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "study.yaml"
            path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
            try:
                load_config(ExperimentConfig, path, overrides)
                config_counts["read"] += 1
            except InputError as exc:
                assert exc.path == str(path) or (exc.field or "").startswith("--set"), exc.describe()
                config_counts["refused"] += 1
                templates[message_template(exc.describe())] += 1

    import datasets

    datasets.disable_progress_bars()
    started = time.perf_counter()
    files()
    configs()
    seconds = time.perf_counter() - started
    n_files = sum(by_container.values())
    print(f"{n_files} preference files tried ({sum(refused.values())} refused, {n_files - sum(refused.values())} read)")
    for container in CONTAINERS:
        print(f"  {container:12s} {by_container[container]:5d} tried, {refused[container]:5d} refused")
    print("  row mutations:", ", ".join(f"{k} {v}" for k, v in mutations.most_common()))
    n_configs = sum(config_counts.values())
    print(f"{n_configs} configs tried ({config_counts['refused']} refused, {config_counts['read']} read)")
    print("0 crashes, 0 wrong lines or fields (any would have stopped the run)")
    print(f"{len(templates)} distinct messages users saw; most common:")
    for template, count in templates.most_common(args.show):
        print(f"  {count:5d}  {template}")
    print(f"{seconds:.0f} s")


if __name__ == "__main__":
    main()
