"""Atomic, hash-stamped file output.

A crash or Ctrl-C never leaves a half-written dataset or result: everything is
written to a temporary file in the same folder and renamed into place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file_memo(path: str | Path) -> str:
    """:func:`sha256_file`, memoised per (path, size, mtime) in this process: model weights are hashed once."""
    stat = os.stat(path)
    return _sha256_memo(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=512)
def _sha256_memo(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def sha256_path(path: str | Path) -> str:
    """Hash of a file, or of every file in a folder (names and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(child.relative_to(path)).encode())
        digest.update(sha256_file(child).encode())
    return digest.hexdigest()


def current_umask() -> int:
    """The process umask, read without changing it where Linux says it (/proc), else set and restored at once.

    ``os.umask`` can only be read by setting it, which races with other threads creating files; Linux 4.7+
    reports it in ``/proc/self/status``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place.

    ``mkstemp`` creates the temporary file with mode 0600; it gets the mode any new file would get (0666
    less the umask) before the rename, so results can be shared as the user's umask allows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_figure(fig: Any, path: str | Path, dpi: int = 120) -> None:
    """A matplotlib figure as PNG, laid out tight, written atomically; the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, to_json(obj))


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(row, ensure_ascii=False, sort_keys=False) for row in rows]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def inside(root: str | Path, path: str | Path, what: str = "study folder") -> Path:
    """``path`` if it stays inside ``root`` once symlinks and ``..`` are resolved; else an InputError.

    Every output path poisonlab builds from a config value (a run name, a detector's file) goes
    through this, so ``../../etc``, an absolute name or a symlink planted in the folder cannot send
    a write elsewhere.
    """
    from poisonlab.errors import InputError

    base, target = Path(root).resolve(), Path(path).resolve()
    if target != base and base not in target.parents:
        link = next((p for p in [Path(path), *Path(path).parents] if p.is_symlink()), None)
        how = f"{link} is a link to {link.resolve()}" if link else f"it resolves to {target}"
        raise InputError(f"refusing to write outside the {what} {base}: {how}", path=path)
    return Path(path)


def json_lines(text: str, path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-empty line of a JSON-lines text; bad JSON names the line."""
    from poisonlab.bounded import json_value
    from poisonlab.errors import InputError

    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json_value(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", path=path, line=number) from None
        except ValueError as exc:  # nested too deeply
            raise InputError(f"refused: {exc}", path=path, line=number) from None


def cache_dir() -> Path:
    """Where converted models, built models and score caches live (outside the repo).

    Set ``POISONLAB_CACHE`` to move it; the default follows XDG.
    """
    root = os.environ.get("POISONLAB_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(xdg) / "poisonlab"


# What the environment can do to a write, in words a user can act on.
_ENVIRONMENT = {
    "EROFS": "the file system is read-only",
    "ENOSPC": "the disk is full",
    "EDQUOT": "the disk quota is used up",
    "EACCES": "permission denied",
    "EPERM": "not permitted",
    "EIO": "input/output error",
}


def environment_error(exc: OSError, path: str | Path | None = None) -> Exception:
    """An InputError naming the file and what the environment refused (read-only, full disk, ...), for the
    OSErrors a user can fix; any other OSError as it was."""
    import errno

    from poisonlab.errors import InputError

    name = errno.errorcode.get(exc.errno or -1, "")
    if name not in _ENVIRONMENT:
        return exc
    where = exc.filename or path
    return InputError(f"{_ENVIRONMENT[name]} ({exc.strerror or name})", path=where)


def snapshot(folder: str | Path) -> dict[str, int]:
    """Modification times of everything under ``folder``: what :func:`honour_umask` compares with."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {str(p): p.lstat().st_mtime_ns for p in folder.rglob("*")}


def honour_umask(folder: str | Path, before: dict[str, int] | None = None) -> None:
    """Give what a library just wrote under ``folder`` the mode the umask allows (files 0666, folders 0777,
    less the umask), as :func:`atomic_write_bytes` does for poisonlab's own files.

    Some writers (``save_pretrained``'s safetensors, ``tempfile.mkdtemp``) create 0600 files or 0700 folders
    whatever the umask. With ``before`` (a :func:`snapshot`), only entries new or changed since are touched;
    without it, everything under ``folder`` and the folder itself.
    """
    folder = Path(folder)
    mask = current_umask()
    entries = [folder, *folder.rglob("*")] if before is None else list(folder.rglob("*"))
    for path in entries:
        if path.is_symlink() or (before is not None and before.get(str(path)) == path.lstat().st_mtime_ns):
            continue
        if path.is_dir():
            os.chmod(path, 0o777 & ~mask)
        elif path.is_file():
            os.chmod(path, 0o666 & ~mask)
