"""The producer policy and who sent a message, as plain Python (domain/policy.py, domain/provenance.py)."""

from __future__ import annotations

import json

import pytest

from stop_campaign.domain.intake import AlarmStateChange, parse_sqs_body
from stop_campaign.domain.models import CampaignType, Continuation, Origin, Producer, Progress, Source, StopRequest
from stop_campaign.domain.policy import PolicyInvalid, Sender, judge_request, parse_policy
from stop_campaign.domain.provenance import Channel, Delivery, Trust, alarm_account, sender_of, signed, verified

SMS, VOICE = CampaignType.SMS, CampaignType.VOICE
CONTRACT_EXAMPLE = {
    "producers": {
        "fraud-service": {
            "senders": ["sqs:AROAEXAMPLEROLEID:*", "events:111122223333/com.example.fraud"],
            "allow": [{"streamId": "st-1", "campaignIds": ["cd-1", "cd-2*"], "allActive": False,
                       "campaignType": "sms"}]},
        "kill-switches": {"senders": ["alarm:123456789012"], "allow": [{"streamId": "*", "allActive": True}]},
    },
    "otherwise": "deny",
}


def sender(text: str) -> Sender:
    kind, _, ident = text.partition(":")
    return Sender(kind, ident)


@pytest.fixture
def policy():
    return parse_policy(CONTRACT_EXAMPLE)


@pytest.mark.parametrize(("who", "stream", "kind", "campaign", "allowed", "entry"), [
    ("sqs:AROAEXAMPLEROLEID:worker-1", "st-1", SMS, "cd-1", True, 0),
    ("sqs:AROAEXAMPLEROLEID:worker-1", "st-1", SMS, "cd-2-late", True, 0),  # a campaignIds prefix
    ("sqs:AROAEXAMPLEROLEID:worker-1", "st-1", SMS, "cd-3", False, None),
    ("sqs:AROAEXAMPLEROLEID:worker-1", "st-1", VOICE, "cd-1", False, None),  # its entry is sms only
    ("sqs:AROAEXAMPLEROLEID:worker-1", "st-2", SMS, "cd-1", False, None),
    ("sqs:AROAEXAMPLEROLEID:worker-1", "st-1", SMS, None, False, None),  # allActive defaults to false
    ("sqs:AROAEXAMPLEROLEID", "st-1", SMS, "cd-1", False, None),  # the pattern wants a session after the id
    ("events:111122223333/com.example.fraud", "st-1", SMS, "cd-1", True, 0),
    ("events:111122223333/com.example.other", "st-1", SMS, "cd-1", False, None),
    ("alarm:123456789012", "st-9", VOICE, None, True, 0),  # streamId "*", allActive
    ("alarm:123456789012", "st-9", VOICE, "cd-any", True, 0),  # no campaignIds: any campaign by id
    ("alarm:999999999999", "st-1", SMS, "cd-1", False, None),
    ("direct:-", "st-1", SMS, "cd-1", False, None),
])
def test_each_campaign_is_allowed_only_by_an_entry_of_its_producer(policy, who, stream, kind, campaign, allowed,
                                                                    entry):
    verdict = policy.judge(sender(who), stream, kind, campaign)
    assert (verdict.allowed, verdict.entry) == (allowed, entry), verdict.why


def test_otherwise_decides_for_senders_that_are_no_producer_only(policy):
    lenient = parse_policy({**CONTRACT_EXAMPLE, "otherwise": "allow"})
    assert lenient.judge(sender("direct:-"), "st-1", SMS, None).allowed
    assert lenient.judge(sender("alarm:123456789012"), "st-1", SMS, None).allowed
    # a producer is held to its own entries, whatever otherwise says
    assert not lenient.judge(sender("sqs:AROAEXAMPLEROLEID:x"), "st-1", SMS, "cd-3").allowed
    assert parse_policy({"producers": {}}).otherwise == "deny"  # the default


