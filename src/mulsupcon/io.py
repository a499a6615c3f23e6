"""The single place that writes files atomically, so a killed run never leaves a torn file.

Every write goes to a temporary file in the same folder, is flushed and fsync'ed, then renamed over
the destination (``os.replace`` is atomic on POSIX and Windows). A reader sees either the old complete
file or the new complete file. The file gets the permissions ``open(path, "w")`` would give it: an
existing file's mode, else the user's umask (``tempfile.mkstemp`` would make every result, prediction
and checkpoint readable by its owner only).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "to_jsonable"]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (parent folders are created)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_beside(path)
    except OSError as exc:
        raise _write_error(path, exc, len(data)) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileNotFoundError):  # a new file keeps the umask's mode
            shutil.copymode(path, tmp)  # as open(path, "w") keeps the mode of the file it overwrites
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _write_error(path, exc, len(data)) from exc
        raise


def _create_beside(path: Path) -> tuple[int, Path]:
    """Create and open a new ``.<name>.<random>.tmp`` file in ``path``'s folder: mode 0o666, so the kernel
    applies the umask as it does for ``open(path, "w")``; ``O_EXCL`` so two writers never share one."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # 48 random bits taken already: draw again
            continue


def _write_error(path: Path, exc: OSError, size: int) -> OSError:
    """The OSError of a failed write, naming the file (a full disk's ENOSPC names nothing)."""
    kept = "the previous file is unchanged" if path.exists() else "nothing was written"
    reason = exc.strerror or str(exc)
    return OSError(exc.errno, f"could not write {os.path.abspath(path)} ({size:,} bytes): {reason}; {kept}")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_folder_path(path: str | Path, flag: str) -> None:
    """Raise ValueError when ``path``, or the nearest of its parents that exists, is a file: the folder
    could not be made there (``mkdir`` says only 'Not a directory' or 'File exists', without the flag)."""
    path = Path(path)
    part = next((p for p in (path, *path.parents) if p.exists()), None)
    if part is not None and not part.is_dir():
        what = f"{flag} {path} is a file" if part == path else f"{flag} {path} cannot be made: {part} is a file"
        raise ValueError(f"{what}, not a folder; choose another {flag}")


def check_report_overwritable(path: str | Path, title: str) -> None:
    """Raise FileExistsError if ``path`` exists and is not a generated report (line 1 ``title``, line 3
    ``Command: ...``, as the benchmark and reproduce reports start): a page someone curated by hand from
    several reports must not be replaced by one run that forgot its ``--out``."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; --out takes the report's file name (e.g. {path / 'report.md'})")
    head = path.read_text(encoding="utf-8", errors="replace").splitlines()[:3]
    if head[:1] != [title] or len(head) < 3 or not head[2].startswith("Command: "):
        raise FileExistsError(f"{path} exists and is not a report of this command (expected line 1 {title!r} and "
                              "line 3 'Command: ...'); it would be overwritten. Pass another --out or move the file away")


def to_jsonable(o: Any) -> Any:
    """``json.dumps`` default for numpy scalars and arrays and paths."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=to_jsonable) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())
