"""One writer at a time: an exclusive OS lock (``fcntl.flock``) on a lock file, held while a
run folder (``RUN/.lock``) or a ledger (``runs.csv.lock``) is written.

The lock belongs to the open lock file, so it ends when its holder closes the file or dies,
``kill -9`` included: a lock left behind by a dead process never blocks the next writer. The
lock file stays on disk (deleting it would let a newcomer lock a fresh file of the same name
while an older process still holds the deleted one); it names its last holder (pid, host,
start time), which is what a refused writer is told. Standard library only.
"""

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path


class Busy(ValueError):
    """Another live process holds the lock: the command cannot run now (exit 2, one line)."""


@contextlib.contextmanager
def exclusive(path, what: str, wait: bool = False):
    """Hold the exclusive lock on the lock file ``path`` (created if needed) for the ``with``
    block. ``wait``: wait for the holder to let go (for short updates, such as a ledger row);
    otherwise raise ``Busy`` at once, naming ``what`` the lock guards and who holds it."""
    path = Path(path)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(f"{what} is in use by {holder(path)} (lock file {path}); wait for that "
                       f"process to finish, or stop it, then run again.") from None
        _write_holder(descriptor, path)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def holder(path) -> str:
    """Who took the lock file ``path`` last, in words (``pid 41 on host-a since 2026-...``)."""
    try:
        record = json.loads(Path(path).read_text())
        return f"pid {record['pid']} on {record['host']} since {record['started']}"
    except (OSError, ValueError, KeyError, TypeError):  # taken a moment ago, not yet signed
        return "another process"


def _write_holder(descriptor: int, path: Path) -> None:
    """Sign the lock file with this process's pid, host and the time it took the lock."""
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(record) + "\n").encode(), 0)
    except OSError as error:
        raise OSError(error.errno, f"{error.strerror} (writing the lock file)", str(path)) \
            from None
