"""One account's call schedule, as plain Python (no I/O): a sliding log of calls and a queue of booked places.

Kore.ai documents 60 requests per 60 s per account, but not whether its window is fixed or rolling, nor how big
a burst it takes. A sliding log is safe for both kinds of window and still allows a burst of the whole allowance:
never more than ``calls`` entries within any ``period_seconds``.

The log has two kinds of entry:

* **slots**: calls made, or granted to a caller that is about to make them;
* **booked places**: later calls promised to requests that wait in the stop queue (a continuation carries its
  ticket). Places are kept in ticket order, so waiting requests are served in the order they were booked, and
  each comes back when its place is due instead of all of them at the next free slot.

Three ways to ask for calls now: a ``ticket`` claims its booked places; ``normal`` takes the earliest free
entry of the log (behind every booked place when the queue is long); ``urgent`` (kill switches only) takes the
earliest booked place instead and pushes the queue one place back. A holder whose place went by takes a free
entry if one comes in time, else books again at the end. Every
entry, of either kind, keeps the sliding log valid, so the calls made never exceed the limit in any window.

Hand-written because no well-kept library schedules a shared sliding log with a booked queue; the token-bucket
libraries are per process and have no notion of a queue that outlives the process.
"""

from __future__ import annotations

import bisect
import heapq
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from stop_campaign.domain.readonly import readonly_dataclass

MAX_CALLS = 10_000
MAX_PERIOD_SECONDS = 3600.0
SEND_LAG_SECONDS = 0.25  # the least allowance for a call's grant-to-arrival lag (see RateLimit.paced)
MAX_BOOKED_PLACES = 3_000  # keeps the ledger item far below DynamoDB's 400 KB (about 20 bytes a place)
URGENT = "urgent"
NORMAL = "normal"

_LIMIT_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*")
# Epoch seconds as floats are about 2e-7 apart today: "one period later" must not fail on rounding.
_TIME_TOLERANCE = 1e-6


