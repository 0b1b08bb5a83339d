"""ReccoBeats emulation: the keyless audio-features API, served by the sandbox under ``/reccobeats``.

Spotify closed ``/v1/audio-features`` to new apps, so ``SPOTIFY_FEATURES_PROVIDER=reccobeats``
is the realistic path; this lets local mode and the tests run the production
``ReccoBeatsClient`` against loopback (base URL ``<sandbox url>/reccobeats``) instead of a fake.

Shape (as documented by ReccoBeats): ``GET /v1/audio-features?ids=<id>&ids=<id>…`` (at most
40 ids), answer ``{"content": [{"id": <uuid>, "href": "https://open.spotify.com/track/<spotify
id>", "danceability": …}]}``. Tracks ReccoBeats has not analysed are simply absent; here that is
a deterministic ~15% of the catalogue (:func:`is_analysed`), so ``not_found`` is exercised too.
Faults use the sandbox's usual knobs with a path glob, e.g. ``fail_next(429, 10,
"/reccobeats/*", retry_after=3600)``.
"""

from __future__ import annotations

import uuid
from typing import Any

from spotify_assets.providers.reccobeats import FEATURE_KEYS
from spotify_sandbox.catalogue import Catalogue, stable_unit

#: Where the sandbox serves the emulation (the client appends ``/v1/audio-features``).
RECCOBEATS_PREFIX = "/reccobeats"
RECCOBEATS_AUDIO_FEATURES_PATH = f"{RECCOBEATS_PREFIX}/v1/audio-features"
MAX_IDS = 40
#: Share of catalogue tracks ReccoBeats "has not analysed" (absent from answers).
NOT_ANALYSED_RATIO = 0.15
_FEATURE_KEYS = FEATURE_KEYS  # what the real service returns, from the client module
_NAMESPACE = uuid.UUID("6f1c1f0e-2b7a-4d38-9a53-0c8d7f1d5e21")


class ReccoBeatsBadRequest(ValueError):
    """The request is one ReccoBeats would refuse with 400 (no ids, too many ids)."""


def is_analysed(catalogue: Catalogue, spotify_id: str) -> bool:
    """Whether the emulated ReccoBeats knows ``spotify_id`` (stable for a given seed)."""
    return (
        spotify_id in catalogue.audio_features_by_id
        and stable_unit("reccobeats", catalogue.seed, spotify_id) >= NOT_ANALYSED_RATIO
    )


def reccobeats_id(spotify_id: str) -> str:
    """ReccoBeats' own id for a track: a uuid, deterministic so answers are reproducible."""
    return str(uuid.uuid5(_NAMESPACE, spotify_id))


def audio_features_answer(catalogue: Catalogue, ids: list[str]) -> dict[str, Any]:
    """The body of ``GET /v1/audio-features`` for the repeated ``ids`` query values."""
    wanted = [i for raw in ids for i in raw.split(",") if i]
    if not wanted:
        raise ReccoBeatsBadRequest("ids is required")
    if len(wanted) > MAX_IDS:
        raise ReccoBeatsBadRequest(f"at most {MAX_IDS} ids per request")
    content = []
    for spotify_id in dict.fromkeys(wanted):
        if not is_analysed(catalogue, spotify_id):
            continue
        features = catalogue.audio_features_by_id[spotify_id]
        content.append(
            {
                "id": reccobeats_id(spotify_id),
                "href": f"https://open.spotify.com/track/{spotify_id}",
                **{k: features[k] for k in _FEATURE_KEYS},
            }
        )
    return {"content": content}


__all__ = [
    "RECCOBEATS_AUDIO_FEATURES_PATH",
    "RECCOBEATS_PREFIX",
    "ReccoBeatsBadRequest",
    "audio_features_answer",
    "is_analysed",
    "reccobeats_id",
]
