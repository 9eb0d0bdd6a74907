"""The account's schedule (pure): whatever mix of grants, kill switches, bookings, claims, releases and pauses,
the calls granted never exceed the limit in any window, and booked places keep their order."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from stop_campaign.pacing.rate_schedule import NORMAL, URGENT, Change, RateLimit, Schedule, busiest_window

LIMIT = RateLimit(5, 10.0)
T0 = 1_700_000_000.0
TICKETS = ["0" * 16, "1" * 16, "2" * 16]

steps = st.lists(
    st.tuples(
        st.floats(0, 6),  # seconds since the last step
        st.sampled_from(["normal", "urgent", "book", "claim", "release", "pause"]),
        st.integers(1, 6),
        st.sampled_from(TICKETS),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_calls_granted_never_exceed_the_limit_in_any_window(plan: list[tuple[float, str, int, str]]) -> None:
    schedule, now = Schedule(), T0
    granted: list[float] = []
    for gap, kind, count, ticket in plan:
        now += gap
        lane = {"normal": NORMAL, "urgent": URGENT, "claim": ticket}.get(kind)
        change = Change(not_after=now + 8)
        if lane is not None:
            change.reserve = {lane: count}
        elif kind == "book":
            change.book = {ticket: count}
        elif kind == "release" and granted and granted[-1] > now:
            change.released = (granted.pop(),)  # a grant not yet used goes back
        elif kind == "pause":
            change.pause_until = now + count
        applied = schedule.apply(change, now, LIMIT)
        for times in applied.grants.values():
            assert all(at >= max(now, schedule.paused_until) - 1e-6 and at <= now + 8 for at in times)
            granted.extend(times)
        assert schedule.places == sorted(schedule.places)
        assert len(schedule.places) == len(schedule.tickets)
    assert busiest_window(granted, LIMIT.period_seconds) <= LIMIT.calls
    # And what is still promised would keep it so.
    assert busiest_window(granted + schedule.places, LIMIT.period_seconds) <= LIMIT.calls


def test_tickets_are_served_in_the_order_they_were_booked() -> None:
    schedule = Schedule()
    schedule.apply(Change(reserve={NORMAL: 5}), T0, LIMIT)
    firsts = [schedule.apply(Change(book={ticket: 3}), T0, LIMIT).first_place[ticket] for ticket in TICKETS]
    assert firsts == sorted(firsts) and len(set(firsts)) == 2  # 5 a window: the second ticket shares one
    assert schedule.apply(Change(reserve={URGENT: 1}), T0, LIMIT).grants[URGENT] == [T0 + 10]
    assert [schedule.first_place(ticket) for ticket in TICKETS] == [T0 + 10, T0 + 10, T0 + 20]


def test_a_holder_whose_place_went_by_takes_a_free_entry_in_time() -> None:
    schedule = Schedule()
    schedule.apply(Change(reserve={NORMAL: 5}), T0, LIMIT)
    schedule.apply(Change(book={TICKETS[0]: 1, TICKETS[1]: 4}), T0, LIMIT)  # the window at T0 + 10, all booked
    late = T0 + 10 + LIMIT.place_grace + 0.5  # the places due at T0 + 10 went by unclaimed
    applied = schedule.apply(Change(reserve={TICKETS[0]: 1}, not_after=math.inf), late, LIMIT)
    assert applied.grants[TICKETS[0]] == [late]  # the unclaimed entries are free again: no queue to jump


def test_a_ticket_holds_exactly_the_places_it_books_again() -> None:
    schedule = Schedule()
    schedule.apply(Change(reserve={NORMAL: 5}), T0, LIMIT)
    schedule.apply(Change(book={TICKETS[0]: 4}), T0, LIMIT)
    schedule.apply(Change(book={TICKETS[0]: 4}), T0, LIMIT)  # a redelivered hand-over
    assert schedule.tickets.count(TICKETS[0]) == 4
    schedule.apply(Change(book={TICKETS[0]: 1}), T0, LIMIT)
    assert schedule.tickets == [TICKETS[0]]


def test_a_late_holder_that_cannot_be_served_in_time_books_again_and_takes_no_place_from_those_on_time() -> None:
    schedule = Schedule()
    schedule.apply(Change(reserve={NORMAL: 5}), T0, LIMIT)
    schedule.apply(Change(book={TICKETS[0]: 1, TICKETS[1]: 9}), T0, LIMIT)
    late = T0 + 10.5  # its place (T0 + 10) went by a moment ago; the next free entry is beyond its deadline
    applied = schedule.apply(Change(reserve={TICKETS[0]: 1}, not_after=late + 1), late, LIMIT)
    assert applied.grants[TICKETS[0]] == [] and applied.changed  # the ledger is written: the place is gone
    assert schedule.first_place(TICKETS[0]) is None
    assert schedule.tickets == [TICKETS[1]] * 9 and schedule.places == [T0 + 10] * 4 + [T0 + 20] * 5  # unmoved
    applied = schedule.apply(Change(book={TICKETS[0]: 1}), late, LIMIT)  # its hand-over books again
    assert applied.first_place[TICKETS[0]] == T0 + 30  # at the end


def test_each_lane_is_granted_within_its_own_deadline_on_a_shared_trip_to_the_ledger() -> None:
    schedule = Schedule()
    schedule.apply(Change(reserve={NORMAL: 5}), T0, LIMIT)  # the window is spent until T0 + 10
    change = Change(reserve={NORMAL: 1, URGENT: 1}, not_after=T0 + 1, reserve_by={URGENT: T0 + 30})
    applied = schedule.apply(change, T0, LIMIT)
    assert applied.grants == {URGENT: [T0 + 10], NORMAL: []}  # the kill switch can wait; the routine caller cannot
