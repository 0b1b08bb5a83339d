"""The soak's verdict: the warehouse against the sandbox's truth, per listener (issue 27, item 2).

What the platform owes is judged against what the API *could* show when it was polled, not
against every play: Spotify lists only a listener's latest 50 plays, so plays that came and
went between two polls (a revoked token, a long outage) cannot be fetched by anyone. The
sandbox records each simulated instant it answered a whole recently-played page to a listener
(``SandboxState.shown_at``); from those instants and the listener's history:

- **visible**: every play among the latest 50 at one of those instants. Each must be in the
  warehouse exactly once (``lost``: visible and absent; ``duplicated``: a (listener, played_at)
  held more than once, or a row that is no play of the listener at all).
- **unseen spans**: between two consecutive instants whose pages do not overlap (the second
  page's oldest newer than the first's newest; the second page is then full), the span between
  them was never shown. Whether plays lie in it no client of the API can tell, so the platform
  may record a (possible) gap over it.
- **true gaps**: the unseen spans with plays in them: never shown, so they may be missing, but
  the platform must record a gap covering them (``ingest_gaps``). A recorded gap that covers no
  unseen span of any listener is false: the platform had seen continuity there (the table has
  no listener column, so any listener's spans count). An unseen span the listener was silent
  in is not a true gap, but a gap recorded over it is not false either (the 168-hour soaks of
  2026-12-08: a full window after 81 silent minutes).

A listener removed mid-soak (``users remove``, their plays kept) is judged up to the instant of
their removal: pages shown later are not owed, and any poll after it is counted
(``polled_after_removal``: nobody should ask the API for someone no longer registered). A
listener added mid-soak is judged from their first run: the first page shown (their latest 50
plays) and every one after, as for anyone.

Pure functions over plain values, so each loss or duplicate the soak finds can become a
focused test of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from spotify_sandbox.constants import RECENTLY_PLAYED_WINDOW


class _Play(Protocol):
    @property
    def played_at_ms(self) -> int: ...


class History(Protocol):
    """What the verdict asks of a sandbox listener (``spotify_sandbox.listener.Listener``)."""

    def recent(self, now_ms: int, n: int = ...) -> Sequence[_Play]: ...

    def between(self, start_ms: int, end_ms: int) -> Sequence[_Play]: ...


@dataclass(frozen=True)
class TrueGap:
    """Plays never shown: newer than ``after_ms`` (the newest of one page), older than
    ``before_ms`` (the oldest of the next page)."""

    after_ms: int
    before_ms: int
    missed: int


@dataclass
class ListenerVerdict:
    user_id: str
    polls: int
    visible: int
    in_warehouse: int
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    true_gaps: list[TrueGap] = field(default_factory=list)
    #: The simulated instant (ms) the listener was removed, or None for a listener still registered.
    removed_at_ms: int | None = None
    #: Pages shown to the listener after their removal (each a poll nobody should have made).
    polled_after_removal: int = 0
    #: Every span never shown (``unseen_spans``), the true gaps and the silent ones alike.
    unseen: list[TrueGap] = field(default_factory=list)


def truth(history: History, shown_ms: Iterable[int]) -> tuple[set[int], list[TrueGap]]:
    """(every played_at shown at one of ``shown_ms``, the true gaps between consecutive instants)."""
    visible, unseen = unseen_spans(history, shown_ms)
    return visible, [g for g in unseen if g.missed]


def unseen_spans(history: History, shown_ms: Iterable[int]) -> tuple[set[int], list[TrueGap]]:
    """(every played_at shown at one of ``shown_ms``, each span between consecutive instants whose
    pages did not overlap, with the plays it hid: none for a listener silent then)."""
    visible: set[int] = set()
    gaps: list[TrueGap] = []
    previous_newest: int | None = None
    for now_ms in sorted(set(shown_ms)):
        page = [p.played_at_ms for p in history.recent(now_ms, RECENTLY_PLAYED_WINDOW)]
        visible.update(page)
        if not page:
            continue
        if previous_newest is not None and min(page) > previous_newest:
            missed = [
                p for p in history.between(previous_newest, min(page) - 1) if p.played_at_ms < min(page)
            ]
            gaps.append(TrueGap(previous_newest, min(page), len(missed)))
        previous_newest = max(page) if previous_newest is None else max(previous_newest, max(page))
    return visible, gaps


def judge_listener(
    user_id: str,
    history: History,
    shown_ms: Sequence[int],
    warehouse_ms: Sequence[int],
    removed_at_ms: int | None = None,
) -> ListenerVerdict:
    """One listener's verdict: ``warehouse_ms`` is every played_at (ms) the warehouse holds for them.

    ``removed_at_ms``: the listener was removed then; only the pages shown up to it are owed."""
    after = [] if removed_at_ms is None else sorted({ms for ms in shown_ms if ms > removed_at_ms})
    owed = [ms for ms in shown_ms if ms not in after]
    visible, unseen = unseen_spans(history, owed)
    counts = Counter(warehouse_ms)
    held = set(counts)
    unexpected = sorted(
        ms for ms in held if not any(p.played_at_ms == ms for p in history.between(ms - 1, ms))
    )
    return ListenerVerdict(
        user_id=user_id,
        polls=len(set(owed)),
        visible=len(visible),
        in_warehouse=len(warehouse_ms),
        lost=sorted(visible - held),
        duplicated=sorted(ms for ms, n in counts.items() if n > 1),
        unexpected=unexpected,
        true_gaps=[g for g in unseen if g.missed],
        removed_at_ms=removed_at_ms,
        polled_after_removal=len(after),
        unseen=unseen,
    )


def covers(recorded: tuple[int, int], gap: TrueGap) -> bool:
    """Whether a recorded gap (gap_start, gap_end in ms) spans the true gap's unseen plays."""
    start, end = recorded
    return start <= gap.after_ms and end >= gap.before_ms


