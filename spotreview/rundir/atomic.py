"""Durable atomic writes and file digests: every file of a run is written through these.

A write goes to ``.tmp-PID-RANDOM-NAME`` beside its target, is fsynced, renamed onto the
target, and the folder is fsynced; the temporary file is removed on every exit path that
runs Python code, and swept by the next write to that folder after a SIGKILL. Failed writes
(full disk, read-only run) are one-line ``RunDirError``s and leave the previous file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spotreview.errors import RunDirError

_TMP_PREFIX = ".tmp-"
_TMP_NAME = re.compile(r"^\.tmp-(\d+)-[0-9a-f]{8}-")
_swept: set[Path] = set()
# A write that fails with one of these is the disk's or the run's fault, said in one line.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def fs_error(e: OSError, path: str | os.PathLike) -> RunDirError:
    """A failed write as one line: what happened to which file and what to do."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunDirError(f"no space left on device writing {path}; free some space and run the command again")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return RunDirError(
            f"cannot write {path} ({e.strerror}); the run is read-only for this user: "
            f"make it writable (or copy the run) and run the command again"
        )
    return RunDirError(f"cannot write {path} ({e.strerror or e}); run the command again")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files in ``folder`` left by a killed process (its PID is gone).

    Done once per folder and process, before the first atomic write there, so a SIGKILL
    leaves no litter after the next run. Returns the files removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if folder in _swept or not folder.is_dir():
        return removed
    _swept.add(folder)
    for entry in os.scandir(folder):
        m = _TMP_NAME.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _fsync(path: str | os.PathLike, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file is fsynced before the rename and the directory after it, so even a
    power loss leaves either the old or the new file. The temporary name keeps the suffix
    (``np.save`` would otherwise append ``.npy``) and names this process
    (``.tmp-PID-RANDOM-NAME``): it is removed on every exit path that runs Python code
    (errors, Ctrl-C, SIGTERM through the CLI's handler), and after a SIGKILL by the next
    write to the same folder (:func:`sweep_temp_files`). A failed write (full disk,
    read-only run) raises a one-line ``RunDirError`` and leaves the previous file as it was.

    ``durable=False`` skips both fsyncs (each waits for the disk) for bulk writes such as
    thousands of images; the caller then calls ``os.sync()`` once before writing
    the file that marks them complete.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(path.parent)
    except OSError as e:
        raise fs_error(e, path) from None
    tmp = path.with_name(f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        try:
            yield tmp
            if durable:
                _fsync(tmp)
            os.replace(tmp, path)
            if durable:
                _fsync(path.parent, directory=True)
        except OSError as e:
            if e.errno not in _WRITE_ERRNOS:
                raise
            raise fs_error(e, path) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_npy(path: str | os.PathLike, array) -> None:
    import numpy as np

    with atomic_path(path) as tmp:
        np.save(tmp, array)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
