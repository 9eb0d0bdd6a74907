"""Property-based, through the real handler: whatever arrives, the handler answers and never raises.

Every result it returns or publishes validates against the result schema and stays far below SNS's 256 KiB
message limit (every echoed field is bounded); a rejected SQS message is in the dead-letter queue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from event_strategies import anything, stop_requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
RESULT_SCHEMA = fastjsonschema.compile(
    json.loads((ROOT / "functions/stop_campaign/schemas/result_event_v1.json").read_text())
)
FAR_BELOW_SNS_LIMIT = 16 * 1024
EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def roomy_budget(monkeypatch):
    monkeypatch.setenv("KORE_RATE_LIMIT", "10000/60")  # this is about shapes, not pacing


def check(result: dict[str, Any]) -> None:
    RESULT_SCHEMA(result)
    assert len(json.dumps(result)) < FAR_BELOW_SNS_LIMIT


@EXAMPLES
@given(event=anything | stop_requests)
def test_any_direct_invocation_answers_with_valid_small_results(roomy_budget, invoke, event: Any) -> None:
    response = invoke(event)
    assert set(response) <= {"results", "batchItemFailures"}
    for result in response.get("results", []):
        check(result)


@EXAMPLES
@given(body=anything.map(json.dumps) | st.text(min_size=1, max_size=100))  # SQS bodies are never empty
def test_any_sqs_message_ends_in_a_result_and_rejections_in_the_dead_letter_queue(
    roomy_budget, invoke, stack, sqs, body: str
) -> None:
    response = invoke(sqs(body))
    assert response["batchItemFailures"] == []  # nothing here is transient: every message ends now
    results = stack.drain_results()  # the local stack checks each against the schema as it reads it
    assert results, "every message ends in at least one result"
    for result in results:
        check(result)
    letters = stack.drain_dead_letters()
    rejected = [result for result in results if result["outcome"] in ("rejected", "failed")]
    assert bool(letters) == bool(rejected)
    assert all(letter["Body"] == body for letter in letters)  # the original, as it came
    stack.drain_summaries()
