"""The Kore.ai campaign simulator itself, over real HTTP on loopback (urllib3 client, PyJWT tokens)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import urllib3
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from devtools.kore_simulator import KoreSimulator, RecordedRequest

REPO = Path(__file__).resolve().parents[2]
SEED_FILE = REPO / "devtools" / "kore_simulator" / "seed.example.json"

STREAM, ACCOUNT, APP = "st-1", "acc-1", "cs-test"
# 32+ bytes so PyJWT does not warn on the *client* side; short secrets have their own test.
SECRET = "secret-1-long-enough-for-hs256-keys!"
OTHER_APP, OTHER_SECRET, OTHER_ACCOUNT = "cs-other", "secret-2-long-enough-for-hs256-keys!", "acc-2"
INVALID_JWT = {"errors": [{"msg": "Invalid JWT token", "code": 4002}]}
VALIDATION = {"errors": [{"msg": "Validation errors/ Invalid arguments", "code": 412}]}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ---- helpers -------------------------------------------------------------------------------------


def token(*, app: str = APP, secret: str = SECRET, alg: str = "HS256", ttl: int = 300, **claims: Any) -> str:
    """A fresh per-request token; a claim passed as None is left out."""
    now = int(time.time())
    payload = {
        "appId": app,
        "sub": "campaign-stop-tests",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + ttl,
    }
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm=alg)


def headers(**overrides: str | None) -> dict[str, str]:
    """Valid headers for STREAM/ACCOUNT; an override of None removes that header."""
    base: dict[str, str | None] = {
        "auth": token(),
        "accountId": ACCOUNT,
        "iid": STREAM,
        "Content-Type": "application/json",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def stop_sms_path(campaign: str = "cd-1", account: str = ACCOUNT) -> str:
    query = f"accountId={account}&campaignType=sms&trigger=stop"
    return f"/campaign/api/v2/public/{STREAM}/campaign//trigger/{campaign}?{query}"


def stop_voice_path(campaign: str = "cd-voice") -> str:
    query = f"accountId={ACCOUNT}&campaignType=voice&trigger=stop"
    return f"/api/v2/public/{STREAM}/campaign/trigger/{campaign}?{query}"


def start_sms_path(campaign: str = "cd-1") -> str:
    return f"/campaign/api/v2/public/{STREAM}/campaign/{campaign}?campaignType=sms&trigger=play"


def status_path(campaign: str = "cd-1", account: str = ACCOUNT) -> str:
    return f"/campaign/api/v2/public/{STREAM}/campaign/{campaign}/status?accountId={account}&view=status"


def list_path() -> str:
    return f"/campaign/api/v2/public/{STREAM}/campaign/getAllCampaignDetails?accountId={ACCOUNT}"


def post(
    pool: urllib3.HTTPConnectionPool,
    path: str,
    body: Any = None,
    hdrs: dict[str, str] | None = None,
    **kwargs: Any,
) -> urllib3.BaseHTTPResponse:
    raw = body if isinstance(body, bytes) else json.dumps({} if body is None else body).encode()
    return pool.request("POST", path, body=raw, headers=headers() if hdrs is None else hdrs, **kwargs)


def assert_error(response: urllib3.BaseHTTPResponse, status: int, envelope: dict[str, Any]) -> None:
    assert (response.status, response.json()) == (status, envelope), response.headers.get(
        "X-Simulator-Reason"
    )


@pytest.fixture
def sim() -> Iterator[KoreSimulator]:
    with KoreSimulator(enforce_jti=True) as simulator:
        simulator.add_app(client_id=APP, client_secret=SECRET, account_id=ACCOUNT)
        simulator.add_app(client_id=OTHER_APP, client_secret=OTHER_SECRET, account_id=OTHER_ACCOUNT)
        simulator.add_campaign(STREAM, "cd-1", campaign_type="sms", status="Active", name="Spring promo")
        simulator.add_campaign(STREAM, "cd-voice", campaign_type="voice", status="Active", name="Calls")
        yield simulator


@pytest.fixture
def pool(sim: KoreSimulator) -> Iterator[urllib3.HTTPConnectionPool]:
    # retries=False: the tests look at every raw answer, including drops.
    with urllib3.HTTPConnectionPool("127.0.0.1", sim.port, maxsize=1, retries=False, timeout=2.0) as client:
        yield client


# ---- endpoints -----------------------------------------------------------------------------------


def test_stop_sms_stops_an_active_campaign_and_logs_the_request(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    response = post(pool, stop_sms_path())

    assert response.status == 200
    body = response.json()
    assert body["status"] == "Stopped" and body["message"] == "Campaign Stopped"
    assert body["campaignExecutionType"] == "NORMAL" and ISO_MS.match(body["updatedAt"])
    assert sim.campaign_status(STREAM, "cd-1") == "Stopped"
    [recorded] = sim.stop_calls("cd-1")
    assert isinstance(recorded, RecordedRequest)
    assert (recorded.method, recorded.kind, recorded.status) == ("POST", "stop_sms", 200)
    assert recorded.path == f"/campaign/api/v2/public/{STREAM}/campaign//trigger/cd-1"
    assert recorded.query == {"accountId": ACCOUNT, "campaignType": "sms", "trigger": "stop"}
    assert recorded.headers["accountid"] == ACCOUNT and recorded.body == {}
    assert recorded.jwt_claims is not None and recorded.jwt_claims["appId"] == APP
    assert recorded.connection_id >= 1 and recorded.at <= time.monotonic()


def test_stop_voice_stops_a_voice_campaign(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    response = post(pool, stop_voice_path())

    assert response.status == 200
    body = response.json()
    assert (body["status"], body["message"]) == ("Stopped", "Campaign Stopped")
    assert body["campaignInstanceId"].startswith("cid-") and ISO_MS.match(body["updatedAt"])
    assert sim.campaign_status(STREAM, "cd-voice") == "Stopped"
    assert [r.kind for r in sim.stop_calls()] == ["stop_voice"]


def test_start_sms_makes_a_stopped_campaign_active(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    sim.add_campaign(STREAM, "cd-1", status="Stopped")

    response = post(pool, start_sms_path(), hdrs=headers())

    assert response.status == 200 and response.json()["status"] == "Active"
    assert sim.campaign_status(STREAM, "cd-1") == "Active"
    assert sim.requests[-1].kind == "start_sms"


def start_voice_path(campaign: str = "cd-voice", query: str | None = None) -> str:
    query = query or f"accountId={ACCOUNT}&campaignType=voice&trigger=play"
    return f"/api/v2/public/{STREAM}/campaign/trigger/{campaign}?{query}"


def test_start_voice_takes_the_voice_stop_path_with_trigger_play(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    sim.add_campaign(STREAM, "cd-voice", campaign_type="voice", status="Stopped")

    response = post(pool, start_voice_path())

    body = response.json()
    assert (response.status, body["status"], body["message"]) == (200, "Active", "Campaign Started")
    assert body["campaignInstanceId"].startswith("cid-") and "totalCallsCompleted" in body
    assert sim.campaign_status(STREAM, "cd-voice") == "Active"
    assert [r.kind for r in sim.start_calls()] == ["start_voice"] and sim.stop_calls() == []


@pytest.mark.parametrize("status", ["Active", "Completed", "Scheduled"])
def test_starting_a_campaign_that_is_not_stopped_is_a_validation_error_and_changes_nothing(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool, status: str
) -> None:
    sim.add_campaign(STREAM, "cd-1", status=status)
    sim.add_campaign(STREAM, "cd-voice", campaign_type="voice", status=status)

    assert_error(post(pool, start_sms_path()), 412, VALIDATION)
    assert_error(post(pool, start_voice_path()), 412, VALIDATION)
    assert (sim.campaign_status(STREAM, "cd-1"), sim.campaign_status(STREAM, "cd-voice")) == (status, status)


@pytest.mark.parametrize("path", [
    start_voice_path(query="campaignType=voice&trigger=play"),  # the voice start needs accountId
    f"/campaign/api/v2/public/{STREAM}/campaign/cd-1?accountId={ACCOUNT}&campaignType=sms&trigger=play",  # sms: none
    start_voice_path(query=f"accountId={ACCOUNT}&campaignType=sms&trigger=play"),
], ids=["voice-no-account", "sms-with-account", "voice-path-sms-type"])
def test_start_calls_must_match_the_documented_query_exactly(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool, path: str
) -> None:
    sim.add_campaign(STREAM, "cd-1", status="Stopped")
    sim.add_campaign(STREAM, "cd-voice", campaign_type="voice", status="Stopped")

    assert_error(post(pool, path), 412, VALIDATION)
    assert (sim.campaign_status(STREAM, "cd-1"), sim.campaign_status(STREAM, "cd-voice")) == ("Stopped", "Stopped")


def test_status_reports_id_status_and_name(pool: urllib3.HTTPConnectionPool) -> None:
    response = post(pool, status_path())

    assert response.status == 200
    assert response.json() == {
        "status": "success",
        "data": {"id": "cd-1", "status": "Active", "name": "Spring promo"},
    }


@pytest.mark.parametrize("configured", [404, 412])
def test_unknown_campaign_answers_the_configured_status(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool, configured: int
) -> None:
    sim.unknown_campaign_status = configured
    envelope = {"errors": [{"msg": "Campaign not found", "code": configured}]}

    assert_error(post(pool, stop_sms_path("cd-missing")), configured, envelope)
    assert_error(post(pool, status_path("cd-missing")), configured, envelope)


def test_list_paginates_by_page_and_skip_with_a_status_filter(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    for n, status in enumerate(["Active", "Stopped", "Active", "Paused", "Active", "Active"]):
        sim.add_campaign(STREAM, f"cd-list-{n}", status=status, name=f"List {n}")
    sim.add_campaign("st-elsewhere", "cd-far", status="Active")  # another stream: never listed
    query = {"type": "sms", "limit": 2, "filters": {"status": ["Active"]}}

    page2 = post(pool, list_path(), {**query, "page": 2}).json()
    by_skip = post(pool, list_path(), {**query, "skip": 4}).json()

    assert page2["status"] == "success"
    data = page2["data"]
    assert [r["id"] for r in data["results"]] == ["cd-list-2", "cd-list-4"]  # insertion order: cd-1 is first
    assert data["results"][0] == {  # exactly the shape of the vendor's SMS sample
        "id": "cd-list-2", "name": "List 2", "priority": 1,
        "schedule": {"isSchedulingEnabled": False, "isRecurrenceEnabled": False}, "status": "Active",
    }
    assert (data["skip"], data["limit"], data["hasMore"], data["totalPages"], data["totalResults"]) == (
        2,
        2,
        True,
        3,
        5,
    )
    assert [r["id"] for r in by_skip["data"]["results"]] == ["cd-list-5"] and not by_skip["data"]["hasMore"]
    voice = post(pool, list_path(), {"type": "voice"}).json()["data"]
    assert [r["_id"] for r in voice["results"]] == ["cd-voice"] and voice["limit"] == 10
    # the vendor's voice sample keys the campaign "_id", not "id"
    assert set(voice["results"][0]) == {"_id", "name", "priority", "schedule", "status"}


def test_list_clamps_the_limit_and_refuses_a_malformed_body(pool: urllib3.HTTPConnectionPool) -> None:
    assert post(pool, list_path(), {"limit": 500}).json()["data"]["limit"] == 100
    assert_error(post(pool, list_path(), {"limit": "ten"}), 412, VALIDATION)
    assert_error(post(pool, list_path(), {"type": "email"}), 412, VALIDATION)


# ---- paths and methods ---------------------------------------------------------------------------


def test_single_slash_sms_stop_path_is_404(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    path = stop_sms_path().replace("campaign//trigger", "campaign/trigger")

    response = post(pool, path)

    assert response.status == 404 and response.json()["errors"][0]["code"] == 404
    assert sim.campaign_status(STREAM, "cd-1") == "Active"
    assert sim.requests[-1].kind is None and sim.stop_calls() == []


@pytest.mark.parametrize(
    "path",
    [
        "/",
        f"/campaign/api/v2/public/{STREAM}/campaign//trigger/",  # empty campaign id
        f"/campaign/api/v1/public/{STREAM}/campaign//trigger/cd-1",
        f"/api/v2/public/{STREAM}/campaign//trigger/cd-voice",  # voice path with the SMS double slash
    ],
)
def test_unknown_paths_are_404(pool: urllib3.HTTPConnectionPool, path: str) -> None:
    assert post(pool, path).status == 404


def test_wrong_method_on_a_known_path_is_405(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    response = pool.request("GET", stop_sms_path(), headers=headers())

    assert_error(response, 405, {"errors": [{"msg": "Method Not Allowed", "code": 405}]})
    assert sim.campaign_status(STREAM, "cd-1") == "Active"


def test_ids_are_percent_decoded_path_segments(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    sim.add_campaign(STREAM, "cd/odd id", status="Active")

    response = post(pool, stop_sms_path(quote("cd/odd id", safe="")))

    assert response.status == 200
    assert sim.campaign_status(STREAM, "cd/odd id") == "Stopped"
    [recorded] = sim.stop_calls("cd/odd id")
    assert recorded.path.endswith("/trigger/cd%2Fodd%20id")  # logged exactly as received


def test_stopping_a_voice_campaign_on_the_sms_endpoint_is_412(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    assert_error(post(pool, stop_sms_path("cd-voice")), 412, VALIDATION)
    assert sim.campaign_status(STREAM, "cd-voice") == "Active"


# ---- headers -------------------------------------------------------------------------------------


def test_missing_auth_header_is_invalid_sdk_credentials(pool: urllib3.HTTPConnectionPool) -> None:
    response = post(pool, stop_sms_path(), hdrs=headers(auth=None))

    assert_error(response, 401, {"errors": [{"msg": "Invalid SDK credentials", "code": 4001}]})


@pytest.mark.parametrize(
    "overrides",
    [
        {"accountId": None},
        {"accountId": OTHER_ACCOUNT},  # differs from the accountId query parameter
        {"iid": None},
        {"iid": "st-other"},
        {"Content-Type": None},
        {"Content-Type": "text/plain"},
    ],
    ids=["no-account", "account-mismatch", "no-iid", "wrong-iid", "no-content-type", "text-content-type"],
)
def test_header_problems_are_412(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool, overrides: dict[str, str | None]
) -> None:
    assert_error(post(pool, stop_sms_path(), hdrs=headers(**overrides)), 412, VALIDATION)
    assert sim.campaign_status(STREAM, "cd-1") == "Active"


def test_header_names_are_case_insensitive(pool: urllib3.HTTPConnectionPool) -> None:
    hdrs = {
        "AUTH": token(),
        "accountid": ACCOUNT,
        "IID": STREAM,
        "content-type": "application/json; charset=utf-8",
    }

    assert post(pool, stop_sms_path(), hdrs=hdrs).status == 200


def test_iid_can_be_mapped_per_stream(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    sim.iids[STREAM] = "st-app-iid"

    assert post(pool, status_path(), hdrs=headers()).status == 412
    assert post(pool, status_path(), hdrs=headers(iid="st-app-iid")).status == 200


# ---- JWT -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_token",
    [
        pytest.param(lambda: token(secret="not-the-secret-but-also-32-bytes-long"), id="bad-signature"),
        pytest.param(lambda: token(secret=SECRET * 2, alg="HS512"), id="hs512"),
        pytest.param(lambda: token(secret="", alg="none"), id="none"),  # otherwise valid claims
        pytest.param(lambda: token(app="cs-nobody"), id="unknown-app"),
        pytest.param(lambda: token(app=OTHER_APP, secret=OTHER_SECRET), id="app-of-another-account"),
        pytest.param(lambda: token(jti=None), id="missing-jti"),
        pytest.param(lambda: token(iat=None), id="missing-iat"),
        pytest.param(lambda: token(exp=None), id="missing-exp"),
        pytest.param(lambda: token(ttl=3601), id="exp-over-an-hour"),
        pytest.param(lambda: token(ttl=-10), id="expired"),
        pytest.param(lambda: "not-a-jwt", id="garbage"),
    ],
)
def test_invalid_tokens_are_refused(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool, bad_token: Any
) -> None:
    response = post(pool, stop_sms_path(), hdrs=headers(auth=bad_token()))

    assert_error(response, 401, INVALID_JWT)
    assert sim.campaign_status(STREAM, "cd-1") == "Active"
    assert sim.requests[-1].jwt_claims is None


def test_reused_jti_is_a_replay(pool: urllib3.HTTPConnectionPool) -> None:
    reused = token()

    assert post(pool, status_path(), hdrs=headers(auth=reused)).status == 200
    replay = {"errors": [{"msg": "error verifying the jwt: possibly a replay", "code": 4002}]}
    assert_error(post(pool, status_path(), hdrs=headers(auth=reused)), 401, replay)


def test_without_enforced_jti_a_long_lived_reused_token_works(pool: urllib3.HTTPConnectionPool) -> None:
    with KoreSimulator(enforce_jti=False) as lax:
        lax.add_app(client_id=APP, client_secret=SECRET, account_id=ACCOUNT)
        lax.add_campaign(STREAM, "cd-1")
        reusable = token(jti=None, ttl=7200)
        with urllib3.HTTPConnectionPool("127.0.0.1", lax.port, retries=False) as client:
            statuses = [post(client, status_path(), hdrs=headers(auth=reusable)).status for _ in range(2)]
    assert statuses == [200, 200]


def test_short_secrets_verify_without_warnings(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    sim.add_app(client_id="cs-short", client_secret="secret-1", account_id=ACCOUNT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the client-side warning is PyJWT's business, not ours
        short = token(app="cs-short", secret="secret-1")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = post(pool, status_path(), hdrs=headers(auth=short))

    assert response.status == 200 and caught == []


def test_each_app_works_with_its_own_account(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    path = status_path(account=OTHER_ACCOUNT)
    hdrs = headers(auth=token(app=OTHER_APP, secret=OTHER_SECRET), accountId=OTHER_ACCOUNT)

    assert post(pool, path, hdrs=hdrs).status == 200
    assert sim.requests[-1].jwt_claims["appId"] == OTHER_APP  # type: ignore[index]


# ---- query and body ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"accountId={ACCOUNT}&campaignType=sms",  # no trigger
        f"accountId={ACCOUNT}&campaignType=voice&trigger=stop",
        f"accountId={ACCOUNT}&campaignType=sms&trigger=play",
        f"accountId={ACCOUNT}&campaignType=sms&trigger=stop&trigger=stop",
        f"accountId={ACCOUNT}&campaignType=sms&trigger=stop&extra=1",
        "campaignType=sms&trigger=stop",  # no accountId
    ],
    ids=["missing", "wrong-type", "wrong-trigger", "duplicate", "extra", "no-account"],
)
def test_query_must_be_exact(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool, query: str) -> None:
    path = f"/campaign/api/v2/public/{STREAM}/campaign//trigger/cd-1?{query}"

    assert_error(post(pool, path), 412, VALIDATION)
    assert sim.campaign_status(STREAM, "cd-1") == "Active"


@pytest.mark.parametrize("body", [b"", b"[]", b"not json", b'"{}"'])
def test_body_must_be_a_json_object(pool: urllib3.HTTPConnectionPool, body: bytes) -> None:
    assert_error(post(pool, stop_sms_path(), body), 412, VALIDATION)


# ---- schedules ---------------------------------------------------------------------------------------


def schedule_path(name: str = "Spring promo", enable: str = "false") -> str:
    return f"/campaign/api/v2/public/{STREAM}/campaign/schedule?enableSchedule={enable}&campaignName={quote(name)}"


def test_disable_schedule_by_name_keeps_a_recurring_campaign_stopped(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    sim.add_campaign(STREAM, "cd-1", name="Spring promo", status="Stopped", scheduling=True, recurrence=True)
    assert sim.fire_recurrence(STREAM, "cd-1") and sim.campaign_status(STREAM, "cd-1") == "Active"
    sim.add_campaign(STREAM, "cd-1", name="Spring promo", status="Stopped", scheduling=True, recurrence=True)

    response = post(pool, schedule_path())

    assert (response.status, response.json()) == (200, {
        "status": "success", "message": "Campaign Spring promo schedule has been disabled successfully", "id": "cd-1"})
    recorded = sim.requests[-1]
    assert (recorded.kind, recorded.query) == ("schedule", {"enableSchedule": "false", "campaignName": "Spring promo"})
    assert sim.schedule_of(STREAM, "cd-1") == {"isSchedulingEnabled": False, "isRecurrenceEnabled": True}
    assert not sim.fire_recurrence(STREAM, "cd-1")
    assert sim.campaign_status(STREAM, "cd-1") == "Stopped"


def test_a_campaign_without_a_recurrence_is_not_started_by_one(sim: KoreSimulator) -> None:
    sim.add_campaign(STREAM, "cd-1", status="Stopped", scheduling=True, recurrence=False)
    assert not sim.fire_recurrence(STREAM, "cd-1")
    assert sim.campaign_status(STREAM, "cd-1") == "Stopped"


@pytest.mark.parametrize(
    "path",
    [
        f"/campaign/api/v2/public/{STREAM}/campaign/schedule?enableSchedule=false",  # no name
        f"/campaign/api/v2/public/{STREAM}/campaign/schedule?campaignName=Spring%20promo",  # no enableSchedule
        schedule_path(enable="no"),
        schedule_path() + f"&accountId={ACCOUNT}",  # not a parameter of this call
    ],
    ids=["no-name", "no-enable", "bad-enable", "extra"],
)
def test_disable_schedule_checks_the_exact_query(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool, path: str
) -> None:
    sim.add_campaign(STREAM, "cd-1", name="Spring promo", scheduling=True, recurrence=True)
    assert_error(post(pool, path), 412, VALIDATION)
    assert sim.schedule_of(STREAM, "cd-1")["isSchedulingEnabled"] is True


def test_disable_schedule_checks_headers_and_token_like_every_call(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    assert_error(post(pool, schedule_path(), hdrs=headers(iid="st-other")), 412, VALIDATION)
    assert_error(post(pool, schedule_path(), hdrs=headers(auth=token(secret="wrong-secret-long-enough-hs256!!"))),
                 401, INVALID_JWT)
    assert post(pool, schedule_path(), hdrs=headers(auth=None)).status == 401
    assert pool.request("GET", schedule_path(), headers=headers()).status == 405


def test_disable_schedule_of_an_unknown_name_is_404(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    response = post(pool, schedule_path("No such campaign"))
    assert response.status == 404 and response.json()["errors"][0]["msg"] == "Campaign not found"


def test_a_seed_can_give_a_campaign_a_recurring_schedule() -> None:
    seed = json.loads(SEED_FILE.read_text())
    sim = KoreSimulator.from_seed(seed)
    assert sim.schedule_of("st-demo", "cd-reminders") == {"isSchedulingEnabled": True, "isRecurrenceEnabled": True}
    assert sim.schedule_of("st-demo", "cd-spring-promo") == {"isSchedulingEnabled": False,
                                                            "isRecurrenceEnabled": False}


# ---- already stopped -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Stopped", "Completed"])
def test_already_stopped_in_error_mode_is_400(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool, status: str
) -> None:
    sim.add_campaign(STREAM, "cd-1", status=status)

    response = post(pool, stop_sms_path())

    assert_error(response, 400, {"errors": [{"msg": "Campaign is already stopped", "code": 400}]})
    assert sim.campaign_status(STREAM, "cd-1") == status


@pytest.mark.parametrize("status", ["Stopped", "Completed"])
def test_already_stopped_in_ok_mode_is_200(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool, status: str
) -> None:
    sim.add_campaign(STREAM, "cd-1", status=status)
    sim.already_stopped_mode = "ok"

    response = post(pool, stop_sms_path())

    assert response.status == 200
    assert (
        response.json()["status"] == "Stopped" and response.json()["message"] == "Campaign is already stopped"
    )
    assert sim.campaign_status(STREAM, "cd-1") == status


def test_already_stopped_mode_rejects_unknown_values(sim: KoreSimulator) -> None:
    with pytest.raises(ValueError, match="already_stopped_mode"):
        sim.already_stopped_mode = "maybe"


# ---- injected faults -----------------------------------------------------------------------------


def test_injected_503_applies_before_auth_then_runs_out(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    sim.inject(kind="stop_sms", status=503, times=2)

    first = post(pool, stop_sms_path(), hdrs=headers(auth=None))  # no auth: the fault still comes first
    second = post(pool, stop_sms_path())
    third = post(pool, stop_sms_path())

    unavailable = {"errors": [{"msg": "Service Unavailable", "code": 503}]}
    assert_error(first, 503, unavailable)
    assert_error(second, 503, unavailable)
    assert third.status == 200
    assert [r.status for r in sim.stop_calls()] == [503, 503, 200]


def test_faults_match_their_kind_in_fifo_order(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    sim.inject(kind="stop_sms", status=500)
    sim.inject(kind=None, status=502)

    assert post(pool, status_path()).status == 502  # only the any-kind fault matches a status call
    assert post(pool, stop_sms_path()).status == 500
    assert post(pool, stop_sms_path()).status == 200


def test_injected_429_carries_retry_after(pool: urllib3.HTTPConnectionPool, sim: KoreSimulator) -> None:
    sim.inject(kind="stop_sms", status=429, retry_after=7)

    response = post(pool, stop_sms_path())

    assert response.status == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["errors"][0]["msg"].startswith("Rate limit for this API has been reached")


def test_injected_body_is_sent_verbatim(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    sim.inject(status=502, body="<html>Bad Gateway</html>")

    response = post(pool, stop_sms_path())

    assert (response.status, response.data) == (502, b"<html>Bad Gateway</html>")


def test_drop_closes_the_connection_without_an_answer(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    sim.inject(kind="stop_sms", drop=True)

    with pytest.raises(ProtocolError):
        post(pool, stop_sms_path())

    assert sim.campaign_status(STREAM, "cd-1") == "Active"  # dropped before the platform saw it
    assert [r.status for r in sim.stop_calls()] == [0]
    assert post(pool, stop_sms_path()).status == 200  # the client reconnects
    assert sim.connections_opened == 2


def test_delay_slows_a_normal_answer(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    sim.inject(kind="stop_sms", delay=0.3)

    started = time.monotonic()
    response = post(pool, stop_sms_path())

    assert response.status == 200 and time.monotonic() - started >= 0.3


def test_a_client_timeout_does_not_undo_the_stop(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    sim.inject(kind="stop_sms", delay=0.5)

    with pytest.raises(ReadTimeoutError):
        post(pool, stop_sms_path(), timeout=0.1)

    assert sim.campaign_status(STREAM, "cd-1") == "Stopped"  # the platform acted, only the answer was late
    assert [r.status for r in sim.stop_calls("cd-1")] == [200]


def test_inject_refuses_unknown_kinds(sim: KoreSimulator) -> None:
    with pytest.raises(ValueError, match="kind"):
        sim.inject(kind="stop_email", status=500)


# ---- rate limit, latency, connections, log -------------------------------------------------------


def test_rate_limit_is_per_account_and_rolls(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    sim.set_rate_limit(max_requests=2, window_seconds=0.3, retry_after=1)
    other_hdrs = {"auth": token(app=OTHER_APP, secret=OTHER_SECRET), "accountId": OTHER_ACCOUNT}

    statuses = [post(pool, status_path()).status for _ in range(2)]
    limited = post(pool, status_path())
    other = post(pool, status_path(account=OTHER_ACCOUNT), hdrs=headers(**other_hdrs))

    assert statuses == [200, 200]
    assert_error(limited, 429, {"errors": [{"msg": "Rate limit for this API has been reached", "code": 429}]})
    assert limited.headers["Retry-After"] == "1"
    assert other.status == 200
    time.sleep(0.35)
    assert post(pool, status_path()).status == 200
    sim.set_rate_limit(None)
    assert [post(pool, status_path()).status for _ in range(3)] == [200, 200, 200]


def test_rate_limit_can_count_refused_arrivals(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    sim.set_rate_limit(max_requests=1, window_seconds=0.4, retry_after=1, count_refused=True)
    assert post(pool, status_path()).status == 200
    time.sleep(0.2)
    assert post(pool, status_path()).status == 429  # refused, and counted
    time.sleep(0.25)  # the admitted one has left the window; the refused one has not
    assert post(pool, status_path()).status == 429
    time.sleep(0.45)
    assert post(pool, status_path()).status == 200


def test_latency_is_added_to_every_answer(sim: KoreSimulator, pool: urllib3.HTTPConnectionPool) -> None:
    sim.latency = 0.2

    started = time.monotonic()
    assert post(pool, status_path()).status == 200
    assert time.monotonic() - started >= 0.2


def test_keep_alive_reuses_one_connection_and_reset_log_clears(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    post(pool, status_path())
    post(pool, stop_sms_path())

    assert sim.connections_opened == 1
    assert len({r.connection_id for r in sim.requests}) == 1
    sim.reset_log()
    assert sim.requests == [] and sim.connections_opened == 0


def test_requests_is_a_snapshot_in_arrival_order(
    sim: KoreSimulator, pool: urllib3.HTTPConnectionPool
) -> None:
    post(pool, status_path())
    post(pool, stop_sms_path())
    snapshot = sim.requests
    snapshot.clear()

    assert [r.kind for r in sim.requests] == ["status", "stop_sms"]
    assert [r.kind for r in sim.stop_calls("cd-1")] == ["stop_sms"] and sim.stop_calls("cd-other") == []


def test_add_campaign_refuses_statuses_kore_does_not_have(sim: KoreSimulator) -> None:
    with pytest.raises(ValueError, match="status"):
        sim.add_campaign(STREAM, "cd-x", status="Running")


def test_stop_closes_the_port() -> None:
    with KoreSimulator() as simulator:
        port = simulator.port
    with (
        urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False, timeout=1.0) as client,
        pytest.raises(NewConnectionError),
    ):
        client.request("POST", "/", body=b"{}")


# ---- seed and command line -----------------------------------------------------------------------


def test_command_line_serves_the_example_seed() -> None:
    seed = json.loads(SEED_FILE.read_text())
    app, campaign = seed["apps"][0], seed["campaigns"][0]
    assert (
        KoreSimulator.from_seed(seed).campaign_status(campaign["streamId"], campaign["campaignId"])
        == "Active"
    )
    command = [sys.executable, "-m", "devtools.kore_simulator", "--port", "0", "--seed", str(SEED_FILE)]
    # A fixed command line: nothing untrusted reaches the subprocess.
    with subprocess.Popen(  # noqa: S603
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            path = (
                f"/campaign/api/v2/public/{campaign['streamId']}/campaign//trigger/{campaign['campaignId']}"
                f"?accountId={app['accountId']}&campaignType=sms&trigger=stop"
            )
            hdrs = headers(
                auth=token(app=app["clientId"], secret=app["clientSecret"]),
                accountId=app["accountId"],
                iid=campaign["streamId"],
            )
            response = urllib3.request("POST", base_url + path, body=b"{}", headers=hdrs, retries=False)
            assert response.status == 200 and response.json()["status"] == "Stopped"
        finally:
            proc.terminate()
            proc.wait(timeout=5)
    assert proc.returncode == 0
