"""The hold check, a direct invocation whose payload is ``{"action": "hold-check"}`` (what the template's schedule
sends, with the schedule's time as ``at``): service/holds.py does the work. The answer lists each active hold
(``held`` with the campaigns stopped again, or ``ended`` and why) and the results published. It raises nothing a
hold's store or CloudWatch may raise: the next check, HOLD_CHECK_SECONDS later, is its retry (a raise would send
the check to the stop queue as a failed invocation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from stop_campaign.domain.sendable import sendable_json
from stop_campaign.sources.invocation import Invocation

if TYPE_CHECKING:  # made at the first hold check (composition.hold_checker)
    from stop_campaign.service.holds import HoldChecker

logger = Logger(child=True)

HOLD_CHECK_ACTION = "hold-check"

__all__ = ["HOLD_CHECK_ACTION", "is_hold_check", "serve_hold_check"]


def is_hold_check(event: Any) -> bool:
    return isinstance(event, dict) and event.get("action") == HOLD_CHECK_ACTION


def serve_hold_check(event: dict[str, Any], invocation: Invocation, make_checker: Callable[[], HoldChecker] | None,
                     own_account: str | None) -> dict[str, Any]:
    if make_checker is None:
        logger.warning("Hold check invoked, but HOLDS_TABLE is not set: no hold is kept")
        return {"holds": [], "results": [], "note": "HOLDS_TABLE is not set: no hold is kept"}
    checker = make_checker()
    try:
        report = checker.check(event, invocation.deadline, invocation.started, own_account)
    except Exception as error:  # the holds table or CloudWatch: nothing was stopped, the next check tries again
        logger.exception("Hold check failed")
        checker.count_failure()
        return {"holds": [], "results": [], "error": f"{type(error).__name__}: {error}"[:300]}
    return {"holds": report.holds, "results": [sendable_json(result.as_message()) for result in report.results]}