def test_an_exact_sender_wins_over_a_prefix_and_the_longest_prefix_over_shorter():
    policy = parse_policy({"producers": {
        "everyone": {"senders": ["sqs:*"], "allow": []},
        "team": {"senders": ["sqs:AROATEAM:*"], "allow": []},
        "one": {"senders": ["sqs:AROATEAM:batch"], "allow": []},
    }})
    assert policy.name_for(sender("sqs:AROATEAM:batch")) == "one"
    assert policy.name_for(sender("sqs:AROATEAM:other")) == "team"
    assert policy.name_for(sender("sqs:AIDAUSER")) == "everyone"
    assert policy.name_for(sender("events:1/x")) is None


def test_a_request_is_judged_campaign_by_campaign_and_all_active_as_a_whole(policy):
    request = StopRequest("st-1", SMS, "r", Source.SQS, "2026-01-01T00:00:00Z", campaign_ids=("cd-1", "cd-3", "cd-2"))
    verdict = judge_request(policy, sender("sqs:AROAEXAMPLEROLEID:w"), request)
    assert verdict.allowed == ("cd-1", "cd-2") and [cid for cid, _ in verdict.refused] == ["cd-3"]
    # a continuation of an all-active carries its list as ids: still judged as all-active
    whole = judge_request(policy, sender("sqs:AROAEXAMPLEROLEID:w"), request, all_active=True)
    assert whole.all_active_refused and not whole.allowed
    assert judge_request(None, sender("sqs:anyone"), request).allowed == request.campaign_ids  # no policy


@pytest.mark.parametrize(("document", "problem"), [
    ([], "must be a JSON object"),
    ({"producers": [], "otherwise": "deny"}, "producers must be an object"),
    ({"producers": {}, "otherwise": "maybe"}, "otherwise must be"),
    ({"producers": {}, "extra": 1}, "unknown field 'extra'"),
    ({"producers": {"p": {"senders": [], "allow": []}}}, "p.senders: must be a list of one or more"),
    ({"producers": {"p": {"senders": ["queue:x"], "allow": []}}}, "is not <kind>:<id>"),
    ({"producers": {"p": {"senders": ["sqs:a*b"], "allow": []}}}, "'*' only at the end"),
    ({"producers": {"p": {"senders": ["sqs:arn:aws:iam::1:role/x"], "allow": []}}}, "names an IAM ARN"),
    ({"producers": {"p": {"senders": ["sqs:x"]}}}, "p.allow: must be a list"),
    ({"producers": {"p": {"senders": ["sqs:x"], "allow": [{"campaignIds": ["cd-1"]}]}}}, "streamId: required"),
    ({"producers": {"p": {"senders": ["sqs:x"], "allow": [{"streamId": "st-1", "campaignIds": ["c*d"]}]}}},
     "campaignIds"),
    ({"producers": {"p": {"senders": ["sqs:x"], "allow": [{"streamId": "st-1", "allActive": "yes"}]}}},
     "allActive: true or false"),
    ({"producers": {"p": {"senders": ["sqs:x"], "allow": [{"streamId": "st-1", "campaignType": "fax"}]}}},
     "campaignType"),
    ({"producers": {"p": {"senders": ["sqs:x"], "allow": [{"streamId": "st-1", "campaignId": "cd-1"}]}}},
     "unknown field 'campaignId'"),
    ({"producers": {"p": {"senders": ["sqs:x"], "allow": []}, "q": {"senders": ["sqs:x"], "allow": []}}},
     "is in producers 'p' and 'q'"),
])
def test_an_invalid_policy_says_what_is_wrong(document, problem):
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy(document)
    assert any(problem in line for line in raised.value.problems), raised.value.problems


def test_role_arns_are_accepted_only_where_they_will_be_resolved():
    document = {"producers": {"p": {"senders": ["sqs:arn:aws:iam::111122223333:role/fraud"], "allow": []}}}
    assert parse_policy(document, role_arns=True).producers[0].senders == ("sqs:arn:aws:iam::111122223333:role/fraud",)


# -- who sent it ---------------------------------------------------------------------------------------


