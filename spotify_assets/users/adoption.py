"""Upgrade without loss: the single-user layout's plays become the first listener's.

Before the household, plays had no ``user_id`` and keys without a user. On first start the
pipeline *adopts* them as the user the stored token belongs to (``GET /v1/me``): the
warehouse sets the column and prefixes the keys in one transaction, so the count of plays is
the same before and after. The lake is create-only, so its files stay where they are; the
owner is recorded once, create-only, in the lake itself (``ADOPTION_PATH``), which is what
``rebuild-warehouse`` reads to adopt the same rows as the same person again.

The owner is recorded only when the single-user layout left something to own: plays without a
user in the warehouse, or lake files outside every ``user_id=`` folder. A fresh household has
neither, so nobody becomes its "owner" by running first (which would hand them every later
import without ``--user``). An import without ``--user`` goes to the recorded owner, else to the
one listener with plays, and is refused among several (``import_owner``); before any run it
lands plays without a user, which the first run adopts with the rest.
"""

from __future__ import annotations

import contextlib
import json

from spotify_assets.lake_layout import ADOPTION_PATH, legacy_files
from spotify_assets.plays_writes import adopt_legacy_plays
from spotify_assets.resources.lake import LakeConflictError, LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import PLAYS_TABLE


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


class ImportOwnerUnknown(ValueError):
    """An import without a user into a household whose owner nobody recorded: whose is it?"""


def import_owner(warehouse: WarehouseResource, lake: LakeResource) -> str | None:
    """Whose plays an import without ``--user`` is: the recorded owner, else the one listener
    with plays (a single-user install after its first run, which records no owner), else
    ``None`` (nobody has plays yet: rows without a user, adopted by the first run).

    With several listeners and no owner recorded the answer is refused, not guessed: going to
    whoever ran first (or next) is how one listener's history would land in another's plays.
    """
    owner = legacy_owner(lake)
    if owner is not None:
        return owner
    found = warehouse.query(
        f"SELECT DISTINCT user_id FROM {PLAYS_TABLE} WHERE user_id IS NOT NULL ORDER BY user_id LIMIT 2"
    )
    listeners = [str(u) for u in found["user_id"]]
    if len(listeners) > 1:
        raise ImportOwnerUnknown(
            f"this household has several listeners ({', '.join(listeners)}, ...): "
            "name whose export it is with --user NAME (see `spotify-assets users list`)"
        )
    return listeners[0] if listeners else None


def adopt_legacy(warehouse: WarehouseResource, lake: LakeResource, user_id: str) -> tuple[str | None, int]:
    """Adopt any plays without a user as the recorded owner; with none recorded, record ``user_id``
    only if the single-user layout left plays or files (see the module docstring).

    Returns (owner or ``None``, rows adopted). Cheap once an owner is recorded (one small lake
    read, one count); until then a run also lists the single-user layout's folders when the warehouse
    has no plays without a user.
    """
    owner = legacy_owner(lake)
    waiting = int(
        warehouse.query(f"SELECT count(*) AS n FROM {PLAYS_TABLE} WHERE user_id IS NULL")["n"].iloc[0]
    )
    if owner is None and (waiting or next(legacy_files(lake), None) is not None):
        owner = record_owner(lake, user_id)
    return owner, adopt_legacy_plays(warehouse, owner) if owner is not None and waiting else 0