def gap_counts(
    verdicts: Sequence[ListenerVerdict], recorded: Sequence[tuple[int, int]]
) -> tuple[int, int, int]:
    """(true gaps recorded, true gaps, recorded gaps that cover no unseen span)."""
    true_gaps = [g for v in verdicts for g in v.true_gaps]
    unseen = [g for v in verdicts for g in v.unseen]
    found = sum(1 for g in true_gaps if any(covers(r, g) for r in recorded))
    false = sum(1 for r in recorded if not any(covers(r, g) for g in unseen))
    return found, len(true_gaps), false


def verdict_line(
    hours: float,
    runs: int,
    faults: int,
    verdicts: Sequence[ListenerVerdict],
    gaps: tuple[int, int, int],
    torn: int,
) -> str:
    """``soak: H hours, R runs, F faults, plays exact (lost 0, duplicated 0), gaps recorded G of G, torn files 0``."""
    lost = sum(len(v.lost) for v in verdicts)
    duplicated = sum(len(v.duplicated) + len(v.unexpected) for v in verdicts)
    exact = "exact" if lost == 0 and duplicated == 0 else "NOT exact"
    found, total, false = gaps
    false_part = f" ({false} false)" if false else ""
    after_removal = sum(v.polled_after_removal for v in verdicts)
    removed_part = f", polled after removal {after_removal}" if after_removal else ""
    return (
        f"soak: {hours:g} hours, {runs} runs, {faults} faults, plays {exact} (lost {lost}, duplicated "
        f"{duplicated}), gaps recorded {found} of {total}{false_part}, torn files {torn}{removed_part}"
    )


def passed(verdicts: Sequence[ListenerVerdict], gaps: tuple[int, int, int], torn: int) -> bool:
    found, total, false = gaps
    exact = all(not (v.lost or v.duplicated or v.unexpected) for v in verdicts)
    left_alone = all(v.polled_after_removal == 0 for v in verdicts)
    return exact and left_alone and found == total and false == 0 and torn == 0
