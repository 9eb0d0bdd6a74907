"""Who may stop what: the producer policy, read and applied. Plain Python, no I/O.

A producer is identified by what AWS sets (see provenance.py), as a sender ``<kind>:<id>``. The policy names
producers, the senders that are each of them (patterns: exact, or ending in ``*``) and what each may stop
(``allow`` entries). A campaign is stopped only when an entry of its producer's allows it; a sender that is no
producer gets what ``otherwise`` says (``deny`` unless the policy says ``allow``).

    {"producers": {"fraud-service": {"senders": ["sqs:AROAEXAMPLEROLEID:*"],
                                     "allow": [{"streamId": "st-1", "campaignIds": ["cd-2*"]}]}},
     "otherwise": "deny"}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from stop_campaign.domain.models import ID_PATTERN, CampaignType, Producer, RequestRejected, StopRequest
from stop_campaign.domain.readonly import readonly_dataclass

SENDER_KINDS = ("sqs", "events", "alarm", "sns", "direct")
NOT_AUTHORIZED = "not_authorized"
# A sender pattern: a kind, a colon, then printable ASCII; a `*` only at the end (a prefix).
_SENDER_PATTERN = re.compile(r"(sqs|events|alarm|sns|direct):[\x21-\x29\x2b-\x7e]*\*?")
# A campaign id pattern: an id, or the start of one followed by `*` (`*` alone: any id).
_CAMPAIGN_PATTERN = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,127})?\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_PRODUCER_FIELDS = frozenset({"senders", "allow"})
_ENTRY_FIELDS = frozenset({"streamId", "campaignIds", "allActive", "campaignType"})


class NotAuthorized(RequestRejected):
    """A request (or one campaign of it) its producer may not make: ``rejected``, no call made."""

    def __init__(self, message: str) -> None:
        super().__init__(NOT_AUTHORIZED, message)


class PolicyInvalid(ValueError):
    """The policy document breaks the rules; ``problems`` says where and how, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@readonly_dataclass
class Sender:
    """Who sent a message, as AWS reported it."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


def matches(pattern: str, value: str) -> bool:
    """Exact, or a prefix when the pattern ends in ``*``."""
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


@readonly_dataclass
class AllowEntry:
    stream_id: str  # an id, or "*"
    campaign_ids: tuple[str, ...] | None = None  # patterns; None: any campaign named by id
    all_active: bool = False
    campaign_type: CampaignType | None = None  # None: both

    def permits(self, stream_id: str, campaign_type: CampaignType, campaign_id: str | None) -> bool:
        """``campaign_id`` None: the request's all-active."""
        if self.stream_id not in ("*", stream_id):
            return False
        if self.campaign_type is not None and self.campaign_type is not campaign_type:
            return False
        if campaign_id is None:
            return self.all_active
        return self.campaign_ids is None or any(matches(pattern, campaign_id) for pattern in self.campaign_ids)


@readonly_dataclass
class ProducerEntry:
    name: str
    senders: tuple[str, ...]
    allow: tuple[AllowEntry, ...]


@readonly_dataclass
class Verdict:
    """Whether one campaign (or a request's all-active) may be stopped, and which rule decided."""

    allowed: bool
    producer: str | None  # the policy's name for the sender; None when it is no producer (or there is no policy)
    entry: int | None  # the index of the allow entry that allowed it
    why: str


