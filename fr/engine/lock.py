"""One trainer per run folder: an exclusive, non-blocking lock held for as long as a run is being trained.

Two processes training the same config (two grid workers, a notebook in ``full`` mode beside a queue, a
command typed twice) would write the same checkpoint and logs. The first to take the lock trains; the second
gets :class:`RunBusy`, which names the holder, and touches nothing. The lock is an ``flock`` on
``<run>/.lock``: the operating system drops it when its process ends, however it ends, so a killed trainer
leaves no stale lock. (The file itself stays; it is ignored by git and by the records.) Where ``flock`` does
not exist (Windows) runs are not locked.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_FILE", "RunBusy", "holder", "run_lock"]

LOCK_FILE = ".lock"


class RunBusy(RuntimeError):
    """The run folder is locked by another process that is training it."""


@contextlib.contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    """Hold ``folder``'s lock for the block, or raise :class:`RunBusy` at once if another process holds it."""
    folder = Path(folder)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    f = open(folder / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "a process that did not say which"
            raise RunBusy(f"run {folder.name} is being trained by another process ({holder}); nothing was "
                          f"touched. Wait for it to finish, or stop it: its checkpoint lets a later run "
                          f"resume") from None
        f.seek(0)
        f.truncate()
        ticks = _start_ticks(os.getpid())
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
                + (f", process start {ticks}" if ticks else "") + "\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()  # an empty file: nobody is training (see holder)
            f.flush()
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    finally:
        f.close()


def holder(folder: str | Path) -> str | None:
    """Who is training the run in ``folder`` now, as its lock file says (``pid N on HOST, since ...``), or None.
    Read without taking the lock, so it never gets in a trainer's way; a holder on this host whose process is
    gone (killed before it could clear the file), or whose pid now names a younger process, is None."""
    try:
        text = (Path(folder) / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    if not text:
        return None
    parts = text.split()
    if len(parts) >= 4 and parts[0] == "pid" and parts[2] == "on" and parts[3].rstrip(",") == socket.gethostname():
        try:
            pid = int(parts[1])
            os.kill(pid, 0)
        except (ProcessLookupError, ValueError):
            return None
        except PermissionError:  # alive, another user's
            pass
        said = text.rsplit("process start ", 1)[1].strip() if "process start " in text else None
        if said is not None and _start_ticks(pid) not in (None, said):  # the id now names another process
            return None
    return text


def _start_ticks(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat``, field 22; Linux only): with
    the pid it names one process, since pids are reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None
