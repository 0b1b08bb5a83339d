"""Take the IP addresses out of an export file before its copy lands in the lake.

A privacy export carries the IP address of every stream (``ip_addr``; older exports also
``ip_addr_decrypted``). Nothing in the platform uses them, and the raw copy in the lake (a
bucket, in cloud mode) would otherwise keep years of them. So by default the copy has those
members removed and **everything else byte for byte**: the members are cut out of the text
(a regular expression over the bytes, never a re-serialisation), and only where a member can
start; ``redact-lake`` also proves each cut by parsing both versions (``verify``). The copy
keeps the original file's path, ``raw/exports/<sha256 of the original>/<name>``, so a
re-import still finds its file there and writes nothing. ``SPOTIFY_KEEP_IP_ADDRESSES=1``
keeps the byte-exact archive.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

#: The members removed from every object of an export file.
IP_FIELDS = ("ip_addr", "ip_addr_decrypted")
#: Set to 1 to keep the raw copies byte for byte, IP addresses included.
KEEP_IP_ENV = "SPOTIFY_KEEP_IP_ADDRESSES"

_NAMES = b"|".join(f.encode() for f in IP_FIELDS)
_VALUE = rb'"(?:[^"\\]|\\.)*"|null|true|false|-?[0-9][0-9.eE+-]*'
#: One IP member with a scalar value and, when another member follows, the comma and space up
#: to that member's key. The literal start keeps the scan fast; ``_cut`` checks that each match
#: starts where a key can.
_MEMBER = re.compile(rb'"(?:' + _NAMES + rb')"\s*:\s*(?:' + _VALUE + rb")(?P<after>\s*,\s*)?")
_LEFT = re.compile(rb'"(?:' + _NAMES + rb')"\s*:')
_SPACE = b" \t\r\n"
_BEFORE_KEY = b"{," + _SPACE


class RedactionError(ValueError):
    """The IP members could not be removed with everything else kept exactly."""


@dataclass(frozen=True)
class Redacted:
    """The copy to land and what was cut: ``fields`` members from ``rows`` objects."""

    data: bytes
    fields: int
    rows: int


def keep_ip_addresses() -> bool:
    """``SPOTIFY_KEEP_IP_ADDRESSES=1``: the user asked for a byte-exact archive."""
    return os.environ.get(KEEP_IP_ENV, "").strip().lower() in {"1", "true", "yes"}


def without_ip(obj: Any) -> Any:
    """``obj`` with the IP members of every object in it removed (for quarantine rows)."""
    if isinstance(obj, dict):
        return {k: without_ip(v) for k, v in obj.items() if k not in IP_FIELDS}
    if isinstance(obj, list):
        return [without_ip(v) for v in obj]
    return obj


def _cut(data: bytes) -> tuple[bytes, int]:
    """``data`` without its IP members: a member followed by another goes with its comma, the
    last of its object with the comma before it. Every other byte is kept."""
    out = bytearray()
    at = fields = 0
    for m in _MEMBER.finditer(data):
        if m.start() == 0 or data[m.start() - 1] not in _BEFORE_KEY:
            # Inside a string a quote is escaped (preceded by a backslash); a key's opening
            # quote follows "{", "," or space. Anything else is not a member: refuse, never guess.
            raise RedactionError("an IP address field name where no member can start")
        out += data[at : m.start()]
        if m.group("after") is None:  # the last member: drop the comma (and space) before it
            head = out.rstrip(_SPACE)
            if head.endswith(b","):
                del out[len(head) - 1 :]
        at = m.end()
        fields += 1
    out += data[at:]
    return bytes(out), fields


def redact(data: bytes, *, verify: bool = True) -> Redacted:
    """``data`` without its IP members, every other byte unchanged.

    The cut only removes members it can prove are members (a key's quote after "{", "," or
    space, a scalar value) and fails if any IP field name is left. ``verify`` also parses both
    versions and compares every other member (about 1 s per 25 MB): ``redact-lake`` does, as it
    removes the original; the import does not, as its original stays where the user has it and
    the parse would double the import's cost. A file that does not parse (truncated, not UTF-8)
    is only cut and checked for a field name left; the import reports it as broken anyway.
    ``rows`` counts objects changed when verified, else the fields removed.
    """
    cut, fields = _cut(data)
    if _LEFT.search(cut):
        raise RedactionError("an IP address member is left after the cut")
    if not fields:
        return Redacted(data, 0, 0)
    if not verify:
        return Redacted(cut, fields, fields)
    try:
        original = json.loads(data)
    except ValueError:  # not JSON or not UTF-8: nothing more to compare
        return Redacted(cut, fields, fields)
    # Only spans were cut, so the members left keep their order; what is proven here is that
    # exactly the IP members went and every value of every other member is as it was.
    try:
        same = json.loads(cut) == without_ip(original)
    except ValueError:
        same = False
    if not same:
        raise RedactionError("removing the IP address members changed other members")
    rows = sum(1 for o in original if isinstance(o, dict) and any(f in o for f in IP_FIELDS))
    return Redacted(cut, fields, rows if isinstance(original, list) else fields)


def redact_lines(data: bytes) -> Redacted:
    """``redact`` for JSON Lines (the quarantine files): each line cut and checked on its own."""
    lines = data.split(b"\n")
    parts = [redact(line) if line.strip() else Redacted(line, 0, 0) for line in lines]
    return Redacted(
        b"\n".join(p.data for p in parts), sum(p.fields for p in parts), sum(1 for p in parts if p.fields)
    )
