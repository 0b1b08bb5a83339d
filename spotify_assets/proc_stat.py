"""``/proc/<pid>/stat`` (Linux), read in one place: the run launcher's worker check and the dev
tools' walks of a process tree both need a process's state, parent and start time from it, and
the line is easy to misread (the command name may hold spaces and parentheses). Stdlib only: the
lean ``spotify-assets dev`` supervisor imports it."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name: ``[0]`` the state (proc(5)'s
    field 3), ``[1]`` the parent's id, ``[19]`` the start time in clock ticks after boot; ``None``
    when no such process exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold both: split after the last ')'.
    return text.rsplit(")", 1)[1].split()
