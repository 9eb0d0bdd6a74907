"""Shared by every test: the Powertools settings a deployed function gets from template.yaml.

Set before the handler module is imported, as the Lambda runtime would have them.
"""

import os

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "campaign-stop")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CampaignStop")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