def test_records_of_the_events_queue_are_the_envelopes_account_and_source_others_their_sqs_sender():
    trust = Trust(events_queue_arn="arn:aws:sqs:us-east-1:1:events", own_role_id="AROAOWN")
    body = json.dumps({"detail-type": "Stop Campaign Request", "source": "com.x", "account": "222233334444",
                       "detail": {}})

    def record(queue: str, sender_id: str) -> dict:
        return {"eventSourceARN": queue, "attributes": {"SenderId": sender_id}, "body": body}

    events = trust.of_record(record("arn:aws:sqs:us-east-1:1:events", "AIDAEVENTS"))
    assert sender_of(events, None, body, None) == Sender("events", "222233334444/com.x")
    stop = trust.of_record(record("arn:aws:sqs:us-east-1:1:stop", "AROAOTHER:me"))
    assert sender_of(stop, None, body, None) == Sender("sqs", "AROAOTHER:me")
    assert trust.of_record(record("arn:aws:sqs:us-east-1:1:stop", "AROAOWN:fn")).own
    assert not trust.of_record(record("arn:aws:sqs:us-east-1:1:stop", "AROAOWNER:fn")).own  # a longer id
    assert not Trust().of_record(record("arn:aws:sqs:us-east-1:1:stop", "AROAOWN:fn")).own  # unknown own id


def test_an_alarm_is_its_accounts_when_invoked_and_its_senders_in_a_queue():
    alarm = AlarmStateChange("a", "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:a", "ALARM", "t", None, "t")
    assert sender_of(Delivery(Channel.DIRECT), alarm, "", {}) == Sender("alarm", "123456789012")
    assert sender_of(Delivery(Channel.SNS, "arn:aws:sns:x"), alarm, "", {}) == Sender("alarm", "123456789012")
    assert sender_of(Delivery(Channel.QUEUE, "AIDAX"), alarm, "{}", None) == Sender("sqs", "AIDAX")
    assert sender_of(Delivery(Channel.SNS, "arn:aws:sns:x"), None, "", {}) == Sender("sns", "arn:aws:sns:x")
    assert sender_of(Delivery(Channel.DIRECT), None, "", {}) == Sender("direct", "-")


@pytest.mark.parametrize(("arn", "account"), [
    ("arn:aws:cloudwatch:us-east-1:123456789012:alarm:name:with:colons", "123456789012"),
    ("arn:aws-us-gov:cloudwatch:us-gov-west-1:111122223333:alarm:x", "111122223333"),
    ("arn:aws:sns:us-east-1:123456789012:alarm:x", "-"),
    (None, "-"),
    ("nonsense", "-"),
])
def test_the_alarms_account_is_read_from_its_arn(arn, account):
    assert alarm_account(arn) == account


def _continuation() -> Continuation:
    request = StopRequest("st-1", SMS, "req-1", Source.SQS, "2026-01-01T00:00:00Z", campaign_ids=("cd-2",),
                          producer=Producer("sqs", "AROAX:w", "fraud"))
    return Continuation(request, Progress(segment=2, invocations=1, campaigns=2, tallies=(("stopped", 1),)))


def test_a_continuation_verifies_only_with_the_key_that_signed_it_and_unchanged():
    key = b"k" * 32
    body = json.dumps(signed(_continuation().as_message(), key))
    origin = Origin(Source.SQS, "m-1", "2026-01-01T00:00:00Z")
    parsed = parse_sqs_body(body, origin)
    assert isinstance(parsed, Continuation) and verified(parsed, key)
    assert parsed.request.producer == Producer("sqs", "AROAX:w", "fraud")
    assert not verified(parsed, b"x" * 32)
    tampered = json.loads(body)
    tampered["request"]["campaignIds"].append("cd-3")
    assert not verified(parse_sqs_body(json.dumps(tampered), origin), key)
    unsigned = {k: v for k, v in json.loads(body).items() if k != "signature"}
    assert not verified(parse_sqs_body(json.dumps(unsigned), origin), key)
    # the same message, however its JSON was spaced or ordered on the way
    reordered = json.dumps(dict(reversed(list(json.loads(body).items()))), indent=2)
    assert verified(parse_sqs_body(reordered, origin), key)
