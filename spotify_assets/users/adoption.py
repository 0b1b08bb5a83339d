"""Upgrade without loss: the single-user layout's plays become the first listener's.

Before the household, plays had no ``user_id`` and keys without a user. On first start the
pipeline *adopts* them as the user the stored token belongs to (``GET /v1/me``): the
warehouse sets the column and prefixes the keys in one transaction, so the count of plays is
the same before and after. The lake is create-only, so its files stay where they are; the
owner is recorded once, create-only, in the lake itself (``ADOPTION_PATH``), which is what
``rebuild-warehouse`` reads to adopt the same rows as the same person again.

The owner is recorded on the single-user pipeline's first run even when there is nothing
to adopt yet: an import without a user (``spotify-assets import`` without ``--user``) then
imports as that owner, and one imported before that first run is adopted with the rest.
"""

from __future__ import annotations

import contextlib
import json

from spotify_assets.resources.lake import LakeConflictError, LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import PLAYS_TABLE

#: Who the single-user layout's plays belong to (``{"user_id": ...}``), written once.
ADOPTION_PATH = "users/legacy_owner.json"


def legacy_owner(lake: LakeResource) -> str | None:
    if not lake.exists(ADOPTION_PATH):
        return None
    return str(json.loads(lake.read_bytes(ADOPTION_PATH))["user_id"])


def record_owner(lake: LakeResource, user_id: str) -> str:
    """Record ``user_id`` as the owner unless one is recorded already; returns the owner."""
    # A conflict: another listener's first run recorded itself first, and that record stands.
    with contextlib.suppress(LakeConflictError):
        lake.write_bytes(ADOPTION_PATH, json.dumps({"user_id": user_id}, sort_keys=True).encode())
    owner = legacy_owner(lake)
    assert owner is not None
    return owner


def adopt_legacy(warehouse: WarehouseResource, lake: LakeResource, user_id: str) -> tuple[str, int]:
    """Adopt any plays without a user as the recorded owner, recording ``user_id`` as the owner
    if nobody is yet. Returns (owner, rows adopted); cheap when there is nothing to adopt
    (one small lake read, one count)."""
    owner = legacy_owner(lake) or record_owner(lake, user_id)
    waiting = warehouse.query(f"SELECT count(*) AS n FROM {PLAYS_TABLE} WHERE user_id IS NULL")
    return owner, warehouse.adopt_legacy_plays(owner) if int(waiting["n"].iloc[0]) else 0
