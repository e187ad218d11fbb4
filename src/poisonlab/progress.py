"""Progress bars that a log file can read.

On a terminal: tqdm's redrawn bar. Otherwise (``nohup``, CI, a pipe): whole lines, one when the work
starts, at most one every ``POISONLAB_PROGRESS_INTERVAL`` seconds (default 10) and one when it ends,
never carriage-return frames (a redrawn bar under nohup writes hundreds of kilobytes of them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm

from poisonlab.interrupts import raise_if_interrupted

DEFAULT_INTERVAL = 10.0
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"  # no bar


def on_terminal() -> bool:
    """Whether progress goes to something that redraws (a terminal, a notebook)."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


class LineProgress(tqdm):
    """A tqdm that writes a full line per report instead of redrawing one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("mininterval", float(os.environ.get("POISONLAB_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
        kwargs.setdefault("bar_format", LINE_FORMAT)
        kwargs["dynamic_ncols"], kwargs["ncols"] = False, None
        self._shown: int | None = None
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing its bar: there is nothing to clear in a log, and no '\r' either
            return False
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        self._shown = self.n
        return True

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)  # shown with the next line, not now

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)

    def close(self) -> None:
        if not self.disable and self._shown != self.n:
            self.display()  # the final count, once
        self.leave = False  # so tqdm writes no trailing newline or clearing frame
        super().close()


def progress_bar(iterable: Iterable[Any] | None = None, *, disable: bool = False, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal, a :class:`LineProgress` elsewhere.

    Iterating the bar checks for a Ctrl-C before every item (:mod:`poisonlab.interrupts`).
    """
    if iterable is not None:
        if "total" not in kwargs and hasattr(iterable, "__len__"):
            kwargs["total"] = len(iterable)  # type: ignore[arg-type]
        iterable = _stopping_on_ctrl_c(iterable)
    if disable:
        return tqdm(iterable, disable=True, **kwargs)
    if on_terminal():
        return auto_tqdm(iterable, **kwargs)
    quiet_library_bars()
    return LineProgress(iterable, **kwargs)


def _stopping_on_ctrl_c(items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        raise_if_interrupted()
        yield item


def quiet_library_bars() -> None:
    """Off a terminal, turn off transformers' own bars (loading weights), which redraw with '\\r'."""
    if on_terminal():
        return
    try:
        from transformers.utils import logging

        logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
