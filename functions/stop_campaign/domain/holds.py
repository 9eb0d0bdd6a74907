"""Holds: an alarm-map entry with ``hold: true`` keeps its campaigns stopped while its alarm stays in ALARM. Plain
Python, no I/O: the item shapes of the holds table (HOLDS_TABLE) and what a hold check decides.

One item per hold, keyed by the alarm request's id (``requestId``, what results call ``holdOf``):

* ``alarmName``, ``alarmArn``, ``alarmChangedAt`` (the state change that began it), ``producer`` (JSON),
  ``createdAt``, ``status`` (``active``, ``released``, ``ended``), ``endedAt`` / ``endReason`` once it ends;
* ``scopes``: a string set, one ``<stream>|<type>|<account>|<ids or all-active>`` per stream the hold covers;
* ``campaigns``: a string set, one ``<stream>|<type>|<account>|<campaign>`` per held campaign: the entry's
  explicit ids, or for ``all-active`` the campaigns the alarm's request stopped or found stopped. A request that
  continues in later invocations adds to the sets (DynamoDB ADD), so every segment's campaigns are held.

Ids never hold ``|`` (models.ID_PATTERN), so the parts split back exactly. An ended hold keeps its item for
``ENDED_KEEP_DAYS`` (``expiresAt``, the table's TTL), so ``hold list`` stays one small Scan.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from stop_campaign.domain.models import ALL_ACTIVE, Outcome, Producer, ResultEvent, StopRequest
from stop_campaign.domain.readonly import readonly_dataclass

PARTITION_KEY = "requestId"
TTL_ATTRIBUTE = "expiresAt"
ACTIVE, RELEASED, ENDED = "active", "released", "ended"
ENDED_KEEP_DAYS = 30  # how long an ended hold stays listed (with --all) before the table's TTL removes it
SEPARATOR = "|"
IDS = "ids"
HELD_OUTCOMES = (Outcome.STOPPED, Outcome.ALREADY_STOPPED)  # what "all-active" holds of what its request did


@readonly_dataclass
class Scope:
    """One stream of a hold: the list call the check makes, whose rows it looks for its campaigns in."""

    stream_id: str
    campaign_type: str
    account_id: str  # "" when the request named none (the credentials' account is used)
    selection: str = IDS  # ``ids`` or ``all-active``: what the alarm-map entry asked for (for listings)

    def key(self) -> str:
        return SEPARATOR.join((self.stream_id, self.campaign_type, self.account_id))

    def encoded(self) -> str:
        return SEPARATOR.join((self.stream_id, self.campaign_type, self.account_id, self.selection))


@readonly_dataclass
class Hold:
    """An active (or ended) hold, as read back from its item."""

    hold_of: str
    alarm_name: str
    alarm_arn: str | None
    alarm_changed_at: str | None
    producer: Producer | None
    created_at: str
    status: str
    scopes: tuple[Scope, ...]
    campaigns: frozenset[str]  # encoded: ``<stream>|<type>|<account>|<campaign>``

    def held_in(self, scope: Scope) -> set[str]:
        """The campaign ids this hold keeps stopped in ``scope``."""
        prefix = scope.key() + SEPARATOR
        return {entry[len(prefix):] for entry in self.campaigns if entry.startswith(prefix)}


def scope_of(request: StopRequest, all_active: bool = False) -> Scope:
    """The stream a request covers; ``all_active``: the request continues one that asked for all-active."""
    return Scope(request.stream_id, request.campaign_type.value, request.account_id or "",
                 ALL_ACTIVE if request.all_active or all_active else IDS)


def held_entries(request: StopRequest, all_active: bool, results: list[ResultEvent]) -> set[str]:
    """The campaigns one alarm request holds (encoded): its explicit ids (those its producer may stop: the planner
    removed the others), or, for ``all-active`` (``all_active``: the request or the request it continues), the
    campaigns of ``results`` (this invocation's, for that request) that were stopped or found stopped."""
    key = scope_of(request).key()
    if all_active and not request.campaign_ids:
        ids = [result.campaign_id for result in results if result.outcome in HELD_OUTCOMES and result.campaign_id]
    else:
        ids = list(request.campaign_ids)
    return {f"{key}{SEPARATOR}{campaign_id}" for campaign_id in ids}


def to_restop(held: set[str], listed_running: list[str]) -> list[str]:
    """Of the campaigns a stream lists as running (stoppable statuses), those the hold keeps stopped, in list
    order. A held campaign the list does not show is stopped still (or gone): nothing to do for it."""
    return [campaign_id for campaign_id in dict.fromkeys(listed_running) if campaign_id in held]


def check_time(asked: Any, now: datetime, interval_seconds: int) -> str:
    """The time a hold check is named by: the schedule's own time when the payload carries one (``at``: a retry of
    that check has the same), else now, down to the check interval, so that two invocations of one check share
    their request ids (and so their stops' idempotency records: a repeated check makes no second call)."""
    moment = _moment(asked)
    if moment is None:
        seconds = int(now.timestamp()) // interval_seconds * interval_seconds
        moment = datetime.fromtimestamp(seconds, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_request_id(hold_of: str, at: str) -> str:
    """``hold:<holdOf>:<check time>``; a digest of the hold's id stands in when that would exceed 256 characters
    (a request id's limit)."""
    natural = f"hold:{hold_of}:{at}"
    if len(natural) <= 256:
        return natural
    return f"hold:~{hashlib.sha256(hold_of.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}:{at}"


def ended_by(hold: Hold, changed_at: str | None) -> bool:
    """Whether an alarm state change out of ALARM at ``changed_at`` ends ``hold``: only a change after the one that
    began it (a late OK of an earlier episode must not end the hold of a new one). Unknown times end it."""
    began, left = _moment(hold.alarm_changed_at), _moment(changed_at)
    return began is None or left is None or left >= began


def item_fields(request: StopRequest, created_at: str) -> dict[str, Any]:
    """What a hold's item keeps of the alarm request that begins it (set once, by the first write)."""
    fields = {
        "alarmName": alarm_name_of(request),
        "alarmArn": request.alarm_arn,
        "alarmChangedAt": request.requested_at,
        "producer": json.dumps(request.producer.as_dict(), sort_keys=True) if request.producer else None,
        "createdAt": created_at,
        "status": ACTIVE,
    }
    return {name: value for name, value in fields.items() if value}


def alarm_name_of(request: StopRequest) -> str:
    """The alarm's name: what requested_by says after ``cloudwatch-alarm:`` (alarms.requests_for_alarm sets it;
    cut at 256 characters, so the ARN's last part wins when it is longer)."""
    if request.alarm_arn and ":alarm:" in request.alarm_arn:
        return request.alarm_arn.split(":alarm:", 1)[1]
    return (request.requested_by or "").removeprefix("cloudwatch-alarm:")


def hold_from_item(item: dict[str, Any]) -> Hold:
    """A hold from its item (plain values: strings, and Python sets for the string sets)."""
    scopes = []
    for encoded in sorted(item.get("scopes") or ()):
        parts = str(encoded).split(SEPARATOR)
        if len(parts) == 4:
            scopes.append(Scope(*parts))
    producer = item.get("producer")
    parsed = json.loads(producer) if isinstance(producer, str) else None
    return Hold(
        hold_of=str(item[PARTITION_KEY]), alarm_name=str(item.get("alarmName") or ""),
        alarm_arn=item.get("alarmArn"), alarm_changed_at=item.get("alarmChangedAt"),
        producer=Producer(parsed["kind"], parsed["id"], parsed.get("name")) if isinstance(parsed, dict) else None,
        created_at=str(item.get("createdAt") or ""), status=str(item.get("status") or ACTIVE),
        scopes=tuple(scopes), campaigns=frozenset(str(entry) for entry in item.get("campaigns") or ()),
    )


def listing_row(hold: Hold, item: dict[str, Any] | None = None) -> dict[str, Any]:
    """A hold as ``campaign-stop hold list`` shows it."""
    item = item or {}
    return {
        "requestId": hold.hold_of,
        "alarmName": hold.alarm_name,
        "alarmArn": hold.alarm_arn,
        "status": hold.status,
        "since": hold.created_at,
        "streams": [
            {"streamId": scope.stream_id, "campaignType": scope.campaign_type, "accountId": scope.account_id or None,
             "selection": scope.selection, "campaignIds": sorted(hold.held_in(scope))}
            for scope in hold.scopes
        ],
        "producer": hold.producer.as_dict() if hold.producer else None,
        **({"endedAt": item["endedAt"]} if item.get("endedAt") else {}),
        **({"endReason": item["endReason"]} if item.get("endReason") else {}),
    }


def _moment(value: Any) -> datetime | None:
    """An ISO-8601 time (CloudWatch writes ``+0000``), aware; None for anything else."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():  # +0000 -> +00:00
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