@readonly_dataclass
class ProducerPolicy:
    producers: tuple[ProducerEntry, ...]
    otherwise: Literal["deny", "allow"] = "deny"

    def producer_for(self, sender: Sender) -> tuple[ProducerEntry, str] | None:
        """The producer ``sender`` is and the pattern that says so: an exact pattern wins over prefixes, the
        longest prefix over shorter ones (as the alarm map picks its entries)."""
        text = str(sender)
        best: tuple[ProducerEntry, str] | None = None
        for producer in self.producers:
            for pattern in producer.senders:
                if not matches(pattern, text):
                    continue
                if not pattern.endswith("*"):
                    return producer, pattern
                if best is None or len(pattern) > len(best[1]):
                    best = producer, pattern
        return best

    def judge(self, sender: Sender, stream_id: str, campaign_type: CampaignType, campaign_id: str | None) -> Verdict:
        """May ``sender`` stop ``campaign_id`` of the stream (``None``: every active campaign of it)?"""
        what = f"all active {campaign_type} campaigns" if campaign_id is None else f"campaign {campaign_id}"
        found = self.producer_for(sender)
        if found is None:
            allowed = self.otherwise == "allow"
            return Verdict(allowed, None, None, f"sender {sender} is no producer of the policy; otherwise: "
                                                f"{self.otherwise}")
        producer, pattern = found
        for index, entry in enumerate(producer.allow):
            if entry.permits(stream_id, campaign_type, campaign_id):
                return Verdict(True, producer.name, index,
                               f"producer {producer.name} (sender {pattern}) allow[{index}]")
        return Verdict(False, producer.name, None,
                       f"producer {producer.name} (sender {pattern}) may not stop {what} of stream {stream_id}")

    def name_for(self, sender: Sender) -> str | None:
        found = self.producer_for(sender)
        return found[0].name if found else None


def producer_of(sender: Sender, policy: ProducerPolicy | None) -> Producer:
    return Producer(sender.kind, sender.id, policy.name_for(sender) if policy is not None else None)


@readonly_dataclass
class RequestVerdict:
    """A request judged campaign by campaign: what it may stop and what it may not (with why)."""

    allowed: tuple[str, ...]  # campaign ids it may stop
    refused: tuple[tuple[str, str], ...]  # (campaign id, why)
    all_active_refused: str | None = None  # why, when the request's all-active is not allowed


def judge_request(policy: ProducerPolicy | None, sender: Sender, request: StopRequest,
                  all_active: bool | None = None) -> RequestVerdict:
    """``all_active``: judge it as an all-active request (a continuation of one carries its list as ids)."""
    if policy is None:
        return RequestVerdict(request.campaign_ids, ())
    if request.all_active if all_active is None else all_active:
        verdict = policy.judge(sender, request.stream_id, request.campaign_type, None)
        if not verdict.allowed:
            return RequestVerdict((), (), verdict.why)
        return RequestVerdict(request.campaign_ids, ())
    allowed: list[str] = []
    refused: list[tuple[str, str]] = []
    for campaign_id in request.campaign_ids:
        verdict = policy.judge(sender, request.stream_id, request.campaign_type, campaign_id)
        if verdict.allowed:
            allowed.append(campaign_id)
        else:
            refused.append((campaign_id, verdict.why))
    return RequestVerdict(tuple(allowed), tuple(refused))


# ---- reading a policy document ------------------------------------------------------------------------


