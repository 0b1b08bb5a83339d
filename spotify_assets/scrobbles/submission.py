"""ListenBrainz's submit API, judged: its limits, its listen types and its error messages.

Scrobblers (Pano Scrobbler, Web Scrobbler, multi-scrobbler...) speak ListenBrainz's API, so the
door answers as ListenBrainz does: a body ``{"listen_type": "single" | "playing_now" | "import",
"payload": [...]}``; ``single`` and ``playing_now`` carry exactly one listen, ``import`` up to
``MAX_LISTENS_PER_REQUEST``; a ``playing_now`` listen has no ``listened_at``, the others must;
each listen at most ``MAX_LISTEN_SIZE`` bytes as JSON and the body at most
``MAX_PAYLOAD_BYTES``. One bad listen refuses the whole submission (as ListenBrainz does), with
``{"code": 400, "error": "..."}``, so a client never has to work out which half was kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from spotify_assets.scrobbles.listen import SCROBBLE_SERVER, Invalid, Listen
from spotify_assets.scrobbles.listenbrainz import listen_from_json

#: ListenBrainz's limits (``listenbrainz.webserver.views.api_tools``): bytes of one listen as
#: JSON, listens in one submission, bytes of a whole body.
MAX_LISTEN_SIZE = 10_240
MAX_LISTENS_PER_REQUEST = 1_000
MAX_PAYLOAD_BYTES = MAX_LISTEN_SIZE * MAX_LISTENS_PER_REQUEST

#: How far ahead of this machine's clock a scrobbler's ``listened_at`` may be (a phone's clock
#: a little fast must not lose its listens; a time further ahead is a broken clock).
CLOCK_SLACK = timedelta(minutes=5)

SINGLE = "single"
PLAYING_NOW = "playing_now"
IMPORT = "import"
LISTEN_TYPES = (SINGLE, PLAYING_NOW, IMPORT)


class ApiError(Exception):
    """An answer other than success: ``status`` and the message of ``{"code", "error"}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.status, "error": self.message}


@dataclass(frozen=True)
class Submission:
    """A valid submission: the listens as sent (what the inbox keeps) and as ``Listen`` records."""

    listen_type: str
    raw: list[dict[str, Any]]
    listens: list[Listen]


def parse_body(data: bytes) -> Any:
    """The body as JSON; ``ApiError(400)`` when it is not."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"Cannot parse JSON document: {' '.join(str(exc).split())}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def judge(body: Any, now: datetime) -> Submission:
    """``body`` (parsed JSON) as a ``Submission``, or ``ApiError(400)`` saying what is wrong."""
    if not isinstance(body, dict) or "listen_type" not in body or "payload" not in body:
        raise ApiError(400, "Invalid JSON document submitted: it needs listen_type and payload.")
    listen_type = body["listen_type"]
    payload = body["payload"]
    if listen_type not in LISTEN_TYPES:
        raise ApiError(400, f"Invalid listen_type {listen_type!r}: use one of {', '.join(LISTEN_TYPES)}.")
    if not isinstance(payload, list) or not payload:
        raise ApiError(400, "The payload must be a non-empty list of listens.")
    if listen_type in (SINGLE, PLAYING_NOW) and len(payload) != 1:
        raise ApiError(400, f"JSON document must contain exactly one listen for listen_type {listen_type}.")
    if len(payload) > MAX_LISTENS_PER_REQUEST:
        raise ApiError(
            400, f"Too many listens. You may not submit more than {MAX_LISTENS_PER_REQUEST} listens at once."
        )
    listens: list[Listen] = []
    latest = now + CLOCK_SLACK
    for n, obj in enumerate(payload):
        size = len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if size > MAX_LISTEN_SIZE:
            raise ApiError(400, f"Listen {n} is too large: listens may be at most {MAX_LISTEN_SIZE} bytes.")
        has_time = isinstance(obj, dict) and obj.get("listened_at") is not None
        if listen_type == PLAYING_NOW and has_time:
            raise ApiError(400, "JSON document must not contain listened_at while submitting playing_now.")
        if listen_type != PLAYING_NOW and not has_time:
            raise ApiError(400, f"JSON document must contain listened_at for listen_type {listen_type}.")
        try:
            listens.append(
                listen_from_json(
                    obj,
                    latest,
                    position=f"payload#{n}",
                    source=SCROBBLE_SERVER,
                    started_at=now if listen_type == PLAYING_NOW else None,
                )
            )
        except Invalid as exc:
            raise ApiError(400, f"Listen {n} is not valid: {exc.reason}.") from None
    return Submission(listen_type, payload, listens)
