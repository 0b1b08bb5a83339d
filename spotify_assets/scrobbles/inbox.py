"""The door's inbox in the lake: each accepted submission, create-only, as JSON lines.

A scrobbler retries a submission it got no answer for, so a retry must land nothing new: the
file is named by the digest of its content (each listen as canonical JSON, one a line, in the
order sent) and put in the folder of the day its first listen started, both derived from the
listens alone. The same submission again is the same path with the same bytes, which the lake's
create-only write accepts as a no-op (``LakeWrite.created`` is False). A listen sent again in
another submission lands in another file: the merge counts it once (``matching.decide``: same
source, same names, same start).

The listens are kept as received (validated by ``listenbrainz.listen_from_json``), so the
merge reads them with the ListenBrainz JSON-lines reader, with ``source=SCROBBLE_SERVER``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from spotify_assets.encoding import content_digest
from spotify_assets.lake_layout import scrobble_inbox_path
from spotify_assets.resources.lake import LakeResource, LakeWrite


def inbox_bytes(listens: list[dict[str, Any]]) -> bytes:
    """The file's content: one canonical JSON object a line (sorted keys, no spaces, UTF-8)."""
    lines = (json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for obj in listens)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def inbox_path(user_id: str, listens: list[dict[str, Any]], data: bytes) -> str:
    """Where ``data`` (``inbox_bytes(listens)``) lands: the earliest listen's UTC day, the content's digest."""
    first = min(int(obj["listened_at"]) for obj in listens)
    day = datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%d")
    return scrobble_inbox_path(user_id, day, f"{content_digest(data)}.jsonl")


def land(lake: LakeResource, user_id: str, listens: list[dict[str, Any]]) -> LakeWrite:
    """Write one accepted submission of ``user_id`` (validated listens with ``listened_at``)."""
    if not listens:
        raise ValueError("an empty submission lands nothing")
    data = inbox_bytes(listens)
    return lake.write_bytes(inbox_path(user_id, listens, data), data)
