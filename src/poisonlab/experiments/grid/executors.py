"""Executors run a study's :class:`~poisonlab.experiments.plan.Plan`: in this process, in a process pool, or on Ray.

Every executor runs the same unit of work, :func:`run_task` (one run of the grid via ``run_one``, or the
clean model's scores), each task only after the tasks it needs. Scheduling is left to the libraries:
:class:`concurrent.futures.ProcessPoolExecutor` (spawned processes, one torch thread each) or Ray, which
orders tasks by passing the results they need as arguments and places them by CPU and memory. Results
equal the one-process run's: every task is seeded and writes its files atomically, a finished task
(``result.json``) is skipped on a rerun, and an interrupted training resumes from its checkpoint.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from poisonlab.errors import InputError
from poisonlab.experiments.grid.config import ExperimentConfig
from poisonlab.experiments.grid.plan import SCORES, Plan, Task, memory_gb_per_process, scores_context
from poisonlab.registry import Registry

OnDone = Callable[[Task, "dict[str, Any] | None"], None]  # task, its RunResult as a dict (None for scores)


@functools.lru_cache(maxsize=4)
def _study(config_json: str) -> tuple[ExperimentConfig, Any, Any]:
    from poisonlab.experiments.grid.folder import split_data

    config = ExperimentConfig.model_validate_json(config_json)
    train, heldout, _ = split_data(config)
    return config, train, heldout


def run_task(name: str, config_json: str, out: str, progress: bool, *upstream: Any) -> dict[str, Any] | None:
    """Run one task of a study (``upstream``: the results of the tasks it needs, only to order it on Ray)."""
    from poisonlab.experiments.grid.run_one import run_one

    config, train, heldout = _study(config_json)
    if not progress:  # transformers' own bars (loading weights) too
        from transformers.utils import logging

        logging.disable_progress_bar()
    if name == SCORES:
        scores_context(config, Path(out), progress).compute()
        return None
    spec = next(s for s in config.runs() if s.name == name)
    return run_one(spec, config, train, heldout, Path(out), progress).to_dict()


def _one_thread() -> None:
    """Worker initialiser: one torch thread per process, since the pool already fills the cores; no bars."""
    import torch
    from transformers.utils import logging

    torch.set_num_threads(1)
    logging.disable_progress_bar()  # several workers' redrawn bars would only garble each other


def default_jobs(model: str, memory_gb: float | None = None) -> int:
    """Parallel runs that fit: one per core, at most as many as ``memory_gb`` (default: available) holds."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if memory_gb is None:
        try:
            memory_gb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9
        except (ValueError, OSError):
            memory_gb = 0
    fits = int(memory_gb // memory_gb_per_process(model)) if memory_gb else cores
    return max(1, min(cores, fits))


class Executor:
    """Runs a plan's pending tasks, each after the tasks it needs; calls ``on_done`` as each finishes."""

    def __init__(self, jobs: int = 1, memory_gb: float | None = None, address: str | None = None) -> None:
        self.jobs, self.memory_gb, self.address = jobs, memory_gb, address

    def workers(self, model: str) -> int:
        """``jobs`` (0: one per core that memory allows), at most as many as ``memory_gb`` holds."""
        jobs = self.jobs or default_jobs(model, self.memory_gb)
        if self.memory_gb:
            jobs = min(jobs, int(self.memory_gb // memory_gb_per_process(model)))
        return max(1, jobs)

    def run(self, plan: Plan, progress: bool, on_done: OnDone) -> None:
        """Finished runs here first (run_one only re-reads them and refuses settings that changed since), then
        the pending tasks with :meth:`run_pending`."""
        config_json = plan.config.model_dump_json()
        for task in plan.tasks:
            if task.spec is not None and task.state == "done":
                on_done(task, run_task(task.name, config_json, str(plan.out), progress))
        if plan.left():
            self.run_pending(plan, plan.left(), progress, on_done)

    def run_pending(self, plan: Plan, tasks: list[Task], progress: bool, on_done: OnDone) -> None:
        raise NotImplementedError


EXECUTORS: Registry[type[Executor]] = Registry("executor")


def _announce(line: str) -> None:
    """One line on stderr when a task starts, so a log says what is running (progress bars say how far)."""
    import sys

    print(line, file=sys.stderr, flush=True)


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """In this process for one job (progress bars and all), else a pool of ``jobs`` spawned processes."""

    def run_pending(self, plan: Plan, tasks: list[Task], progress: bool, on_done: OnDone) -> None:
        config_json, out = plan.config.model_dump_json(), str(plan.out)
        jobs = self.workers(plan.config.model)
        if jobs <= 1:
            for number, task in enumerate(tasks, start=1):
                if progress:
                    _announce(f"task {number}/{len(tasks)}: {task.name}" + (f" ({task.note})" if task.note else ""))
                on_done(task, run_task(task.name, config_json, out, progress))
            return
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        waiting = {t.name: t for t in tasks}
        finished = {t.name for t in plan.tasks if t.name not in waiting}
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_one_thread) as pool:
            running: dict[Any, Task] = {}
            try:
                while waiting or running:
                    for name, task in list(waiting.items()):
                        if all(need in finished for need in task.needs):
                            running[pool.submit(run_task, name, config_json, out, False)] = waiting.pop(name)
                            if progress:
                                _announce(f"started {name} ({len(running)} running, {len(waiting)} waiting)")
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        task = running.pop(future)
                        result = future.result()  # a failed task stops the study: nothing depends on guesses
                        finished.add(task.name)
                        on_done(task, result)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # running tasks finish; queued ones never start
                raise


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Ray tasks on this machine (``ray.init(num_cpus=jobs)``) or on a cluster (``address``).

    Ray orders the tasks (each gets the results it needs as arguments) and places them by one CPU and the
    model's memory per task, and by one GPU where the cluster has GPUs (Ray then sets each task's
    ``CUDA_VISIBLE_DEVICES``, so a node runs as many runs at once as it has GPUs). On a cluster the results
    folder and POISONLAB_CACHE must be on storage every node shares, and every node needs poisonlab installed.
    Workers' output stays in Ray's session logs (/tmp/ray/session_latest/logs); a failed task's error is
    raised here.
    """

    def __init__(self, jobs: int = 1, memory_gb: float | None = None, address: str | None = None) -> None:
        try:  # fail before anything is written
            import ray  # noqa: F401
        except ImportError:
            raise InputError("the Ray executor needs ray: pip install 'poisonlab[ray]'", field="--executor") from None
        super().__init__(jobs, memory_gb, address)

    def run_pending(self, plan: Plan, tasks: list[Task], progress: bool, on_done: OnDone) -> None:
        import ray

        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if "POISONLAB_CACHE" in os.environ:
            env["POISONLAB_CACHE"] = os.environ["POISONLAB_CACHE"]
        if self.address:
            ray.init(address=self.address, runtime_env={"env_vars": env})
        else:
            # Local workers inherit the environment. Ray nices its workers to 15 by default, which starves the
            # study's only work on a machine shared with other jobs (seen here: 3% of a core each).
            env["RAY_worker_niceness"] = "0"
            os.environ.update({k: os.environ.get(k, v) for k, v in env.items()})
            ray.init(num_cpus=self.workers(plan.config.model), include_dashboard=False, log_to_driver=False)
        try:
            memory = int(memory_gb_per_process(plan.config.model) * 1e9)
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0  # GPU nodes: one GPU per run
            remote = ray.remote(num_cpus=1, num_gpus=gpus, memory=memory, max_retries=0)(run_task)
            config_json, out, refs, by_ref = plan.config.model_dump_json(), str(plan.out), {}, {}
            for task in tasks:
                upstream = [refs[n] for n in task.needs if n in refs]
                refs[task.name] = remote.remote(task.name, config_json, out, False, *upstream)
                by_ref[refs[task.name]] = task
            pending = list(refs.values())
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayTaskError as exc:
                    raise exc.as_instanceof_cause() from None
                on_done(by_ref[ready[0]], result)
        finally:
            ray.shutdown()