@readonly_dataclass
class RateLimit:
    calls: int
    period_seconds: float

    def __post_init__(self) -> None:
        if not 1 <= self.calls <= MAX_CALLS:
            raise ValueError(f"rate limit requests must be 1..{MAX_CALLS}, not {self.calls}")
        if not 0 < self.period_seconds <= MAX_PERIOD_SECONDS:
            raise ValueError(
                f"rate limit seconds must be more than 0 and at most {MAX_PERIOD_SECONDS:g}, not {self.period_seconds}"
            )

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"60/60"``: 60 requests per 60 seconds."""
        match = _LIMIT_PATTERN.fullmatch(text)
        if match is None:
            raise ValueError(f"rate limit {text!r} must look like <requests>/<seconds>, e.g. 60/60")
        return cls(int(match[1]), float(match[2]))

    def paced(self) -> RateLimit:
        """The limit to pace by: the platform counts calls when they arrive, and a call arrives a little after
        its grant (threads waking, a token minted, the request on the wire). Two grants one period apart can
        arrive closer than that, so pacing keeps each period this much longer: 1 % of it, at least 0.25 s."""
        return RateLimit(self.calls, self.period_seconds + max(SEND_LAG_SECONDS, self.period_seconds / 100))

    @property
    def place_grace(self) -> float:
        """How long a booked place waits for its holder once due: a little, since a place nobody claims is a
        call the account never makes (the holder, coming later, is served first: see ``Schedule.claim``)."""
        return min(1.0, self.period_seconds / 4)


@dataclass(slots=True)
class Change:
    """What one caller asks of the schedule in one read-and-write of the ledger."""

    released: tuple[float, ...] = ()  # granted slots that will not be used
    pause_until: float | None = None  # a 429: nothing is granted before then
    reserve: dict[str, int] = field(default_factory=dict)  # lane (URGENT, NORMAL or a ticket) -> calls wanted now
    book: dict[str, int] = field(default_factory=dict)  # ticket -> places it should hold (no fewer, no more)
    not_after: float = math.inf  # grants later than this are of no use to the caller
    # Per lane, when its callers' deadlines differ from the writer's (a kill switch with time to wait and routine
    # callers with little share one trip to the ledger): grants later than this are of no use to that lane.
    reserve_by: dict[str, float] = field(default_factory=dict)
    normal_horizon: float = math.inf  # NORMAL grants at most this far ahead: later ones are booked places instead

    @property
    def writes(self) -> bool:
        return bool(self.released or self.pause_until is not None or any(self.reserve.values()) or self.book)


@dataclass(slots=True)
class Applied:
    grants: dict[str, list[float]]  # per lane, ascending
    next_free: dict[str, float]  # per lane asked for: the earliest a further grant could be
    first_place: dict[str, float | None]  # per ticket booked: when its first place is due (None: none held)
    paused_until: float
    changed: bool


@dataclass(slots=True)
class Schedule:
    """One account's log. ``places[i]`` belongs to ``tickets[i]``; both lists are in queue order."""

    slots: list[float] = field(default_factory=list)
    places: list[float] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)
    paused_until: float = 0.0

    # -- the one entry point -------------------------------------------------------------------------------

    def apply(self, change: Change, now: float, limit: RateLimit) -> Applied:
        before = (len(self.slots), len(self.places), self.paused_until)
        self.trim(now, limit)
        changed = (len(self.slots), len(self.places)) != before[:2]
        for grant in change.released:
            changed = _remove(self.slots, grant) or changed
        if change.pause_until is not None and change.pause_until > self.paused_until:
            self.paused_until = change.pause_until
            self._retime_places(limit)
            changed = True
        start = max(now, self.paused_until)
        grants: dict[str, list[float]] = {}
        next_free: dict[str, float] = {}
        # Kill switches first, then holders of places, then everybody else.
        lanes = sorted(change.reserve, key=lambda lane: (lane != URGENT, lane == NORMAL))
        queue_before = (list(self.places), list(self.tickets))
        for lane in lanes:
            wanted = change.reserve[lane]
            not_after = change.reserve_by.get(lane, change.not_after)
            if lane == URGENT:
                got = self.grant_urgent(wanted, start, not_after, limit)
            elif lane == NORMAL:
                got = self.grant(wanted, start, min(not_after, now + change.normal_horizon), limit)
            else:
                got = self.claim(lane, wanted, start, not_after, limit)
            grants[lane] = got
            changed = changed or bool(got)
            next_free[lane] = self.next_free_for(lane, start, limit)
        changed = changed or (self.places, self.tickets) != queue_before
        first_place: dict[str, float | None] = {}
        for ticket, places in change.book.items():
            changed = self.book(ticket, places, start, limit) or changed
            first_place[ticket] = self.first_place(ticket)
        return Applied(grants, next_free, first_place, self.paused_until, changed)

    # -- the parts ---------------------------------------------------------------------------------------

    def trim(self, now: float, limit: RateLimit) -> None:
        """Forget what can no longer constrain a grant: slots older than a period (but the last ``calls`` of
        them), and places due so long ago that their holder is not coming for them."""
        first_future = bisect.bisect_right(self.slots, now)
        first_kept = max(bisect.bisect_right(self.slots, now - limit.period_seconds), first_future - limit.calls)
        del self.slots[:first_kept]
        cutoff = now - limit.place_grace
        if self.places and self.places[0] < cutoff:
            kept = [(at, ticket) for at, ticket in zip(self.places, self.tickets, strict=True) if at >= cutoff]
            self.places = [at for at, _ in kept]
            self.tickets = [ticket for _, ticket in kept]

    def entries(self) -> list[float]:
        return list(heapq.merge(self.slots, self.places))

    def grant(self, count: int, start: float, not_after: float, limit: RateLimit) -> list[float]:
        """Up to ``count`` earliest free entries, none after ``not_after``, taken as slots."""
        log = self.entries()
        grants: list[float] = []
        for _ in range(count):
            at = earliest_slot(log, start, limit)
            if at > not_after:
                break
            bisect.insort(log, at)
            bisect.insort(self.slots, at)
            grants.append(at)
            start = at  # each entry only adds constraints: the next grant is never earlier
        return grants

    def grant_urgent(self, count: int, start: float, not_after: float, limit: RateLimit) -> list[float]:
        """Ahead of the queue: a free entry when one comes before the first booked place, else that place,
        whose ticket (and every ticket behind it) moves one place back."""
        grants: list[float] = []
        for _ in range(count):
            log = self.entries()
            free = earliest_slot(log, start, limit)
            index = bisect.bisect_left(self.places, start)
            take_place = index < len(self.places) and self.places[index] < free
            at = self.places[index] if take_place else free
            if at > not_after:
                break
            if take_place:
                # The queue keeps its order and its length: one more place at its end, the tickets shift back.
                end = earliest_slot(log, self.places[-1], limit)
                del self.places[index]
                self.places.append(end)
            bisect.insort(self.slots, at)
            grants.append(at)
        return grants

    def claim(self, ticket: str, count: int, start: float, not_after: float, limit: RateLimit) -> list[float]:
        """The ticket's places that are due by ``not_after``. A holder whose place went by (or who holds none:
        its booking failed, the queue was full, or it needs one more call than it booked) takes a free entry in
        time if there is one, else books again at the end of the queue: it never takes the place of a holder who
        came on time (each such move made that holder late in turn, and the queue wasted place after place)."""
        held = self._positions(ticket)
        grants: list[float] = []
        late = max(0, count - len(held))
        for index in reversed(held[:count]):  # from the back, so earlier indexes stay valid
            at = self.places[index]
            if at > not_after:
                continue
            del self.places[index], self.tickets[index]
            if at >= start - _TIME_TOLERANCE:
                bisect.insort(self.slots, at)
                grants.append(at)
            else:  # due before now (or before a pause ends): a call then is no longer possible
                late += 1
        if late:
            grants.extend(self.grant(late, start, not_after, limit))
        return sorted(grants)

    def book(self, ticket: str, places: int, start: float, limit: RateLimit) -> bool:
        """Make the ticket hold ``places`` places: new ones at the end of the queue, surplus ones given back."""
        held = self._positions(ticket)
        if len(held) > places:
            for index in reversed(held[places:]):
                del self.places[index], self.tickets[index]
            return True
        wanted = min(places - len(held), MAX_BOOKED_PLACES - len(self.places))
        if wanted <= 0:
            return False
        log = self.entries()
        at = max(start, self.places[-1] if self.places else start)
        for _ in range(wanted):
            at = earliest_slot(log, at, limit)
            bisect.insort(log, at)
            self.places.append(at)  # never earlier than the queue's end: appending keeps it sorted
            self.tickets.append(ticket)
        return True

    def first_place(self, ticket: str) -> float | None:
        held = self._positions(ticket)
        return self.places[held[0]] if held else None

    def next_free_for(self, lane: str, start: float, limit: RateLimit) -> float:
        if lane == URGENT:
            log = self.entries()
            free = earliest_slot(log, start, limit)
            index = bisect.bisect_left(self.places, start)
            return min(free, self.places[index]) if index < len(self.places) else free
        if lane != NORMAL:
            place = self.first_place(lane)
            if place is not None:
                return place
            return self.next_free_for(URGENT, start, limit)
        return earliest_slot(self.entries(), start, limit)

    def _positions(self, ticket: str) -> list[int]:
        return [index for index, held in enumerate(self.tickets) if held == ticket]

    def _retime_places(self, limit: RateLimit) -> None:
        """A pause: every place moves to the earliest the log allows after it, the queue in the same order."""
        log = list(self.slots)
        at = self.paused_until
        times: list[float] = []
        for _ in self.places:
            at = earliest_slot(log, at, limit)
            bisect.insort(log, at)
            times.append(at)
        self.places = times


