"""Shared by every test: the Powertools settings a deployed function gets from template.yaml.

Set before the handler module is imported, as the Lambda runtime would have them.
"""

import os

from hypothesis import settings

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "campaign-stop")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CampaignStop")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# Property-based tests explore the same examples on every run (CI must not turn red by chance); set
# HYPOTHESIS_PROFILE=explore to search afresh on a developer's machine.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=2000)
settings.load_profile(os.getenv("HYPOTHESIS_PROFILE", "repeatable"))
