"""Locks between processes on one machine: ``filelock``, with the options every lock here shares.

The warehouse's writers, the rate gate, the token files and the household registry each hold a
lock file beside what they protect. All four are exclusive (one holder at a time): none is a
shared/read lock, so ``filelock``'s one mode fits them all. The lock file is kept on release
(``preserve_lock_file``), as the ``fcntl.flock`` blocks this replaced kept theirs: a file that
stays is never unlinked under a process about to lock it, and the lock never falls back to a
soft (marker file) lock on a filesystem without ``flock``.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock
from filelock import Timeout as LockTimeout

__all__ = ["LockTimeout", "exclusive_lock"]


def exclusive_lock(path: Path, *, timeout_s: float = -1) -> FileLock:
    """An exclusive lock on ``path``; ``acquire()`` waits up to ``timeout_s`` (forever when
    negative) and raises ``LockTimeout`` after. A new object per use: each holds its own descriptor,
    so two threads of one process exclude each other as two processes do."""
    return FileLock(path, timeout=timeout_s, preserve_lock_file=True)