# ---- The sliding log, as pure functions on a sorted list of times --------------------------------------


def fits(log: Sequence[float], at: float, limit: RateLimit) -> bool:
    """Whether one more entry at ``at`` keeps every entry ``period`` after the one ``calls`` places before it."""
    index = bisect.bisect_right(log, at)

    def entry(position: int) -> float:  # the log with ``at`` inserted at ``index``
        if position < index:
            return log[position]
        return at if position == index else log[position - 1]

    # Only the pairs that span the new entry change; every other pair is as it was.
    for upper in range(max(index, limit.calls), min(len(log), index + limit.calls) + 1):
        if entry(upper) - entry(upper - limit.calls) < limit.period_seconds - _TIME_TOLERANCE:
            return False
    return True


def earliest_slot(log: Sequence[float], start: float, limit: RateLimit) -> float:
    """Earliest time >= ``start`` at which one more entry fits the sliding log.

    A full window frees up only when one of its entries ages out, so the candidates are ``start`` and every
    ``entry + period`` after it. Gaps left by released grants are found too, not only the end.
    """
    if fits(log, start, limit):
        return start
    for position in range(bisect.bisect_right(log, start - limit.period_seconds), len(log)):
        candidate = log[position] + limit.period_seconds
        if candidate > start and fits(log, candidate, limit):
            return candidate
    return max(start, log[-1] + limit.period_seconds)  # not reached: after the last entry's period all fit


def busiest_window(times: Iterable[float], period: float) -> int:
    """Most entries within any half-open window of ``period`` seconds (what a platform's limit counts)."""
    ordered = sorted(times)
    busiest = upper = 0
    for lower, start in enumerate(ordered):
        while upper < len(ordered) and ordered[upper] < start + period - _TIME_TOLERANCE:
            upper += 1
        busiest = max(busiest, upper - lower)
    return busiest


def _remove(log: list[float], at: float) -> bool:
    position = bisect.bisect_left(log, at)
    if position < len(log) and log[position] == at:
        del log[position]
        return True
    return False
