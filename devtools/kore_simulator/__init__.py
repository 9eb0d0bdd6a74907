"""A Kore.ai campaign API simulator on 127.0.0.1 for tests and local runs (dev tooling, never shipped).

    with KoreSimulator() as sim:
        sim.add_app(client_id="cs-test", client_secret="secret-1", account_id="acc-1")
        sim.add_campaign("st-1", "cd-1", campaign_type="sms", status="Active")
        ...  # point the client at sim.base_url, then inspect sim.requests / sim.campaign_status()

Standalone: `python -m devtools.kore_simulator --port 8787 --seed devtools/kore_simulator/seed.example.json`.
"""

from devtools.kore_simulator.server import KoreSimulator
from devtools.kore_simulator.state import RecordedRequest

__all__ = ["KoreSimulator", "RecordedRequest"]
