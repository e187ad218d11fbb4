"""One writer per folder: an OS-level lock held by a command for as long as it writes a folder.

Every command that writes a study, a poisoned set or generations holds ``FOLDER/.poisonlab.lock`` (an
``flock`` lock, released by the operating system when the process ends, even by ``kill -9``) from before
it looks at the folder until its last file is written. The lock file also says who holds it: the command,
its settings, the process and when it started. A second command on the same folder then either

- waits for the holder, when it would write the same thing (same command, same settings), and finds the
  work done or resumable when the holder lets go; or
- stops with an :class:`~poisonlab.errors.InputError` (exit 2) naming the holder and the settings that
  differ, when it would write something else.

The lock file stays behind when the command ends: it records which command last wrote the folder, so a
command can tell its own unfinished work (which it finishes) from a user's file of the same name (which it
never replaces unasked).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poisonlab.errors import InputError

LOCK_NAME = ".poisonlab.lock"
_HOLDER_WAIT_S = 5.0  # how long a holder may take to say who it is after taking the lock


@dataclass
class Claim:
    """The folder a command holds, and what the lock file said before (None: no poisonlab command wrote here)."""

    folder: Path
    previous: dict[str, Any] | None


def _normal(settings: Any) -> Any:
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def last_writer(folder: str | Path) -> dict[str, Any] | None:
    """What the lock file of ``folder`` says about the command that last wrote it (None if no command did)."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="utf-8")
        record = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("command"), str) else None


def differences(holder: dict[str, Any], command: str, settings: dict[str, Any]) -> list[str]:
    """The settings in which ``holder`` (a lock file's record) differs from ``command`` with ``settings``."""
    if holder.get("command") != command:
        return [f"the command (`poisonlab {holder.get('command')}` there, `poisonlab {command}` here)"]
    theirs, ours = holder.get("settings") or {}, _normal(settings)
    found = []
    for key in sorted(set(theirs) | set(ours), key=str):
        if theirs.get(key) != ours.get(key):
            found.append(f"{key} ({_short(theirs.get(key))} there, {_short(ours.get(key))} here)")
    return found


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _holder_text(holder: dict[str, Any]) -> str:
    since = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, int | float) else "?"
    return f"`poisonlab {holder.get('command')}` (process {holder.get('pid')} on {holder.get('host')}, since {when})"


def _write_record(fd: int, record: dict[str, Any]) -> None:
    data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _lock(fd: int, wait: bool) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _acquire(path: Path, command: str, settings: dict[str, Any], field: str) -> tuple[int, dict[str, Any] | None]:
    """An open descriptor of ``path`` holding its lock, and the record the file held before."""
    unknown_since: float | None = None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies
        try:
            if not _lock(fd, wait=False):
                holder = last_writer(path.parent)
                if holder is None or holder.get("state") != "writing":  # it has not said who it is yet
                    unknown_since = unknown_since or time.monotonic()
                    if time.monotonic() - unknown_since < _HOLDER_WAIT_S:
                        os.close(fd)
                        time.sleep(0.05)
                        continue
                else:
                    found = differences(holder, command, settings)
                    if found:
                        raise InputError(
                            f"another command is writing this folder: {_holder_text(holder)}, which differs in "
                            f"{'; '.join(found)}. Wait for it to finish, or choose another folder",
                            path=path.parent,
                            field=field,
                        )
                _lock(fd, wait=True)  # the same work: wait for it, then finish or reuse what it wrote
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file (and its empty folder) as it let go: start again
                os.close(fd)
                path.parent.mkdir(parents=True, exist_ok=True)
                continue
            return fd, last_writer(path.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise


@contextlib.contextmanager
def one_writer(folder: str | Path, command: str, settings: dict[str, Any], field: str = "--out") -> Iterator[Claim]:
    """Hold ``folder`` for ``command`` with ``settings`` (JSON-able) while the ``with`` block runs.

    The folder is made if it does not exist, and removed again if the command fails before writing any file
    into it. See the module docstring for what a second command on the same folder does.
    """
    from poisonlab.io import environment_error

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder", path=folder, field=field)
    made = not folder.exists()
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, previous = _acquire(path, command, settings, field)
    except OSError as exc:
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise environment_error(exc, folder) from None
    record = {
        "command": command,
        "settings": _normal(settings),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "argv": sys.argv[1:],
        "state": "writing",
    }
    ok = False
    try:
        _write_record(fd, record)
        yield Claim(folder, previous)
        ok = True
    finally:
        try:
            if not ok and made and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                path.unlink()  # refused or failed before writing anything: leave no trace
                folder.rmdir()
            else:
                _write_record(fd, {**record, "state": "done" if ok else "stopped"})
        except OSError:
            pass
        finally:
            os.close(fd)
