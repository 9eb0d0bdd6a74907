"""Shared by every test: the Powertools settings a deployed function gets from template.yaml (set before the
handler module is imported, as the Lambda runtime would have them); the local stack's fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from devtools.kore_simulator import KoreSimulator
    from devtools.local_stack import LocalStack, MotoServer

Campaign = tuple[str, str, str, str]  # the simulator's campaign: stream id, campaign id, type (sms, voice), status

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "campaign-stop")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CampaignStop")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# Property-based tests explore the same examples on every run (CI must not turn red by chance); set
# HYPOTHESIS_PROFILE=explore to search afresh on a developer's machine.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=2000)
settings.load_profile(os.getenv("HYPOTHESIS_PROFILE", "repeatable"))


# ---------------------------------------------------------------------------------------------------------------
# The local stack, shared by tests/cli and tests/integration: one moto server for the whole run, emptied by each
# test's `stack`. What differs between the folders (the Kore.ai app's credentials, the simulator's campaigns) each
# folder's conftest gives as the fixtures `kore_credentials` and `kore_campaigns`. devtools is imported in the
# fixtures, so that the unit and template tests do not load moto.


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    from devtools.local_stack import MotoServer

    with MotoServer() as server:
        yield server


@pytest.fixture
def stack(moto_server: MotoServer, kore_credentials: dict[str, str]) -> LocalStack:
    """The template's resources on an emptied moto server, the credentials secret holding ``kore_credentials``."""
    from devtools.local_stack import create_stack

    moto_server.reset()
    created = create_stack(moto_server.endpoint_url)
    created.put_secret(kore_credentials)
    return created


@pytest.fixture
def kore(kore_credentials: dict[str, str], kore_campaigns: list[Campaign]) -> Iterator[KoreSimulator]:
    """The Kore.ai simulator with the app of ``kore_credentials`` and the campaigns ``kore_campaigns``."""
    from devtools.kore_simulator import KoreSimulator

    with KoreSimulator(enforce_jti=True) as sim:
        sim.add_app(client_id=kore_credentials["clientId"], client_secret=kore_credentials["clientSecret"],
                    account_id=kore_credentials["accountId"])
        for stream_id, campaign_id, campaign_type, status in kore_campaigns:
            sim.add_campaign(stream_id, campaign_id, campaign_type=campaign_type, status=status)
        yield sim
