"""Files written whole or not at all: beside their final place, flushed, renamed into it.

Writers that may run side by side name theirs `NAME.PID.tmp`, and one whose writing process is
gone was left by a killed run (remove_abandoned). write_atomically's `NAME.tmp` is for a file
one process writes at a time (under the index's lock, or a run's own output), so the next write
replaces a leftover one."""
from __future__ import annotations

import os
from pathlib import Path


def remove_abandoned(folder: Path, pattern: str) -> None:
    """Remove the `pattern` matches in `folder` whose writer (the PID before `.tmp`) is gone."""
    for tmp in folder.glob(pattern):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # no such process, or no such process id
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def write_atomically(path: Path, text: str) -> None:
    """`text` in `path`, whole or not at all: written beside it, flushed to disk, renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fsync_tree(folder: Path) -> None:
    """Every file and folder under `folder`, and `folder` itself, flushed to disk: what a rename
    then makes visible is whole after a crash too."""
    for path in folder.rglob("*"):
        if path.is_file():
            fsync_file(path)
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(folder)


def fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
