"""One registry mechanism for every plug-in kind (strategies, triggers, losses...).

Adding a plug-in is one decorated class or function in one file; a lookup miss
answers with the closest names so a typo in a config is a one-glance fix. What
the rest of the package must know about a plug-in (does this strategy need a
model? does this attack insert a trigger?) is passed at registration as its
``facts`` (a small frozen dataclass per plug-in kind), never re-derived from its name.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from poisonlab.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> plug-in mapping for one kind of plug-in."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._facts: dict[str, Any] = {}

    def register(self, name: str, facts: Any = None) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``, with ``facts`` the rest of the package may read."""

        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            self._facts[name] = facts
            return obj

        return decorator

    def facts(self, name: str) -> Any:
        """The facts ``name`` was registered with (None if none); unknown names fail as :meth:`get` does."""
        self.get(name)
        return self._facts[name]

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise InputError(
                f"unknown {self.kind} '{name}'.{hint} Available: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def register_package(package: str, path: Iterable[str], skip: tuple[str, ...] = ("base",)) -> None:
    """Import every module of ``package`` (its ``__path__``) but ``skip``: each registers its plug-ins, so a new
    plug-in is one new file beside the package's ``base.py``."""
    for module in pkgutil.iter_modules(path):
        if module.name not in skip:
            importlib.import_module(f"{package}.{module.name}")
