"""What a merge into a table did, the same answer from every table module and both dialects."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MergeResult:
    """What a merge did: ``inserted`` new rows, ``duplicates`` rows already present (skipped).

    A merge across sources (``scrobbles/merge.py``) also says how many rows were ``matched`` to
    a play another source recorded (counted neither inserted nor duplicates), how many rows
    without a Spotify id were ``replaced`` (by Spotify's, or by an earlier listen's row; each
    replacing row is in ``inserted``), and the counts per ``batch_id`` of the rows (``by_batch``:
    ``added``, ``duplicates``, ``matched``), so an import's report stays exact per file.
    """

    inserted: int
    duplicates: int
    total_rows: int
    matched: int = 0
    replaced: int = 0
    by_batch: dict[str, dict[str, int]] = field(default_factory=dict)