def parse_policy(document: Any, *, role_arns: bool = False) -> ProducerPolicy:
    """The policy in ``document`` (decoded JSON), or PolicyInvalid naming every problem. ``role_arns``: a sender
    may name an IAM role or user by ARN (``sqs:arn:aws:iam::…``), as a file for ``campaign-stop producers put``
    may; the stored policy must name it by the id SQS reports (``put`` resolves it)."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise PolicyInvalid(["the policy must be a JSON object with \"producers\""])
    for key in document.keys() - {"producers", "otherwise"}:
        problems.append(f"unknown field {key!r} (expected producers, otherwise)")
    otherwise = document.get("otherwise", "deny")
    if otherwise not in ("deny", "allow"):
        problems.append("otherwise must be \"deny\" or \"allow\"")
    producers = document.get("producers")
    if not isinstance(producers, dict):
        problems.append("producers must be an object: producer name -> {senders, allow}")
        producers = {}
    entries = [_producer(name, value, problems, role_arns) for name, value in producers.items()]
    _check_overlaps(entries, problems)
    if problems:
        raise PolicyInvalid(problems)
    return ProducerPolicy(tuple(entry for entry in entries if entry is not None),
                          "allow" if otherwise == "allow" else "deny")


def _producer(name: str, value: Any, problems: list[str], role_arns: bool) -> ProducerEntry | None:
    where = f"producers.{name}"
    if not name:
        problems.append("a producer's name cannot be empty")
    if not isinstance(value, dict):
        problems.append(f"{where}: must be an object with senders and allow")
        return None
    for key in value.keys() - _PRODUCER_FIELDS:
        problems.append(f"{where}: unknown field {key!r} (expected senders, allow)")
    senders = value.get("senders")
    if not isinstance(senders, list) or not senders:
        problems.append(f"{where}.senders: must be a list of one or more sender patterns")
        senders = []
    for index, pattern in enumerate(senders):
        problem = sender_pattern_problem(pattern, role_arns)
        if problem:
            problems.append(f"{where}.senders[{index}]: {problem}")
    allow = value.get("allow")
    if not isinstance(allow, list):
        problems.append(f"{where}.allow: must be a list of allow entries (may be empty)")
        allow = []
    parsed = [_entry(f"{where}.allow[{index}]", entry, problems) for index, entry in enumerate(allow)]
    return ProducerEntry(name, tuple(s for s in senders if isinstance(s, str)),
                         tuple(entry for entry in parsed if entry is not None))


def sender_pattern_problem(pattern: Any, role_arns: bool = False) -> str | None:
    """What is wrong with a sender pattern, or None."""
    if not isinstance(pattern, str) or not _SENDER_PATTERN.fullmatch(pattern):
        return (f"{pattern!r} is not <kind>:<id> with kind one of {', '.join(SENDER_KINDS)} "
                "(printable, no spaces; '*' only at the end)")
    if is_iam_arn_pattern(pattern) and not role_arns:
        return (f"{pattern!r} names an IAM ARN: SQS reports the role's id (AROA…) or the user's (AIDA…), never its "
                "ARN; `campaign-stop producers put` resolves ARNs to ids")
    return None


def is_iam_arn_pattern(pattern: str) -> bool:
    return pattern.startswith("sqs:arn:")


def _entry(where: str, entry: Any, problems: list[str]) -> AllowEntry | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be an object")
        return None
    before = len(problems)
    for key in entry.keys() - _ENTRY_FIELDS:
        problems.append(f"{where}: unknown field {key!r} (expected {', '.join(sorted(_ENTRY_FIELDS))})")
    stream_id = entry.get("streamId")
    if not (stream_id == "*" or (isinstance(stream_id, str) and ID_PATTERN.match(stream_id))):
        problems.append(f"{where}.streamId: required, a stream id or \"*\"")
    ids = entry.get("campaignIds")
    if ids is not None and (not isinstance(ids, list) or not ids or not all(
            isinstance(value, str) and _CAMPAIGN_PATTERN.fullmatch(value) for value in ids)):
        problems.append(f"{where}.campaignIds: a list of campaign ids, each exact or ending in '*'")
    all_active = entry.get("allActive", False)
    if not isinstance(all_active, bool):
        problems.append(f"{where}.allActive: true or false")
    kind = entry.get("campaignType")
    if kind is not None and kind not in ("sms", "voice"):
        problems.append(f"{where}.campaignType: \"sms\" or \"voice\" (absent: both)")
    if len(problems) > before:
        return None
    return AllowEntry(str(stream_id), tuple(ids) if isinstance(ids, list) else None, all_active is True,
                      CampaignType(kind) if kind else None)


def _check_overlaps(entries: list[ProducerEntry | None], problems: list[str]) -> None:
    """The same pattern in two producers would make one sender two producers: which one it is must be clear."""
    owner: dict[str, str] = {}
    for entry in entries:
        if entry is None:
            continue
        for pattern in entry.senders:
            if pattern in owner and owner[pattern] != entry.name:
                problems.append(f"sender {pattern!r} is in producers {owner[pattern]!r} and {entry.name!r}")
            owner.setdefault(pattern, entry.name)
